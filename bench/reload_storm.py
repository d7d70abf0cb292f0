#!/usr/bin/env python3
"""A SIGHUP storm: how often is a sensor read while reloads keep coming?

One counter sensor every --interval s; --hups SIGHUPs, --gap s apart, to a `sensord run` delivering to a
real mosquitto. A reload should keep each unchanged sensor's schedule, so the reads stay near
(storm length / interval) + 1 instead of one extra read per reload.

`python bench/reload_storm.py [--hups 50] [--gap 0.1] [--interval 0.5]`
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A node whose clock is synchronised, whatever this host's kernel says (docs/clock.md).
os.environ.setdefault("SENSORD_CLOCK_SYNC", "none")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from daemon_harness import Node, wait_until, write_config  # noqa: E402

from sensord.encoding import decode  # noqa: E402
from sensord.testing.broker import Mosquitto, Subscription  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hups", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sensord-storm-"))
    with Mosquitto() as broker, Subscription(broker, "sensord/n1/data") as sub:
        cfg = write_config(work / "s.toml", port=broker.port, sensors=1, interval_s=args.interval)
        node = Node(cfg).start()
        try:
            wait_until(lambda: "running: node" in node.log(), 10, "start")
            t0 = time.monotonic()
            for _ in range(args.hups):
                node.signal(signal.SIGHUP)
                time.sleep(args.gap)
            storm_s = time.monotonic() - t0
            code, _ = node.stop()
        finally:
            node.close()
        time.sleep(0.3)
        stamps = sorted({s.ts for m in sub.messages for s in decode(m.payload).samples
                         if s.sensor == "c0"})
    expected = (stamps[-1] - stamps[0]) / args.interval + 1
    print(f"exit {code}; {args.hups} SIGHUPs over {storm_s:.1f} s; c0 read {len(stamps)} times over "
          f"{stamps[-1] - stamps[0]:.1f} s (one read per interval would be about {expected:.0f}); "
          f"reloads logged: {node.log().count('reloaded')}")


if __name__ == "__main__":
    main()
