#!/usr/bin/env python3
"""How long `sensord check` takes on a config with N sim sensors.

Baseline in the same run: a bare `python3 -c pass` (interpreter start-up alone), so the figure
can be read as "sensord's own cost" on a noisy shared machine. Prints medians over --runs.
One untimed run first writes the bytecode caches (even under PYTHONDONTWRITEBYTECODE), as an
installed package has them: compiling sensord's sources on every run would be measured otherwise.

    python bench/check_startup.py [--sensors 100] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp, "bench.toml")
        tables = [f'[[sensor]]\nname = "s{i}"\ntype = "sim"\ninterval_s = 1\nsignal = "counter"\n'
                  for i in range(args.sensors)]
        cfg.write_text('[plugins]\ndirs = []\n' + "\n".join(tables))
        warm_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-m", "sensord", "check", "-c", str(cfg)], check=True,
                       stdout=subprocess.DEVNULL, env=warm_env)
        base = timed([sys.executable, "-c", "pass"], args.runs)
        check = timed([sys.executable, "-m", "sensord", "check", "-c", str(cfg)], args.runs)
        check_open = timed([sys.executable, "-m", "sensord", "check", "--open", "-c", str(cfg)], args.runs)
    med = statistics.median
    print(f"sensord check, {args.sensors} sim sensors, median of {args.runs} runs")
    print(f"  python3 -c pass (baseline)  {med(base) * 1000:7.1f} ms")
    print(f"  sensord check               {med(check) * 1000:7.1f} ms  ({med(check) / med(base):.1f}x baseline)")
    print(f"  sensord check --open        {med(check_open) * 1000:7.1f} ms")
    print(f"  sensord's own share         {(med(check) - med(base)) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
