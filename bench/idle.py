#!/usr/bin/env python3
"""Idle benchmark: how often `sensord run` wakes up, counted as context switches per minute of all
its threads (`voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of /proc/PID/task/*/status),
against a real mosquitto on loopback (issue 13, item 2: a battery node must sleep until the next
thing it has to do).

Scenarios, each a fresh daemon, buffer and broker, measured over --seconds (default 60) after a
10 s settling time (start-up, first connect, first discovery):
1. `idle`: one `sim` sensor read every 60 s, `keepalive_s = 300`, `max_age_s = 300`: a node that
   has almost nothing to do. The issue's target: <= 5 per minute.
2. `10ch`: the delivery bench's node: 10 `sim` channels read every second, default batching.

Threads that end within the window lose their counts (the thread pool's workers live on, so in
practice none do); threads that start in it count from 0. The Python stack is the interpreter
running this script: run it with `.venv/bin/python` (PyPI: aiomqtt 2, paho 2) and
`.venv-bookworm/bin/python` (asyncio-mqtt 0.16, paho 1.6), as `make bench-idle` does.

    python bench/idle.py [--seconds 60] [--only idle|10ch] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# A node whose clock is synchronised, whatever this host's kernel says (docs/clock.md).
os.environ.setdefault("SENSORD_CLOCK_SYNC", "none")
sys.path.insert(0, str(ROOT))

from sensord.mqtt import LIBRARY  # noqa: E402
from sensord.testing.broker import Mosquitto  # noqa: E402

SETTLE_S = 10.0
SCENARIOS: dict[str, dict[str, Any]] = {
    "idle": {"channels": 1, "interval_s": 60, "keepalive_s": 300, "max_age_s": 300},
    "10ch": {"channels": 10, "interval_s": 1, "keepalive_s": 60, "max_age_s": 60},
}


def config(path: Path, *, port: int, channels: int, interval_s: float, keepalive_s: int, max_age_s: float) -> Path:
    chans = ", ".join(f'"ch{i}"' for i in range(channels))
    path.write_text(f'[node]\nid = "idle"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nkeepalive_s = {keepalive_s}\n'
                    f'[batch]\nmax_age_s = {max_age_s}\n'
                    f'[buffer]\npath = "{path.parent / "buffer.db"}"\n[plugins]\ndirs = []\n'
                    f'[[sensor]]\nname = "s"\ntype = "sim"\ninterval_s = {interval_s}\nsignal = "sine"\n'
                    f'channels = [{chans}]\n')
    return path


def switches(pid: int) -> dict[int, int]:
    """Context switches so far of each thread of `pid`, by thread id."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread just ended
        total = sum(int(line.split()[1]) for line in status.splitlines()
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        out[int(task.name)] = total
    return out


def run_scenario(name: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sensord-idle-") as tmp, Mosquitto() as broker:
        cfg = config(Path(tmp) / "s.toml", port=broker.port, **SCENARIOS[name])
        log = open(Path(tmp) / "s.log", "wb")  # noqa: SIM115 - closed below, after the process
        proc = subprocess.Popen([sys.executable, "-m", "sensord", "-v", "run", "-c", str(cfg)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(SETTLE_S)
            if proc.poll() is not None:
                raise RuntimeError(f"sensord exited with {proc.returncode}: {(Path(tmp) / 's.log').read_text()}")
            before = switches(proc.pid)
            time.sleep(seconds)
            after = switches(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    per_thread = {tid: after[tid] - before.get(tid, 0) for tid in after}
    total = sum(per_thread.values())
    return {"scenario": name, **SCENARIOS[name], "seconds": seconds, "threads": len(after),
            "switches": total, "per_minute": total * 60 / seconds,
            "busiest_threads_per_minute": sorted((v * 60 / seconds for v in per_thread.values()), reverse=True)[:4]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="measuring window per scenario")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="run this scenario alone")
    args = parser.parse_args()
    results = []
    for name in [args.only] if args.only else SCENARIOS:
        print(f"{name}: {SETTLE_S:g} s to settle, then {args.seconds:g} s ...", file=sys.stderr, flush=True)
        results.append(run_scenario(name, args.seconds))
    print(f"context switches per minute, all threads of `sensord run`; MQTT library {LIBRARY}, "
          f"Python {sys.version.split()[0]}")
    print("| scenario | per minute | threads | busiest threads (per minute) |")
    print("|---|---|---|---|")
    for r in results:
        busiest = ", ".join(f"{v:.0f}" for v in r["busiest_threads_per_minute"])
        print(f"| {r['scenario']} ({r['channels']} ch every {r['interval_s']} s, keepalive {r['keepalive_s']} s) | "
              f"{r['per_minute']:.0f} | {r['threads']} | {busiest} |")
    idle = next((r["per_minute"] for r in results if r["scenario"] == "idle"), None)
    if idle is not None:
        print(f"\n{'PASS' if idle <= 5 else 'FAIL'}  idle node <= 5 wake-ups per minute: {idle:.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"library": LIBRARY, "results": results}, indent=2))


if __name__ == "__main__":
    main()
