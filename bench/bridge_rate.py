#!/usr/bin/env python3
"""Bridge CPU per reading, in one process on one core: `sensord bridge`'s work without the broker.

Batches: `--nodes` nodes, each sending compact batches of one `sim`-like sensor with 10
random-walk channels (0.01 resolution) read at 1 Hz, 60 readings per channel per batch (600
readings, the daemon's default batch). Measured with `time.process_time()` (CPU, not wall):
- decode: `sensord.encoding.decode` alone;
- bridge: `Bridge.handle()` per batch: decode, the dedupe state (one SQLite commit per batch,
  WAL, synchronous=NORMAL, in a temporary directory), line protocol written to /dev/null and,
  with `--json`, JSON lines to a file in a temporary directory. No MQTT (the plain topics cost a
  PUBLISH per channel per batch).

Usage: python bench/bridge_rate.py [--nodes 50] [--batches 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import tomllib
from pathlib import Path

from sensord.bridge import DedupeState, parse_bridge_config
from sensord.bridge.outputs import LineSink
from sensord.bridge.runner import Bridge
from sensord.encoding import ENCODINGS, channel_info, decode, encode_batch
from sensord.sensor import Channel, Sample

T0 = 1_700_000_000.0


def batches(nodes: int, per_node: int, channels: int = 10, readings: int = 60) -> list[tuple[str, bytes]]:
    """Round by round, every node's next batch: nodes interleave, each node's batches in seq order."""
    rng = random.Random(1)
    info = channel_info([("sim", [Channel(f"t{c}", "°C", 0.01) for c in range(channels)])])
    walks = [[20 + rng.uniform(-1, 1) for _ in range(channels)] for _ in range(nodes)]
    out = []
    for b in range(per_node):
        for n, walk in enumerate(walks):
            samples = []
            for i in range(readings):
                ts = T0 + b * readings + i + rng.uniform(0, 0.003)
                for c in range(channels):
                    walk[c] += rng.gauss(0, 0.05)
                    samples.append(Sample("sim", f"t{c}", round(walk[c], 2), "°C", ts))
            out.append((f"node-{n}", encode_batch(f"node-{n}", b + 1, samples, channels=info)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="batches per node")
    parser.add_argument("--json", action="store_true", help="also write JSON lines (to /dev/null)")
    args = parser.parse_args()
    work = batches(args.nodes, args.batches)
    readings = sum(len(decode(p).samples) for _, p in work[:1]) * len(work)

    start = time.process_time()
    for _, payload in work:
        decode(payload)
    decode_s = time.process_time() - start

    with tempfile.TemporaryDirectory() as tmp:
        toml = '[bridge]\nline_protocol = "/dev/null"\n' + (f'json_lines = "{tmp}/rows.jsonl"\n' if args.json else "")
        file = parse_bridge_config(tomllib.loads(toml), "bench")
        state = DedupeState.open(Path(tmp) / "state.sqlite")
        bridge = Bridge(file=file, state=state, encodings=ENCODINGS, line_sink=LineSink("/dev/null"),
                        json_sink=LineSink(f"{tmp}/rows.jsonl") if args.json else None)

        async def run() -> float:
            begin = time.process_time()
            for node, payload in work:
                await bridge.handle(f"sensord/{node}/data", payload)
            return time.process_time() - begin

        bridge_s = asyncio.run(run())
        state.close()
    written = bridge.stats.readings
    print(f"{len(work)} compact batches, {readings} readings ({args.nodes} nodes x {args.batches} batches x 600)")
    print(f"decode:  {decode_s / readings * 1e6:6.2f} us CPU/reading, {readings / decode_s:,.0f} readings/s per core")
    print(f"bridge:  {bridge_s / readings * 1e6:6.2f} us CPU/reading, {readings / bridge_s:,.0f} readings/s per core "
          f"(line protocol{' + JSON lines' if args.json else ''}, state commit per batch; {written} written)")


if __name__ == "__main__":
    main()
