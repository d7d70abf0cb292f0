#!/usr/bin/env python3
"""Wire benchmark: what each batch encoding costs on the wire and in CPU, against a real mosquitto.

For each encoding (default: all of `sensord.encoding.ENCODINGS` and `per_channel`), one at a time
so the captures stay clean: a fresh mosquitto on loopback and a fresh `sensord run` (new buffer)
reading one `sim` sensor with 10 `random_walk` channels at 1 Hz (0.01 resolution, `round = 2`),
`[batch] max_age_s = 60`, `[mqtt] qos = 1`, default keepalive (60 s), for `--seconds` (default
125: two full batches), then SIGTERM (the daemon seals and delivers the open batch, publishes
`offline` and disconnects). `tcpdump -i lo 'tcp dst port PORT'` records everything sent to the
broker; this script parses the pcap itself, keeps the daemon's connection (by its CONNECT client
id; the test subscriber's packets go to the same port) and reassembles its MQTT packets.

Figures, per encoding:
- IP bytes/reading: the IPv4 total lengths of the daemon's packets to the broker (SYN, data,
  pure ACKs, FIN), divided by the readings. Downstream traffic (CONNACK, PUBACK, PINGRESP) is
  not counted; the client's ACKs of it are. Link headers (Ethernet, radio) are not included.
- segments/min: all TCP segments to the broker (incl. pure ACKs), and those carrying data.
- whole run: everything from SYN to FIN (CONNECT, status, meta, batches, pings, offline,
  DISCONNECT) over the readings a subscriber received (`sensord.encoding.decode`; for
  per_channel, messages on `sensord/<node>/+/+`), per minute of capture.
- steady state: the batch period, free of start-up and shutdown. The window opens after the
  last segment of the first batch (for per_channel: the first burst of messages) and closes with
  the last segment of the last batch sent before SIGTERM; it holds whole periods, each with one
  batch, the client's ACK of the previous PUBACK and any keepalive ping. Readings are those of
  the batches sent in it. With only one batch (short runs) it opens after the meta PUBLISH.
  Keepalive pings need not follow the batch period (paho 2.x pings every keepalive_s whatever
  was published), so a one-period window may hold 0 or 2 of them: use a larger --seconds
  (e.g. 430: seven periods) for the long-run ping rate.
- lo's MTU is 65536, so a batch of any size goes out in one segment; "at MTU 1500" counts the
  data segments a 1448-byte MSS would need (the IP bytes then grow by 52 per extra segment).
- encode / decode µs per reading: `bench_codec()` on a 10 x 60 random-walk batch made by the sim
  plugin (0-3 ms scheduling jitter). per_channel: encode = compact encode + compact decode +
  `sensord.mqtt.format_value` (the daemon buffers compact batches and splits them when publishing), decode =
  `float()` of the text payload.

Home Assistant discovery (`[homeassistant]`) is off in these runs, except in `compact+ha`: the
same as `compact` with discovery on, so the difference is what the retained state message after
each batch costs (the device message goes out once, before the steady window).

Targets checked for `compact` (steady state): <= 8 IP bytes/reading; <= 1/10 of per_channel;
data segments = one per batch plus keepalive pings, also at MTU 1500. For `compact+ha`: < 0.5 IP
bytes/reading more than `compact`, one state PUBLISH per batch.

    .venv/bin/python bench/wire.py [--seconds 125] [--encodings compact,per_channel] [--json FILE]
                                   [--pcap-dir DIR]

Needs root (or CAP_NET_RAW) for tcpdump; install it with `apt-get install -y tcpdump`.
About 6 x (--seconds + 5) seconds in all.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# A node whose clock is synchronised, whatever this host's kernel says (docs/clock.md).
os.environ.setdefault("SENSORD_CLOCK_SYNC", "none")
sys.path.insert(0, str(ROOT))

from sensord.encoding import (  # noqa: E402
    ENCODINGS,
    BatchData,
    DecodeError,
    Encoding,
    channel_info,
    decode,
    get_encoding,
)
from sensord.hardware import Hardware  # noqa: E402
from sensord.mqtt import format_value  # noqa: E402
from sensord.sensor import Sample  # noqa: E402
from sensord.testing.broker import Mosquitto, Subscription  # noqa: E402
from sensord_plugins.sim import SimConfig, SimSensor  # noqa: E402

PER_CHANNEL = "per_channel"
WITH_HA = "+ha"  # an encoding with Home Assistant discovery on (`compact+ha`)
NODE, PREFIX = "bench", "sensord"
CLIENT_ID = f"sensord-{NODE}"
CHANNELS = [f"t{i}" for i in range(10)]
BURST_GAP_S = 2.0  # per_channel: data PUBLISHes closer than this belong to one batch
MSS_1500 = 1448  # TCP payload per segment on a 1500-byte MTU link with timestamps
TCPDUMP_HINT = "tcpdump not found: install it with 'apt-get install -y tcpdump' (run as root)"
# pcap link types tcpdump may write for lo: header length and where the ethertype sits in it.
LINK_TYPES: dict[int, tuple[int, int | None]] = {1: (14, 12), 113: (16, 14), 276: (20, 0), 0: (4, None),
                                                 12: (0, None), 101: (0, None), 228: (0, None)}
SYN, FIN = 0x02, 0x01
CONNECT, PUBLISH, PINGREQ = 1, 3, 12


@dataclass(frozen=True, slots=True)
class Segment:
    """One captured TCP segment to the broker."""

    ts: float
    src_port: int
    ip_len: int
    seq: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class MqttPacket:
    """One client-to-broker MQTT control packet; `first`/`last`: indexes of the segments holding
    its first and last byte."""

    kind: int
    size: int
    first: int
    last: int
    topic: str = ""
    payload: bytes = b""


# -- pcap and MQTT parsing ------------------------------------------------------------------------

def read_pcap(path: Path, port: int) -> list[Segment]:
    """The IPv4 TCP segments to `port` in a classic pcap file (micro- or nanosecond, either byte order)."""
    data = path.read_bytes()
    magic = data[:4]
    for endian in "<>":
        if len(data) >= 24 and struct.unpack(endian + "I", magic)[0] in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError(f"{path}: not a classic pcap file (magic 0x{magic.hex()}; pcapng is not read)")
    ts_unit = 1e-9 if struct.unpack(endian + "I", magic)[0] == 0xA1B23C4D else 1e-6
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0xFFFF
    if linktype not in LINK_TYPES:
        raise ValueError(f"{path}: link type {linktype} not handled (expected one of {sorted(LINK_TYPES)})")
    skip, ethertype_at = LINK_TYPES[linktype]
    segments, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        if ethertype_at is not None and frame[ethertype_at:ethertype_at + 2] != b"\x08\x00":
            continue
        ip = frame[skip:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        # 0 is what a TSO/GSO super-packet may carry; its real size is then the original length.
        ip_len = struct.unpack("!H", ip[2:4])[0] or origlen - skip
        sport, dport, seq, _ack, off_flags = struct.unpack("!HHIIH", ip[ihl:ihl + 14])
        if dport != port:
            continue
        tcp_len = (off_flags >> 12) * 4
        payload = ip[ihl + tcp_len:ip_len]
        if len(payload) < ip_len - ihl - tcp_len:
            raise ValueError(f"{path}: packet truncated to {caplen} of {origlen} bytes; capture with -s 0")
        segments.append(Segment(sec + frac * ts_unit, sport, ip_len, seq, off_flags & 0x1FF, payload))
    return segments


def _varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """An MQTT variable byte integer at `pos`: (value, position after it). IndexError if cut short."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80 or shift > 21:
            return value, pos


