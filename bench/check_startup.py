#!/usr/bin/env python3
"""How long `sensord check` takes on a config with N sim sensors.

Baseline in the same run: a bare `python3 -c pass` (interpreter start-up alone), so the figure
can be read as "sensord's own cost" on a noisy shared machine. Prints medians over --runs.
One untimed run first writes the bytecode caches (even under PYTHONDONTWRITEBYTECODE), as an
installed package has them: compiling sensord's sources on every run would be measured otherwise.
The three commands take turns, run by run, so a machine that slows down mid-way slows all three;
besides the wall-clock time each run's CPU time (user + system, from wait4) is reported, which a
shared machine blurs less (it still counts cache misses, not the time spent waiting for a core).

    python bench/check_startup.py [--sensors 100] [--runs 15] [--instructions]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmds: dict[str, list[str]], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall-clock and CPU seconds of each command's runs, the commands taking turns."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                raise subprocess.CalledProcessError(proc.returncode, cmd)
            out[name][0].append(time.perf_counter() - t0)
            out[name][1].append(usage.ru_utime + usage.ru_stime)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions of one run of each under valgrind's callgrind: "
                             "a figure that does not depend on the machine's load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp, "bench.toml")
        tables = [f'[[sensor]]\nname = "s{i}"\ntype = "sim"\ninterval_s = 1\nsignal = "counter"\n'
                  for i in range(args.sensors)]
        cfg.write_text('[plugins]\ndirs = []\n' + "\n".join(tables))
        warm_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-m", "sensord", "check", "-c", str(cfg)], check=True,
                       stdout=subprocess.DEVNULL, env=warm_env)
        res = timed({"base": [sys.executable, "-c", "pass"],
                     "check": [sys.executable, "-m", "sensord", "check", "-c", str(cfg)],
                     "open": [sys.executable, "-m", "sensord", "check", "--open", "-c", str(cfg)]}, args.runs)
        counted = ({"base": instructions([sys.executable, "-c", "pass"], tmp),
                    "check": instructions([sys.executable, "-m", "sensord", "check", "-c", str(cfg)], tmp)}
                   if args.instructions else None)
    wall = {k: statistics.median(v[0]) * 1000 for k, v in res.items()}
    cpu = {k: statistics.median(v[1]) * 1000 for k, v in res.items()}
    print(f"sensord check, {args.sensors} sim sensors, median of {args.runs} runs (wall clock; CPU user+sys)")
    print(f"  python3 -c pass (baseline)  {wall['base']:7.1f} ms  {cpu['base']:7.1f} ms CPU")
    print(f"  sensord check               {wall['check']:7.1f} ms  {cpu['check']:7.1f} ms CPU  "
          f"({wall['check'] / wall['base']:.1f}x baseline)")
    print(f"  sensord check --open        {wall['open']:7.1f} ms  {cpu['open']:7.1f} ms CPU")
    own_wall, own_cpu = wall["check"] - wall["base"], cpu["check"] - cpu["base"]
    print(f"  sensord's own share         {own_wall:7.1f} ms  {own_cpu:7.1f} ms CPU")
    if counted:
        print(f"  instructions (callgrind, one run): python3 -c pass {counted['base']:,}, sensord check "
              f"{counted['check']:,}, sensord's own share {counted['check'] - counted['base']:,}")


def instructions(cmd: list[str], tmp: str) -> int:
    """Instructions one run of `cmd` executes (valgrind --tool=callgrind's "Collected")."""
    out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out", *cmd],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True).stderr
    return int(re.search(r"Collected\s*:\s*(\d+)", out).group(1))  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
