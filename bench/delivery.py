#!/usr/bin/env python3
"""Delivery benchmark: what `sensord run` costs per reading, against a real mosquitto on loopback.

Scenarios (each a fresh daemon, buffer and broker):
1. `wire`: 10 sim channels at 1 Hz for --seconds (default 60), max_age_s = 60, QoS 1. Reports
   bytes the client sent to the broker (TCP payload, and an IP-level estimate of +52 bytes per
   segment: IPv4 20 + TCP 20 + timestamps 12), TCP segments sent, CPU seconds, peak RSS, and
   bytes written to disk per reading (/proc/PID/io write_bytes: the whole run, and the steady
   state after the first 5 s, which leaves out creating the buffer file). Run once per
   `[buffer] durability` mode (--durability, default both; the figures above come from the first).
2. `load`: 100 sim sensors at 1 s for --load-seconds (default 30): CPU per reading, peak RSS.
3. `connect`: time from process start to the first MQTT CONNECT packet, with 100 sensors,
   against a bare `python3 -c pass` start in the same run.

Before the first daemon starts, sensord's and the built-in drivers' bytecode caches are written
(even under PYTHONDONTWRITEBYTECODE), as an installed package has them: without them every start
compiles some 30 modules from source, and the compiler's transient memory (0.8 MiB) was counted
in the peak RSS (and its CPU in the start-up figures).

    python bench/delivery.py [--seconds 60] [--load-seconds 30] [--durability undelivered,interval] [--json FILE]
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import re
import socket
import statistics
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

from sensord.testing.broker import Mosquitto, Subscription  # noqa: E402
from sensord.testing.proxy import TcpProxy  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# The libraries a node imports (either MQTT generation), as distributions install them.
LIBRARIES = ("paho", "aiomqtt", "asyncio_mqtt", "pluggy", "smbus2", "gpiozero", "colorzero", "serial")


def write_bytecode() -> None:
    """The `__pycache__` files of sensord, its built-in drivers and the libraries it imports, as
    installed packages have them (Debian's py3compile writes them at install). compileall writes
    them whatever PYTHONDONTWRITEBYTECODE says. pip does not always: pip 26 in a venv made under
    PYTHONDONTWRITEBYTECODE (set on this machine) left paho and aiomqtt without them, and every
    daemon the bench started compiled them, 5 MiB of the compiler's memory in its peak RSS."""
    for package in ("sensord", "plugins"):
        compileall.compile_dir(ROOT / package, quiet=1)
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        for location in spec.submodule_search_locations or []:
            compileall.compile_dir(location, quiet=1)
        if spec.origin and spec.origin.endswith(".py") and not spec.submodule_search_locations:
            compileall.compile_file(spec.origin, quiet=1)
    for site_dir in {Path(p) for p in sys.path if p.endswith("site-packages")}:
        compileall.compile_dir(site_dir, maxlevels=0, quiet=1)  # .pth hooks: the editable finder


def config(path: Path, *, port: int, sensors: int, channels: int, interval_s: float, max_age_s: float,
           durability: str = "undelivered") -> Path:
    chans = ", ".join(f'"ch{i}"' for i in range(channels))
    tables = "".join(f'[[sensor]]\nname = "s{i}"\ntype = "sim"\ninterval_s = {interval_s}\n'
                     f'signal = "sine"\nchannels = [{chans}]\nseed = {i}\n' for i in range(sensors))
    path.write_text(f'[node]\nid = "bench"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                    f'[batch]\nmax_age_s = {max_age_s}\n'
                    f'[buffer]\npath = "{path.parent / "buffer.db"}"\ndurability = "{durability}"\n'
                    f'[plugins]\ndirs = []\n{tables}')
    return path


def proc_figures(pid: int) -> dict[str, float]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(stat[11]) + int(stat[12])) / CLK_TCK
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {"cpu_s": cpu_s, "peak_rss_kib": hwm, "write_bytes": int(io["write_bytes"])}


