#!/usr/bin/env python3
"""CPU per reading of `sensord run` after start-up, to the nanosecond: the delivery bench's wire
node (one `sim` sensor, 10 channels at 1 Hz, default settings, a real mosquitto on loopback).

`bench/delivery.py` counts CPU in clock ticks (/proc/PID/stat, 10 ms each): over its minute that
is about 0.017 ms per reading, a third of issue 13's 0.06 ms target. This bench sums the
scheduler's own run time of every thread (/proc/PID/task/*/schedstat, in ns) between the end of
`--warmup` and the end of `--seconds`, per thread and in all, and reports the peak RSS (VmHWM).
Run it alternately with the tree you compare against: a shared machine drifts within minutes.

    python bench/steady_cpu.py [--seconds 65] [--warmup 5] [--interval 1] [--rounds 1] [--json FILE]

`--interval 3600` gives the idle cost (the node reads once, at the start).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from delivery import config, write_bytecode  # noqa: E402  (bench/ is the script's directory)

from sensord.testing.broker import Mosquitto  # noqa: E402

CHANNELS = 10


def thread_ns(pid: int) -> dict[str, int]:
    """Run time (ns) of each live thread of `pid`, by thread id and name."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            out[f"{task.name}:{name}"] = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return out


def one_run(seconds: float, warmup: float, interval_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        # The delivery bench's node (scenario 1): one sim sensor with CHANNELS sine channels.
        cfg = config(Path(tmp, "node.toml"), port=broker.port, sensors=1, channels=CHANNELS,
                     interval_s=interval_s, max_age_s=60)
        proc = subprocess.Popen([sys.executable, "-m", "sensord", "run", "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            time.sleep(warmup)
            before = thread_ns(proc.pid)
            time.sleep(seconds - warmup)
            after = thread_ns(proc.pid)
            status = Path(f"/proc/{proc.pid}/status").read_text()
        finally:
            proc.terminate()
            proc.wait(30)
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    per_thread = {k: (v - before.get(k, 0)) / 1e6 for k, v in after.items()}
    readings = (seconds - warmup) / interval_s * CHANNELS
    return {"cpu_ms": sum(per_thread.values()), "per_thread_ms": per_thread,
            "cpu_ms_per_reading": sum(per_thread.values()) / readings, "peak_rss_mib": hwm / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=65)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--interval", type=float, default=1, help="interval_s of the sensor")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    write_bytecode()
    runs = [one_run(args.seconds, args.warmup, args.interval) for _ in range(args.rounds)]
    for run in runs:
        threads = ", ".join(f"{k} {v:.1f}" for k, v in run["per_thread_ms"].items())
        print(f"CPU {run['cpu_ms']:.1f} ms in {args.seconds - args.warmup:g} s after start-up "
              f"({run['cpu_ms_per_reading']:.4f} ms per reading; threads: {threads}), "
              f"peak RSS {run['peak_rss_mib']:.1f} MiB")
    if len(runs) > 1:
        print(f"median: {statistics.median(r['cpu_ms_per_reading'] for r in runs):.4f} ms per reading")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
