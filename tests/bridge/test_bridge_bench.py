"""bench/bridge_rate.py runs (small), so its figures in docs/fleet.md can be made again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bridge_rate_bench_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bridge_rate.py"), "--nodes", "2", "--batches", "2",
                          "--json"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert "4 compact batches, 2400 readings" in out
    assert "2400 written" in out


def test_fleet_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet.py"), "--nodes", "2", "--seconds", "3",
                          "--channels", "2", "--interval", "0.2", "--max-age", "0.5"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert "duplicates 0" in out and "lost 0" in out, out
