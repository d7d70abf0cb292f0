#!/usr/bin/env python3
"""Instructions per reading of the steady-state pipeline, counted by valgrind's callgrind: a CPU
figure that does not depend on the machine or on what else runs on it (issue 13, item 3).

The pipeline is the daemon's own: `sensord.pipeline.Pipeline` with a real SQLite `Buffer`, fed the
readings of the wire bench's node (one `sim` sensor, 10 random-walk channels, `filters =
[{round = 2}]`, compact encoding, batches of 600 readings). Per read of the sensor: filters →
open batch; every 5 reads the open batch is staged (`commit_interval_s = 5` at 1 Hz) when the
buffer asks for it; every 600 readings the batch is encoded and sealed, and then acknowledged
(deleted) as the publisher does after a PUBACK. No MQTT, no scheduler, no sensor driver: the
readings are made up front. Run once per `[buffer] durability` mode (--durability): with
"undelivered" and a link that delivers, the buffer holds the batch in memory and stages nothing;
with "interval" it stages every 5 reads and writes every batch to SQLite.

Counting: callgrind counts every instruction of the process, start-up included. Four runs take
it out: the pipeline over N1 and N2 readings, and the same two runs making the readings only;
instructions per reading = ((P(N2) - P(N1)) - (G(N2) - G(N1))) / (N2 - N1).

    python bench/instructions.py [--readings 1200,7200] [--durability undelivered,interval] [--json FILE]

(`make bench-instructions`). Needs valgrind (`apt-get install -y valgrind`). About 2 minutes per mode.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = [f"t{i}" for i in range(10)]
CONFIG = ('[node]\nid = "bench"\n[plugins]\ndirs = []\n[homeassistant]\ndiscovery = false\n'
          '[[sensor]]\nname = "sim"\ntype = "sim"\ninterval_s = 1\nsignal = "random_walk"\n'
          f'channels = [{", ".join(repr(c).replace(chr(39), chr(34)) for c in CHANNELS)}]\n'
          'filters = [{round = 2}]\n')


def make_reads(n_reads: int) -> list[list[object]]:
    """The samples of `n_reads` reads of the 10-channel sensor, 1 s apart (a random walk on 0.01)."""
    from sensord.sensor import Sample

    rng = random.Random(1)
    values = [20.0 + rng.uniform(-1, 1) for _ in CHANNELS]
    reads: list[list[object]] = []
    for k in range(n_reads):
        ts = 1_700_000_000.0 + k + rng.uniform(0, 0.003)
        values = [v + rng.gauss(0, 0.02) for v in values]
        reads.append([Sample("sim", q, v, "°C", ts) for q, v in zip(CHANNELS, values, strict=True)])
    return reads


def inner(readings: int, pipeline_on: bool, workdir: Path, durability: str = "interval") -> int:
    """The measured process: make the readings, and (with `pipeline_on`) run them through.
    Returns the number of batches sealed and acknowledged."""
    reads = make_reads(readings // len(CHANNELS))
    if not pipeline_on:
        return 0
    from sensord import startup
    from sensord.batch import Batcher
    from sensord.buffer import Buffer
    from sensord.hardware import Hardware
    from sensord.pipeline import Pipeline

    cfg = workdir / "bench.toml"
    cfg.write_text(CONFIG)
    loaded = startup.load_runnable(str(cfg), entry_points=False)
    (spec,) = loaded.config.sensors
    sensor = startup.build_sensor(spec, loaded, Hardware())
    buffer = Buffer.open(workdir / f"buffer-{readings}-{durability}.db", max_bytes=1 << 26, durability=durability)
    buffer.set_link(True)  # the broker acknowledges every batch
    batcher = Batcher(max_age_s=3600, max_readings=600, max_bytes=65536)
    pipeline = Pipeline(buffer, node="bench", batcher=batcher, encoding="compact", commit_interval_s=5)
    pipeline.configure([(spec.name, spec.filters, sensor)], node="bench", batcher=batcher, encoding="compact")
    acknowledged = 0
    for k, samples in enumerate(reads):
        pipeline.add(samples)  # type: ignore[arg-type]
        if k % 5 == 4 and buffer.staging_needed():
            pipeline.stage()
        page = buffer.peek(20)
        if page:
            buffer.ack_many([b.seq for b in page])
            acknowledged += len(page)
    buffer.close()
    return acknowledged


def callgrind(readings: int, pipeline_on: bool, workdir: Path, valgrind: str, durability: str) -> int:
    out = workdir / f"callgrind.{readings}.{int(pipeline_on)}.{durability}"
    cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
           "--inner", str(readings), "--pipeline" if pipeline_on else "--no-pipeline", "--workdir", str(workdir),
           "--durability", durability]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction count in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", default="1200,7200",
                        help="N1,N2 (multiples of 600, whole batches; default %(default)s)")
    parser.add_argument("--durability", default="undelivered,interval",
                        help="comma-separated [buffer] durability modes (default %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="write the counts here")
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", dest="pipeline_on", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-pipeline", dest="pipeline_on", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner is not None:
        inner(args.inner, args.pipeline_on, Path(args.workdir), args.durability)
        return
    n1, n2 = (int(n) for n in args.readings.split(","))
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind not found: install it with 'apt-get install -y valgrind' (as root)")
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="sensord-instr-") as tmp:
        for durability in [m for m in args.durability.split(",") if m]:
            counts: dict[str, int] = {}
            for n in (n1, n2):
                for on in (False, True):
                    key = f"{'pipeline' if on else 'make_readings'}_{n}"
                    print(f"callgrind: {durability} {key} ...", file=sys.stderr, flush=True)
                    counts[key] = callgrind(n, on, Path(tmp), valgrind, durability)
            pipe = counts[f"pipeline_{n2}"] - counts[f"pipeline_{n1}"]
            gen = counts[f"make_readings_{n2}"] - counts[f"make_readings_{n1}"]
            per_reading = (pipe - gen) / (n2 - n1)
            results[durability] = {"counts": counts, "instructions_per_reading": per_reading}
            print(f"steady-state pipeline (filters -> batch -> compact encode -> buffer, durability = {durability}: "
                  f"sealed and acknowledged every 600 readings), {sys.version.split()[0]}:")
            for key, value in counts.items():
                print(f"  {key:<22} {value:>15,} instructions")
            print(f"instructions per reading: {per_reading:,.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"readings": [n1, n2], "by_durability": results}, indent=2))

if __name__ == "__main__":
    main()