def _string(buf: bytes | bytearray, pos: int) -> tuple[str, int]:
    n = struct.unpack("!H", buf[pos:pos + 2])[0]
    return bytes(buf[pos + 2:pos + 2 + n]).decode(errors="replace"), pos + 2 + n


def mqtt_packets(segments: Sequence[Segment], indexes: Sequence[int]) -> tuple[str, list[MqttPacket]]:
    """Reassemble one flow (`indexes` into `segments`, in capture order) and split it into MQTT
    packets: (CONNECT client id, packets). Retransmitted bytes are skipped; a gap raises."""
    stream, starts, owners = bytearray(), [], []
    expected: int | None = None
    for i in indexes:
        seg = segments[i]
        if seg.flags & SYN:
            expected = (seg.seq + 1) & 0xFFFFFFFF
            continue
        if not seg.payload:
            continue
        if expected is None:
            return "", []  # began before the capture (the subscriber): not the daemon's
        ahead = ((seg.seq - expected + 2**31) % 2**32) - 2**31
        if ahead > 0:
            raise ValueError(f"port {seg.src_port}: {ahead} bytes missing from the capture before segment {i}")
        if -ahead < len(seg.payload):
            starts.append(len(stream))
            owners.append(i)
            stream += seg.payload[-ahead:]
            expected = (seg.seq + len(seg.payload)) & 0xFFFFFFFF
    packets, pos, level, client_id = [], 0, 4, ""
    while pos < len(stream):
        try:
            length, body = _varint(stream, pos + 1)
            end = body + length
            if end > len(stream):
                break  # cut off by the end of the capture
            kind, topic, payload = stream[pos] >> 4, "", b""
            if kind == CONNECT:
                _, p = _string(stream, body)
                level = stream[p]
                p += 4  # level, flags, keepalive
                if level == 5:
                    props, p = _varint(stream, p)
                    p += props
                client_id, _ = _string(stream, p)
            elif kind == PUBLISH:
                topic, p = _string(stream, body)
                p += 2 if stream[pos] & 0x06 else 0  # packet id at QoS 1 and 2
                if level == 5:
                    props, p = _varint(stream, p)
                    p += props
                payload = bytes(stream[p:end])
        except (IndexError, struct.error) as exc:
            raise ValueError(f"port {segments[indexes[0]].src_port}: malformed MQTT at byte {pos}") from exc
        first = owners[bisect.bisect_right(starts, pos) - 1]
        last = owners[bisect.bisect_right(starts, end - 1) - 1]
        packets.append(MqttPacket(kind, end - pos, first, last, topic, payload))
        pos = end
    return client_id, packets


