#!/usr/bin/env python3
"""Disk-full figures: `sensord run` with its buffer on a tiny tmpfs that fills, real mosquitto.

1. `broker up`: batches stored while the broker was away, then the disk fills and the broker
   comes back: data publishes per batch and daemon CPU during --seconds.
2. `load`: --sensors counter sensors every --interval s, broker down, disk full for --seconds:
   readings read per second (from the sample stamps, delivered once the disk has room) against
   the configured rate.
3. `sigterm`: the same load, disk full, SIGTERM: readings stored (batches and staged), counted as
   lost in the ERROR line, and the exit code.

Needs root (mount). `python bench/faults.py [--sensors 200] [--interval 0.1] [--seconds 10]`
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# A node whose clock is synchronised, whatever this host's kernel says (docs/clock.md).
os.environ.setdefault("SENSORD_CLOCK_SYNC", "none")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from daemon_harness import Node, readings, wait_until, write_config  # noqa: E402

from sensord.buffer import Buffer  # noqa: E402
from sensord.encoding import decode  # noqa: E402
from sensord.testing.broker import Mosquitto, free_port  # noqa: E402
from sensord.testing.mqtt_client import Subscription  # noqa: E402
from sensord.testing.proxy import TcpProxy  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# tests/faults/conftest.py by path: this script's own name shadows the package `faults`.
_spec = importlib.util.spec_from_file_location("faults_conftest", ROOT / "tests" / "faults" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_conftest = sys.modules["faults_conftest"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
TinyDisk = _conftest.TinyDisk


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def setup(work: Path, port: int, sensors: int, interval: float) -> tuple[Any, Path]:
    disk_path = work / "disk"
    disk_path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "bench-disk", str(disk_path)], check=True)
    disk = TinyDisk(disk_path, 8 << 20)
    cfg = write_config(work / "s.toml", port=port, sensors=sensors, interval_s=interval, max_age_s=1.0,
                       commit_interval_s=1.0)
    cfg.write_text(cfg.read_text().replace(f'path = "{work / "buffer.db"}"', f'path = "{disk_path / "buffer.db"}"'))
    return disk, cfg


def wait_sealed(disk: Any) -> None:
    wal = disk.path / "buffer.db-wal"
    wait_until(lambda: wal.exists() and wal.stat().st_size > 60 * 4120, 30, "batches sealed")


def broker_up(work: Path, broker: Mosquitto, seconds: float) -> None:
    port = free_port()
    disk, cfg = setup(work, port, 10, 0.1)
    try:
        with Subscription(broker, "sensord/n1/data") as sub:
            node = Node(cfg).start()
            wait_sealed(disk)
            disk.fill()
            with TcpProxy(broker.host, broker.port, listen_port=port):
                wait_until(lambda: "connected to" in node.log(), 10, "connect")
                cpu0, t0, lines0 = cpu_s(node.pid), time.monotonic(), len(node.log().splitlines())
                time.sleep(seconds)
                cpu = (cpu_s(node.pid) - cpu0) / (time.monotonic() - t0)
                lines = len(node.log().splitlines()) - lines0
                counts = Counter(decode(m.payload).seq for m in list(sub.messages))
                node.stop()
        print(f"broker up, disk full, {seconds:g} s: {sum(counts.values())} publishes of {len(counts)} batches "
              f"({sum(counts.values()) / max(1, len(counts)):.2f} per batch, max {max(counts.values(), default=0)}), "
              f"daemon CPU {100 * cpu:.0f} %, {lines} log lines")
    finally:
        subprocess.run(["umount", "-l", str(disk.path)], check=False)


def load(work: Path, broker: Mosquitto, sensors: int, interval: float, seconds: float) -> None:
    port = free_port()
    disk, cfg = setup(work, port, sensors, interval)
    try:
        with Subscription(broker, "sensord/n1/data") as sub:
            node = Node(cfg).start()
            wait_sealed(disk)
            disk.fill()
            time.sleep(1.0)
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            disk.free()
            with TcpProxy(broker.host, broker.port, listen_port=port):
                wait_until(lambda: "writes succeed again" in node.log(), 30, "disk has room")
                node.stop(timeout_s=60)
        rows = [r for r in readings(sub.messages) if t0 <= r["ts"] < t1]
        print(f"load, disk full, broker down: {len(rows) / (t1 - t0):.0f} readings/s read, configured "
              f"{sensors / interval:.0f} ({sensors} sensors every {interval:g} s)")
    finally:
        subprocess.run(["umount", "-l", str(disk.path)], check=False)


def sigterm(work: Path, sensors: int, interval: float, seconds: float) -> None:
    disk, cfg = setup(work, free_port(), sensors, interval)
    try:
        node = Node(cfg).start()
        wait_until(lambda: "running: node" in node.log(), 30, "running")
        wait_sealed(disk)
        disk.fill()
        time.sleep(seconds)
        code, _ = node.stop(timeout_s=60)
        errors = [line for line in node.log().splitlines() if line.startswith("ERROR")]
        lost = sum(int(m.group(1)) for line in errors if (m := re.search(r"stopping: (\d+) readings", line)))
        disk.free()
        with Buffer.open(disk.path / "buffer.db", max_bytes=1 << 30) as buf:
            stored = sum(b.readings for b in buf.peek(1_000_000))
            staged = buf.staged_readings()
        print(f"SIGTERM with the disk full: exit {code}; {stored} readings in batches + {staged} staged on disk, "
              f"{lost} counted lost in {len(errors)} ERROR line(s)")
    finally:
        subprocess.run(["umount", "-l", str(disk.path)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        for i, run in enumerate((lambda w: broker_up(w, broker, args.seconds),
                                 lambda w: load(w, broker, args.sensors, args.interval, args.seconds),
                                 lambda w: sigterm(w, args.sensors, args.interval, 3.0))):
            work = Path(tmp) / str(i)
            work.mkdir()
            run(work)


if __name__ == "__main__":
    main()