def tcp_counters(port: int) -> dict[str, int]:
    """segs_out and bytes_sent of the daemon's sockets towards `port` (from `ss -tin`)."""
    out = subprocess.run(["ss", "-tinH", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    totals = {"segs_out": 0, "bytes_sent": 0}
    for key in totals:
        totals[key] = sum(int(v) for v in re.findall(rf"\b{key}:(\d+)", out))
    return totals


def run_daemon(cfg: Path, seconds: float, *, port: int, readings_per_s: float, warmup_s: float = 5.0,
               on_snapshot: Any = None) -> dict[str, Any]:
    """Run the daemon; figures are taken at `seconds` (before the stop). `steady_*` counts CPU
    from `warmup_s` on, leaving out the interpreter's start-up and imports."""
    proc = subprocess.Popen([sys.executable, "-m", "sensord", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        time.sleep(warmup_s)
        early = proc_figures(proc.pid)
        time.sleep(seconds - warmup_s)
        figures = proc_figures(proc.pid)
        tcp = tcp_counters(port)
        extra = on_snapshot() if on_snapshot else {}
    finally:
        proc.terminate()
        proc.wait(30)
    steady_readings = (seconds - warmup_s) * readings_per_s
    return {**figures, **tcp, **extra, "readings": round(seconds * readings_per_s),
            "steady_cpu_ms_per_reading": (figures["cpu_s"] - early["cpu_s"]) * 1000 / steady_readings,
            "steady_disk_bytes_per_reading": (figures["write_bytes"] - early["write_bytes"]) / steady_readings}


def wire(seconds: float, durability: str = "undelivered") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker, \
            TcpProxy(broker.host, broker.port) as proxy, Subscription(broker, "sensord/bench/data") as sub:
        cfg = config(Path(tmp, "wire.toml"), port=proxy.listen_port, sensors=1, channels=10, interval_s=1,
                     max_age_s=seconds, durability=durability)
        from sensord.encoding import decode

        def snapshot() -> dict[str, Any]:
            # Everything the node sent so far: CONNECT, status, meta, the batch(es), pings.
            return {"delivered": sum(len(decode(m.payload).samples) for m in sub.messages),
                    "payload_bytes": sum(len(m.payload) for m in sub.messages),
                    "proxy_bytes_up": proxy.bytes_up, "batches": len(sub.messages)}

        # A little past `seconds`, so the batch sealed at max_age_s = seconds has gone out.
        fig = run_daemon(cfg, seconds + 3, port=proxy.listen_port, readings_per_s=10, on_snapshot=snapshot)
    n = max(1, fig["delivered"])
    fig["bytes_per_reading"] = fig["proxy_bytes_up"] / n
    fig["ip_bytes_per_reading"] = (fig["proxy_bytes_up"] + 52 * fig["segs_out"]) / n
    fig["segments_per_reading"] = fig["segs_out"] / n
    fig["cpu_ms_per_reading"] = fig["cpu_s"] * 1000 / n
    fig["disk_bytes_per_reading"] = fig["write_bytes"] / n
    fig["payload_bytes_per_reading"] = fig["payload_bytes"] / n
    fig["durability"] = durability
    return fig


def load(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        cfg = config(Path(tmp, "load.toml"), port=broker.port, sensors=100, channels=1, interval_s=1, max_age_s=60)
        fig = run_daemon(cfg, seconds, port=broker.port, readings_per_s=100)
    fig["cpu_ms_per_reading"] = fig["cpu_s"] * 1000 / fig["readings"]
    fig["disk_bytes_per_reading"] = fig["write_bytes"] / fig["readings"]
    return fig


def time_to_connect(runs: int) -> dict[str, Any]:
    def one(cmd: list[str], port: int | None) -> float:
        server = None
        if port is not None:
            server = socket.create_server(("127.0.0.1", port))
            server.settimeout(30)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            if server is None:
                proc.wait(30)
                return time.perf_counter() - t0
            conn, _ = server.accept()
            first = conn.recv(1)  # CONNECT is the first packet: fixed header byte 0x10
            elapsed = time.perf_counter() - t0
            assert first == b"\x10", first
            conn.close()
            return elapsed
        finally:
            proc.kill()
            proc.wait()
            if server is not None:
                server.close()

    with tempfile.TemporaryDirectory() as tmp:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        cfg = config(Path(tmp, "c.toml"), port=port, sensors=100, channels=1, interval_s=1, max_age_s=60)
        base = [one([sys.executable, "-c", "pass"], None) for _ in range(runs)]
        conn = [one([sys.executable, "-m", "sensord", "run", "-c", str(cfg)], port) for _ in range(runs)]
    return {"python_start_ms": statistics.median(base) * 1000, "to_connect_ms": statistics.median(conn) * 1000,
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="wire scenario length = max_age_s")
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--durability", default="undelivered,interval",
                        help="comma-separated [buffer] durability modes for scenario 1 (default: both)")
    parser.add_argument("--only", choices=["wire", "load", "connect"], action="append",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    modes = [m for m in args.durability.split(",") if m]
    write_bytecode()
    chosen = set(args.only or ["wire", "load", "connect"])
    results: dict[str, Any] = {}
    if "wire" in chosen:
        results["wire_by_durability"] = {mode: wire(args.seconds, mode) for mode in modes}
        results["wire"] = results["wire_by_durability"][modes[0]]
        print_wire(args.seconds, results["wire_by_durability"])
    if "load" in chosen:
        ld = results["load"] = load(args.load_seconds)
        print(f"2. 100 sensors at 1 s for {args.load_seconds:g} s: CPU {ld['cpu_ms_per_reading']:.3f} ms/reading "
              f"with start-up, {ld['steady_cpu_ms_per_reading']:.3f} after it, "
              f"peak RSS {ld['peak_rss_kib'] / 1024:.1f} MiB, disk {ld['disk_bytes_per_reading']:.0f} B/reading")
    if "connect" in chosen:
        c = results["connect"] = time_to_connect(args.runs)
        print(f"3. start to MQTT CONNECT, 100 sensors: {c['to_connect_ms']:.0f} ms median of {c['runs']} "
              f"(bare python3 start: {c['python_start_ms']:.0f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def print_wire(seconds: float, by_mode: dict[str, dict[str, Any]]) -> None:
    for mode, w in by_mode.items():
        print(f"1. 10 channels at 1 Hz for {seconds:g} s, max_age_s = {seconds:g}, QoS 1, durability = {mode} "
              f"({w['delivered']} readings in {w['batches']} batches)")
        print(f"   to broker:  {w['bytes_per_reading']:.2f} B/reading TCP payload, "
              f"{w['ip_bytes_per_reading']:.2f} B/reading at IP level, {w['segs_out']} TCP segments "
              f"({w['segments_per_reading']:.3f}/reading)")
        print(f"   CPU {w['cpu_s']:.2f} s ({w['cpu_ms_per_reading']:.3f} ms/reading with start-up, "
              f"{w['steady_cpu_ms_per_reading']:.3f} after it), peak RSS {w['peak_rss_kib'] / 1024:.1f} MiB")
        print(f"   disk: {w['disk_bytes_per_reading']:.1f} B/reading written over the whole run, "
              f"{w['steady_disk_bytes_per_reading']:.1f} after the first 5 s "
              f"(payload {w['payload_bytes_per_reading']:.2f} B/reading)")


if __name__ == "__main__":
    main()