def readings_in(packet: MqttPacket, per_channel: bool) -> int:
    return 1 if per_channel else len(decode(packet.payload).samples)


# -- analysis -------------------------------------------------------------------------------------

def figures(segments: Sequence[Segment], picked: Sequence[int], readings: int, span_s: float,
            data: Sequence[MqttPacket], pings: int) -> dict[str, Any]:
    """Bytes, segments and rates of the segments `picked`, carrying `readings` in `data` PUBLISHes."""
    segs = [segments[i] for i in picked]
    carrying = [s for s in segs if s.payload]
    minutes = max(span_s, 1e-9) / 60
    ip_bytes = sum(s.ip_len for s in segs)
    return {
        "readings": readings, "span_s": span_s, "ip_bytes": ip_bytes, "segments": len(segs),
        "data_segments": len(carrying),
        "pure_acks": sum(1 for s in segs if not s.payload and not s.flags & (SYN | FIN)),
        "ip_bytes_per_reading": ip_bytes / readings if readings else None,
        "segments_per_min": len(segs) / minutes, "data_segments_per_min": len(carrying) / minutes,
        "data_publishes": len(data), "pingreqs": pings,
        "payload_bytes_per_reading": sum(len(p.payload) for p in data) / readings if readings else None,
        "mqtt_overhead_bytes_per_publish": sum(p.size - len(p.payload) for p in data) / len(data) if data else None,
        "data_segments_at_mtu_1500": sum(-(-len(s.payload) // MSS_1500) for s in carrying),
        "publishes_in_one_segment": all(p.first == p.last for p in data),
    }


def analyse(segments: Sequence[Segment], *, sigterm_ts: float, per_channel: bool,
            delivered: int) -> dict[str, Any]:
    """Whole-run and steady-state figures of the daemon's connection(s) in the capture."""
    flows: dict[int, list[int]] = {}
    for i, seg in enumerate(segments):
        flows.setdefault(seg.src_port, []).append(i)
    picked: list[int] = []
    packets: list[MqttPacket] = []
    for indexes in flows.values():
        client_id, flow_packets = mqtt_packets(segments, indexes)
        if client_id == CLIENT_ID:
            picked += indexes
            packets += flow_packets
    if not picked:
        raise RuntimeError(f"no connection with client id {CLIENT_ID!r} in the capture")
    picked.sort()
    packets.sort(key=lambda p: p.last)
    own = {f"{PREFIX}/{NODE}/status", f"{PREFIX}/{NODE}/meta", f"{PREFIX}/{NODE}/state"}
    data = [p for p in packets if p.kind == PUBLISH and p.topic not in own and not p.topic.startswith("homeassistant/")]
    states = [p for p in packets if p.kind == PUBLISH and p.topic == f"{PREFIX}/{NODE}/state"]
    # A batch is one PUBLISH, or for per_channel a burst of them; the shutdown batch is its own.
    bursts: list[list[MqttPacket]] = []
    for p in data:
        prev = segments[bursts[-1][-1].last].ts if bursts else 0.0
        now = segments[p.first].ts
        if per_channel and now - prev < BURST_GAP_S and (prev < sigterm_ts) == (now < sigterm_ts):
            bursts[-1].append(p)
        else:
            bursts.append([p])
    pings = [p for p in packets if p.kind == PINGREQ]
    whole = figures(segments, picked, delivered, segments[picked[-1]].ts - segments[picked[0]].ts, data, len(pings))
    whole["captured_readings"] = sum(readings_in(p, per_channel) for p in data)
    before = [b for b in bursts if segments[b[-1].last].ts < sigterm_ts]
    steady: dict[str, Any] | None = None
    if before:
        if len(before) >= 2:
            opened, inside, window = before[0][-1].last, before[1:], f"batch 1 to batch {len(before)}"
        else:
            metas = [p for p in packets if p.topic == f"{PREFIX}/{NODE}/meta"]
            opened, inside, window = metas[0].last, before, "meta to batch 1 (one batch only)"
        closed = inside[-1][-1].last
        ids = [i for i in picked if opened < i <= closed]
        in_data = [p for b in inside for p in b]
        steady = figures(segments, ids, sum(readings_in(p, per_channel) for p in in_data),
                         segments[closed].ts - segments[opened].ts, in_data,
                         sum(1 for p in pings if opened < p.last <= closed))
        steady.update(window=window, batches=len(inside),
                      state_publishes=sum(1 for p in states if opened < p.last <= closed),
                      state_bytes=sum(p.size for p in states if opened < p.last <= closed))
    return {"whole": whole, "steady": steady, "batches": len(bursts)}


# -- running the daemon ---------------------------------------------------------------------------

def write_config(path: Path, *, port: int, encoding: str, homeassistant: bool = False) -> Path:
    channels = ", ".join(f'"{c}"' for c in CHANNELS)
    path.write_text(f'[node]\nid = "{NODE}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nqos = 1\n'
                    f'[homeassistant]\ndiscovery = {"true" if homeassistant else "false"}\n'
                    f'[batch]\nmax_age_s = 60\nencoding = "{encoding}"\n'
                    f'[buffer]\npath = "{path.parent / "buffer.db"}"\n[plugins]\ndirs = []\n'
                    f'[[sensor]]\nname = "sim"\ntype = "sim"\ninterval_s = 1\nsignal = "random_walk"\n'
                    f'channels = [{channels}]\nfilters = [{{round = 2}}]\n')
    return path


class Capture:
    """`tcpdump -i lo` writing packets to `port` into `pcap`, from entry (once it listens) to exit."""

    def __init__(self, tcpdump: str, pcap: Path, port: int) -> None:
        self.cmd = [tcpdump, "-i", "lo", "-n", "-U", "-s", "0", "-w", str(pcap), f"tcp dst port {port}"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats = ""

    def __enter__(self) -> Capture:
        self.proc = proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        if not select.select([proc.stderr], [], [], 10)[0] or b"listening on" not in proc.stderr.readline():
            proc.kill()
            raise RuntimeError(f"tcpdump did not start: {proc.communicate()[1].decode(errors='replace')}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.stats = self.proc.communicate(timeout=10)[1].decode(errors="replace")
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        dropped = re.search(r"(\d+) packets? dropped by kernel", self.stats)
        if dropped is None or dropped.group(1) != "0":
            print(f"warning: tcpdump: {self.stats.strip()}", file=sys.stderr)


def delivered_readings(messages: Sequence[Any], per_channel: bool) -> int:
    if per_channel:
        return len(messages)
    batches: dict[int, int] = {}
    for m in messages:
        try:
            batch = decode(m.payload)
        except DecodeError as exc:
            print(f"warning: undecodable message on {m.topic}: {exc}", file=sys.stderr)
            continue
        batches[batch.seq] = len(batch.samples)  # at-least-once: a repeat counts once
    return sum(batches.values())


def run_encoding(name: str, *, seconds: float, tcpdump: str, workdir: Path) -> dict[str, Any]:
    """One fresh broker, subscriber, capture and daemon; the figures of `analyse()`. `name` is an
    encoding, or `compact+ha`: compact with Home Assistant discovery on (off in the others)."""
    encoding, homeassistant = (name[:-len(WITH_HA)], True) if name.endswith(WITH_HA) else (name, False)
    per_channel = encoding == PER_CHANNEL
    topic = f"{PREFIX}/{NODE}/+/+" if per_channel else f"{PREFIX}/{NODE}/data"
    pcap = workdir / f"{name.replace('+', '_')}.pcap"
    with Mosquitto() as broker, Subscription(broker, topic) as sub:
        cfg = write_config(workdir / f"{name}.toml", port=broker.port, encoding=encoding,
                           homeassistant=homeassistant)
        (workdir / "homeassistant.json").unlink(missing_ok=True)
        (workdir / "buffer.db").unlink(missing_ok=True)
        with open(workdir / f"{name}.log", "wb") as log, Capture(tcpdump, pcap, broker.port):
            proc = subprocess.Popen([sys.executable, "-m", "sensord", "run", "-c", str(cfg)], cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                if proc.poll() is not None:
                    raise RuntimeError(f"sensord exited early with {proc.returncode}: "
                                       f"{(workdir / f'{name}.log').read_text()[-2000:]}")
                sigterm_ts = time.time()
                proc.terminate()
                proc.wait(30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            time.sleep(1.0)  # the last ACKs of the shutdown
        count, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.0:  # let the subscriber receive the final batch
            if len(sub.messages) != count:
                count, quiet_since = len(sub.messages), time.monotonic()
            time.sleep(0.1)
        delivered = delivered_readings(list(sub.messages), per_channel)
    result = analyse(read_pcap(pcap, broker.port), sigterm_ts=sigterm_ts, per_channel=per_channel,
                     delivered=delivered)
    if result["whole"]["captured_readings"] != delivered:
        print(f"warning: {name}: {delivered} readings delivered, "
              f"{result['whole']['captured_readings']} in the capture", file=sys.stderr)
    return result


# -- codec CPU ------------------------------------------------------------------------------------

def sim_batch() -> BatchData:
    """10 random-walk channels x 60 reads from the sim plugin, stamped 1 s apart with 0-3 ms jitter."""
    import random

    sensor = SimSensor(SimConfig(channels=CHANNELS, signal="random_walk"), name="sim", hardware=Hardware())
    jitter, t0 = random.Random(1), 1_760_000_000.0
    samples = [Sample("sim", r.quantity, r.value, r.unit, ts)
               for k in range(60) for ts in [t0 + k + jitter.uniform(0, 0.003)] for r in sensor.read()]
    return BatchData(NODE, 1, samples, channel_info([("sim", sensor.channels())]))


def bench_codec(encoding: str | Encoding, batch: BatchData, *, repeat: int = 5) -> tuple[float, float]:
    """(encode, decode) CPU microseconds per reading for `batch`: the best of `repeat` timed runs,
    each at least 0.2 s (timeit's autorange)."""
    codec = get_encoding(encoding) if isinstance(encoding, str) else encoding
    payload = codec.encode(batch)
    readings = max(1, len(batch.samples))
    results = []
    for fn in (lambda: codec.encode(batch), lambda: codec.decode(payload)):
        timer = timeit.Timer(fn)
        loops, _ = timer.autorange()
        best = min(timer.repeat(repeat=repeat, number=loops)) / loops
        results.append(best / readings * 1e6)
    return results[0], results[1]


def codec_cost(encoding: str, batch: BatchData) -> tuple[float, float]:
    """(encode, decode) CPU µs per reading; see the module docstring for per_channel."""
    if encoding != PER_CHANNEL:
        return bench_codec(encoding, batch)
    enc, dec = bench_codec("compact", batch)
    values = [s.value for s in batch.samples]
    texts = [format_value(v) for v in values]

    def per_reading(fn: Any) -> float:
        timer = timeit.Timer(fn)
        loops, _ = timer.autorange()
        return min(timer.repeat(repeat=5, number=loops)) / loops / len(values) * 1e6

    return enc + dec + per_reading(lambda: [format_value(v) for v in values]), per_reading(
        lambda: [float(t) for t in texts])


# -- report ---------------------------------------------------------------------------------------

def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def report(results: dict[str, dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    """Print the table and the target checks; return the checks."""
    base = (results.get(PER_CHANNEL, {}).get("steady") or {}).get("ip_bytes_per_reading")
    print(f"10 sim random_walk channels at 1 Hz, max_age_s = 60, QoS 1, keepalive 60 s, {seconds:g} s per "
          f"encoding; client -> broker at the IP level (tcpdump on lo)\n")
    print("| encoding | IP bytes/reading steady (whole run) | segments/min steady: all, with data "
          "(whole run) | payload bytes/reading | encode µs/reading | decode µs/reading | ratio to per_channel |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s, w = r["steady"] or {}, r["whole"]
        mine = s.get("ip_bytes_per_reading")
        ratio = mine / base if mine is not None and base else None
        print(f"| {name} | {_num(mine)} ({_num(w['ip_bytes_per_reading'])}) | "
              f"{_num(s.get('segments_per_min'), '.1f')}, {_num(s.get('data_segments_per_min'), '.1f')} "
              f"({w['segments_per_min']:.1f}, {w['data_segments_per_min']:.1f}) | "
              f"{_num(s.get('payload_bytes_per_reading'))} | {r['encode_us']:.2f} | {r['decode_us']:.2f} | "
              f"{_num(ratio, '.3f')} |")
    print()
    for name, r in results.items():
        s, w = r["steady"], r["whole"]
        line = (f"{name}: whole run {w['readings']} readings, {w['segments']} segments ({w['data_segments']} "
                f"with data, {w['pure_acks']} pure ACKs) in {w['span_s']:.0f} s")
        if s:
            line += (f"; steady window {s['window']} ({s['span_s']:.1f} s): {s['readings']} readings, "
                     f"{s['data_publishes']} data PUBLISH, {s['pingreqs']} PINGREQ, {s['segments']} segments "
                     f"({s['data_segments']} with data, {s['pure_acks']} pure ACKs; "
                     f"{s['data_segments_at_mtu_1500']} with data at MTU 1500), MQTT header "
                     f"{_num(s['mqtt_overhead_bytes_per_publish'], '.0f')} bytes/PUBLISH")
        print(line)
    checks: list[dict[str, Any]] = []
    c = (results.get("compact") or {}).get("steady")
    if c is not None:
        checks.append({"target": "compact <= 8 IP bytes/reading (steady)", "value": c["ip_bytes_per_reading"],
                       "pass": c["ip_bytes_per_reading"] <= 8})
        ratio = c["ip_bytes_per_reading"] / base if base else None
        checks.append({"target": "compact <= 1/10 of per_channel (IP bytes/reading, steady)", "value": ratio,
                       "pass": None if ratio is None else ratio <= 0.1})
        expected = c["batches"] + c["pingreqs"]
        checks.append({"target": "compact: one data segment per batch plus keepalive, also at MTU 1500 (steady)",
                       "value": f"{c['data_segments']} data segments, {c['batches']} batches + "
                                f"{c['pingreqs']} PINGREQ, {c['segments'] - c['data_segments']} pure ACKs",
                       "pass": c["data_segments"] == expected == c["data_segments_at_mtu_1500"]
                       and c["publishes_in_one_segment"]})
    h = (results.get("compact" + WITH_HA) or {}).get("steady")
    if c is not None and h is not None:
        added = h["ip_bytes_per_reading"] - c["ip_bytes_per_reading"]
        checks.append({"target": "Home Assistant state adds < 0.5 IP bytes/reading (compact+ha - compact, steady)",
                       "value": added, "pass": added < 0.5})
        checks.append({"target": "compact+ha: one state PUBLISH per batch (steady)",
                       "value": f"{h['state_publishes']} state PUBLISH of {h['state_bytes']} MQTT bytes for "
                                f"{h['batches']} batches",
                       "pass": h["state_publishes"] == h["batches"]})
    print()
    for check in checks:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[check["pass"]]
        value = check["value"] if isinstance(check["value"], str) else _num(check["value"], ".3f")
        print(f"{verdict}  {check['target']}: {value}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=125, help="run time per encoding (125: two batches)")
    parser.add_argument("--encodings", default=",".join([*ENCODINGS, "compact" + WITH_HA, PER_CHANNEL]),
                        help="comma-separated subset (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    parser.add_argument("--pcap-dir", metavar="DIR", help="keep the captures and daemon logs here")
    args = parser.parse_args()
    names = [n.strip() for n in args.encodings.split(",") if n.strip()]
    unknown = [n for n in names if n.removesuffix(WITH_HA) not in ENCODINGS and n != PER_CHANNEL]
    if unknown:
        parser.error(f"unknown encoding {', '.join(unknown)}; known: {', '.join([*ENCODINGS, PER_CHANNEL])}")
    tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/sbin")
    if tcpdump is None:
        sys.exit(TCPDUMP_HINT)
    batch = sim_batch()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sensord-wire-") as tmp:
        workdir = Path(args.pcap_dir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            print(f"{name}: running for {args.seconds:g} s ...", file=sys.stderr, flush=True)
            results[name] = run_encoding(name, seconds=args.seconds, tcpdump=tcpdump, workdir=workdir)
    for name in names:
        results[name]["encode_us"], results[name]["decode_us"] = codec_cost(name.removesuffix(WITH_HA), batch)
    checks = report(results, args.seconds)
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": args.seconds, "results": results, "checks": checks,
                                               "codec_batch_readings": len(batch.samples)}, indent=2))


if __name__ == "__main__":
    main()
