"""Helpers of the benchmark scripts in bench/ (the scripts themselves need tcpdump or minutes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sensord.encoding import BatchData, ChannelInfo
from sensord.sensor import Sample

ROOT = Path(__file__).resolve().parents[1]


def bench_script(name: str) -> ModuleType:
    """bench/<name>.py imported as a module (its main() does not run)."""
    module_name = f"bench_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "bench" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def test_bench_codec() -> None:
    bench_codec = bench_script("wire").bench_codec
    samples = [Sample("air", q, v + k / 100, u, 1_700_000_000 + 10 * k)
               for k in range(5) for q, v, u in (("temperature", 21.37, "°C"), ("humidity", 45.5, "%"))]
    small = BatchData("n", 1, samples, {("air", "temperature"): ChannelInfo("°C", 0.01)})
    encode_us, decode_us = bench_codec("compact", small, repeat=1)
    assert 0 < encode_us < 1000 and 0 < decode_us < 1000


def test_the_instructions_bench_runs_the_daemons_pipeline(tmp_path: Path) -> None:
    """bench/instructions.py's measured process, without valgrind: 1,200 readings make two
    sealed compact batches of 600, each acknowledged (deleted) as the publisher would."""
    instructions = bench_script("instructions")
    reads = instructions.make_reads(120)
    assert len(reads) == 120 and all(len(r) == 10 for r in reads)
    assert instructions.inner(1200, True, tmp_path) == 2
    assert instructions.inner(1200, True, tmp_path, "undelivered") == 2
    assert instructions.inner(1200, False, tmp_path) == 0


def test_the_idle_bench_counts_every_threads_switches_and_writes_a_config_sensord_takes(tmp_path: Path) -> None:
    import os
    import threading

    from sensord import startup

    idle = bench_script("idle")
    done = threading.Event()
    worker = threading.Thread(target=done.wait)
    worker.start()
    try:
        counts = idle.switches(os.getpid())
    finally:
        done.set()
        worker.join()
    assert worker.native_id in counts and threading.main_thread().native_id in counts
    assert counts[threading.main_thread().native_id] > 0
    for name, scenario in idle.SCENARIOS.items():
        cfg = idle.config(tmp_path / f"{name}.toml", port=1883, **scenario)
        loaded = startup.load_runnable(str(cfg), entry_points=False)
        assert loaded.config.mqtt.keepalive_s == scenario["keepalive_s"]
        assert [s.interval_s for s in loaded.config.sensors] == [scenario["interval_s"]]


def test_the_delivery_bench_writes_the_bytecode_caches_an_installed_package_has(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    delivery = bench_script("delivery")
    for package in ("sensord", "plugins"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "mod.py").write_text("X = 1\n")
    monkeypatch.setattr(delivery, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # PYTHONDONTWRITEBYTECODE
    delivery.write_bytecode()
    assert all(list((tmp_path / p / "__pycache__").glob("mod.*.pyc")) for p in ("sensord", "plugins"))
