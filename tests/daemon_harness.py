"""Run `sensord run` as a subprocess against a real broker, and check what arrived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensord.encoding import decode
from sensord.testing.broker import Message

ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, *, port: int, node: str = "n1", sensors: int = 2, interval_s: float = 0.1,
                 max_age_s: float = 0.5, commit_interval_s: float = 0.5, keepalive_s: int = 60,
                 mqtt_extra: str = "", buffer_extra: str = "", batch_extra: str = "",
                 host: str = "127.0.0.1", stop_timeout_s: float = 3) -> Path:
    tables = "".join(f'[[sensor]]\nname = "c{i}"\ntype = "sim"\ninterval_s = {interval_s}\nsignal = "counter"\n'
                     for i in range(sensors))
    path.write_text(f'[node]\nid = "{node}"\n'
                    f'[mqtt]\nhost = "{host}"\nport = {port}\nkeepalive_s = {keepalive_s}\nreconnect_max_s = 2\n'
                    f'stop_timeout_s = {stop_timeout_s}\n{mqtt_extra}\n'
                    f'[batch]\nmax_age_s = {max_age_s}\n{batch_extra}\n'
                    f'[buffer]\npath = "{path.parent / "buffer.db"}"\ncommit_interval_s = {commit_interval_s}\n'
                    f'{buffer_extra}\n[plugins]\ndirs = []\n{tables}')
    return path


@dataclass
class Node:
    """A `sensord run` process; its log goes to a file shown when a test fails."""

    config: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.config.with_suffix(".log")

    def start(self, *, env: dict[str, str] | None = None) -> Node:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "sensord", "-v", "run", "-c", str(self.config)],
                                     stdout=log, stderr=log, cwd=ROOT, env={**os.environ, **(env or {})})
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        return code, time.monotonic() - t0

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.proc.returncode is None:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)


def readings(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Decoded readings of data messages, de-duplicated by (node, seq), in seq order."""
    batches = {}
    for m in messages:
        if m.topic.endswith("/data"):
            batch = decode(m.payload)
            batches[(batch.node, batch.seq)] = batch
    out = []
    for (node, seq), batch in sorted(batches.items()):
        out.extend({"node": node, "seq": seq, "sensor": s.sensor, "value": s.value, "ts": s.ts}
                   for s in batch.samples)
    return out


def counter_values(rows: list[dict[str, Any]], sensor: str) -> list[int]:
    return [r["value"] for r in rows if r["sensor"] == sensor]


def assert_gapless(values: list[int], *, start: int = 0) -> None:
    """0, 1, 2, ... with nothing lost, repeated or out of order."""
    assert values == list(range(start, start + len(values))), f"gap or reorder in {values}"


def statuses(messages: Iterable[Message]) -> list[str]:
    return [m.payload.decode() for m in messages if m.topic.endswith("/status")]


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)
