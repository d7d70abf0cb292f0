#!/usr/bin/env python3
"""Fleet benchmark: many `sensord run` nodes against one mosquitto and one or more `sensord bridge`.

Each node reads one `sim` sensor (`signal = "counter"`, `--channels` channels, every
`--interval` s), seals a batch every `--max-age` s (compact, QoS 1) and publishes to one
mosquitto on loopback; the bridges (`--bridges`, a shared group when more than one) write JSON
lines to files. The script tails those files, stamping each row when it sees it (polled every
20 ms). After `--seconds`, the nodes get SIGTERM (they deliver their open batch), the bridges
are given time to catch up and get SIGTERM.

Figures: readings produced (the counter's values per channel tell how many each node read) vs.
written (distinct node/sensor/quantity/time), lost (gaps in a channel's counter; readings due
between a channel's last one written and the nodes' SIGTERM, one read of slack; channels with
nothing written at all), duplicates; end-to-end latency p50/p99 from
the reading's time to the row seen in the output (includes the batch age: up to `--max-age`);
CPU seconds and RSS (sum and per process) of the nodes and the bridges, bridge CPU per reading.

Usage: python bench/fleet.py [--nodes 50] [--seconds 60] [--bridges 1] [--channels 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from delivery import write_bytecode  # bench/ is the script's directory

from sensord.testing.broker import Mosquitto

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_rss(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS in KiB) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss


def node_config(work: Path, port: int, name: str, args: argparse.Namespace) -> Path:
    d = work / name
    d.mkdir()
    channels = ", ".join(f'"c{i}"' for i in range(args.channels))
    path = d / "sensord.toml"
    path.write_text(f'[node]\nid = "{name}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                    f'[batch]\nmax_age_s = {args.max_age}\n[buffer]\npath = "{d / "buffer.db"}"\n'
                    f'[clock]\nsync_wait_s = 0\n[plugins]\ndirs = []\n'
                    f'[[sensor]]\nname = "s"\ntype = "sim"\ninterval_s = {args.interval}\nsignal = "counter"\n'
                    f'channels = [{channels}]\n')
    return path


def bridge_config(work: Path, port: int, index: int, shared: bool) -> tuple[Path, Path]:
    out = work / f"bridge-{index}.jsonl"
    path = work / f"bridge-{index}.toml"
    path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n[bridge]\nclient_id = "bench-bridge-{index}"\n'
                    f'state_dir = "{work / f"bridge-{index}-state"}"\nline_protocol = ""\njson_lines = "{out}"\n'
                    + ('shared_group = "bench"\n' if shared else "") + '[plugins]\ndirs = []\n')
    return path, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--bridges", type=int, default=1)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reads of a node's sensor")
    parser.add_argument("--max-age", type=float, default=5.0, help="[batch] max_age_s of the nodes")
    args = parser.parse_args()
    python = sys.executable
    write_bytecode()  # as installed packages have them (bench/delivery.py)
    with tempfile.TemporaryDirectory(prefix="sensord-fleet-") as tmp, Mosquitto() as broker:
        work = Path(tmp)
        bridges, outputs = [], []
        for i in range(args.bridges):
            cfg, out = bridge_config(work, broker.port, i, args.bridges > 1)
            log = (work / f"bridge-{i}.log").open("wb")
            bridges.append(subprocess.Popen([python, "-m", "sensord", "-v", "bridge", "-c", str(cfg)],
                                            stdout=subprocess.DEVNULL, stderr=log))
            outputs.append(out)
        for i in range(args.bridges):
            deadline = time.monotonic() + 30
            while b"subscribed to" not in (work / f"bridge-{i}.log").read_bytes():
                if time.monotonic() > deadline:
                    sys.exit(f"bridge {i} did not subscribe:\n{(work / f'bridge-{i}.log').read_text()}")
                time.sleep(0.05)
        baseline = sum(cpu_rss(p.pid)[0] for p in bridges)  # start-up (imports, connect) is not per reading
        nodes = []
        for n in range(args.nodes):
            cfg = node_config(work, broker.port, f"node-{n:04d}", args)
            log = cfg.with_suffix(".log").open("wb")
            nodes.append(subprocess.Popen([python, "-m", "sensord", "run", "-c", str(cfg)],
                                          stdout=log, stderr=log))
        seen: dict[tuple[str, str, str, float], int] = {}
        maxima: dict[tuple[str, str, str], float] = {}
        last_ts: dict[tuple[str, str, str], float] = {}  # the time of each channel's largest value
        latency: list[float] = []
        rows_total = 0
        offsets = [0] * len(outputs)

        def tail() -> int:
            nonlocal rows_total
            got = 0
            now = time.time()
            for k, out in enumerate(outputs):
                if not out.exists():
                    continue
                with out.open("rb") as fh:
                    fh.seek(offsets[k])
                    data = fh.read()
                end = data.rfind(b"\n") + 1
                offsets[k] += end
                for line in data[:end].splitlines():
                    row = json.loads(line)
                    if "sensor" not in row:
                        continue
                    key = (row["node"], row["sensor"], row["quantity"], row["ts"])
                    seen[key] = seen.get(key, 0) + 1
                    channel = key[:3]
                    if row["value"] > maxima.get(channel, -1):
                        maxima[channel], last_ts[channel] = row["value"], row["ts"]
                    rows_total += 1
                    got += 1
                    latency.append(now - row["ts"])
            return got

        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            tail()
            time.sleep(0.02)
        usage = [cpu_rss(p.pid) for p in nodes]
        stopped_at = time.time()  # every read before this is to be delivered (SIGTERM: a last delivery)
        for p in nodes:
            p.send_signal(signal.SIGTERM)
        for p in nodes:
            p.wait(60)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3:
            if tail():
                quiet_since = time.monotonic()
            time.sleep(0.02)
        bridge_usage = [cpu_rss(p.pid) for p in bridges]
        for p in bridges:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
    # The counter: a node's reads are numbered 0, 1, 2 ... on every channel, so the largest value
    # written + 1 is how many reads the channel had up to its last one delivered.
    produced = sum(int(v) + 1 for v in maxima.values())
    written = len(seen)
    gaps = produced - written
    # What the counter cannot show: readings after a channel's last one written (a lost last
    # batch). The reads went on every --interval until SIGTERM; one read may race the signal.
    tail = sum(max(0, round((stopped_at - ts) / args.interval) - 1) for ts in last_ts.values())
    silent = args.nodes * args.channels - len(maxima)  # channels with nothing written at all
    lost = gaps + tail + silent * round(args.seconds / args.interval)
    duplicates = rows_total - written
    latency.sort()
    node_cpu = sum(c for c, _ in usage)
    node_rss = sum(r for _, r in usage)
    br_cpu = sum(c for c, _ in bridge_usage) - baseline
    print(f"{args.nodes} nodes x {args.channels} channels every {args.interval:g} s, batches every {args.max_age:g} s, "
          f"{args.seconds:g} s, {args.bridges} bridge(s)")
    print(f"readings written {written} (distinct), rows {rows_total}, duplicates {duplicates}, "
          f"produced (counter values) {produced}, lost {lost} (gaps {gaps}, after the last written {tail}, "
          f"channels with nothing written {silent})")
    if latency:
        print(f"latency reading -> output: p50 {statistics.median(latency):.2f} s, "
              f"p99 {latency[int(len(latency) * 0.99) - 1]:.2f} s")
    print(f"nodes: CPU {node_cpu:.1f} s in all ({node_cpu / args.nodes:.2f} s each), RSS {node_rss / 1024:.0f} MiB "
          f"in all ({node_rss / 1024 / args.nodes:.1f} MiB each)")
    print(f"bridges: CPU {br_cpu:.2f} s after start-up, {br_cpu / max(written, 1) * 1e6:.1f} us per reading written, "
          f"RSS {sum(r for _, r in bridge_usage) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
