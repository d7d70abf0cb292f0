"""`sensord bridge` end to end: a real mosquitto, the bridge as a process (kill -9 and all)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensord.encoding import encode_batch
from sensord.sensor import Sample
from sensord.testing.broker import Mosquitto
from sensord.testing.mqtt_client import collect, connect

pytestmark = pytest.mark.broker
T0 = 1_700_000_000.0


class BridgeProc:
    """`sensord bridge` in a process of its own, its outputs in files of the test's directory."""

    def __init__(self, broker: Mosquitto, workdir: Path, extra: str = "", client_id: str = "test-bridge") -> None:
        self.workdir = workdir
        self.config = workdir / f"{client_id}.toml"
        self.lp = workdir / f"{client_id}.lp"
        self.jsonl = workdir / f"{client_id}.jsonl"
        self.log = workdir / f"{client_id}.log"
        self.config.write_text(
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nreconnect_max_s = 1.0\n'
            f'[bridge]\nclient_id = "{client_id}"\nstate_dir = "{workdir / (client_id + "-state")}"\n'
            f'line_protocol = "{self.lp}"\njson_lines = "{self.jsonl}"\n{extra}'
            '[plugins]\ndirs = []\n')
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> BridgeProc:
        self.starts += 1
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "sensord", "-v", "bridge", "-c", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        self.wait_log("subscribed to", count=self.starts)
        return self

    def wait_log(self, text: str, count: int = 1, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.log.read_text(errors="replace").count(text) < count:
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} x{count} in the bridge's log:\n{self.log.read_text()}")
            time.sleep(0.02)

    def rows(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.endswith("}")]

    def readings(self) -> list[dict[str, Any]]:
        return [r for r in self.rows() if "sensor" in r]

    def wait_readings(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(rows := self.readings()) < count:
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} readings, expected {count}; log:\n{self.log.read_text()}")
            time.sleep(0.02)
        return rows

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@pytest.fixture
def bridges(tmp_path: Path) -> Iterator[list[BridgeProc]]:
    started: list[BridgeProc] = []
    yield started
    for b in started:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.kill()
            b.proc.wait(5)


@pytest.fixture
def node(broker: Mosquitto) -> Iterator[Any]:
    client = connect(broker)
    yield client
    client.disconnect()
    client.loop_stop()


def batch(node: str, seq: int, start: float, n: int = 2, encoding: str = "compact") -> bytes:
    samples = [s for i in range(n) for s in (Sample("air", "temperature", 20 + i / 10, "°C", start + i),
                                              Sample("air", "humidity", 40 + i, "%", start + i))]
    return encode_batch(node, seq, samples, encoding=encoding)


def send(client: Any, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(5)


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, float]]:
    return [(r["node"], r["sensor"], r["quantity"], r["ts"]) for r in rows]


def test_duplicates_from_many_nodes_are_written_once(broker: Mosquitto, node: Any, tmp_path: Path,
                                                     bridges: list[BridgeProc]) -> None:
    bridge = BridgeProc(broker, tmp_path)
    bridges.append(bridge.start())
    for seq in (1, 2, 2, 3, 1, 3):  # re-sends after lost PUBACKs, a replayed backlog
        for name, encoding in (("barn", "compact"), ("shed", "senml+cbor")):
            send(node, f"sensord/{name}/data", batch(name, seq, T0 + 10 * seq, encoding=encoding))
    send(node, "sensord/barn/data", batch("barn", 4, T0 + 40))  # a marker: everything before is handled
    rows = bridge.wait_readings(2 * 3 * 4 + 4)
    time.sleep(0.2)  # nothing more may come: the marker was the last message
    rows = bridge.readings()
    assert len(rows) == 28 and len(set(keys(rows))) == 28
    lp = bridge.lp.read_text().splitlines()
    assert len(lp) == 14 and lp[0].startswith("sensord,node=barn,sensor=air temperature=20.0,humidity=40i ")
    assert bridge.stop() == 0


def test_kill_9_mid_stream_and_restart_loses_and_repeats_nothing(broker: Mosquitto, node: Any, tmp_path: Path,
                                                                 bridges: list[BridgeProc]) -> None:
    bridge = BridgeProc(broker, tmp_path)
    bridges.append(bridge.start())
    for seq in range(1, 4):
        send(node, "sensord/barn/data", batch("barn", seq, T0 + 10 * seq))
    bridge.wait_readings(12)
    bridge.kill9()
    # While it is down: new batches (the broker queues them in the bridge's session) and a
    # re-send of one it had already written.
    for seq in (3, 4, 5, 6):
        send(node, "sensord/barn/data", batch("barn", seq, T0 + 10 * seq))
    bridge.start()
    rows = bridge.wait_readings(24)
    send(node, "sensord/barn/data", batch("barn", 7, T0 + 70))
    rows = bridge.wait_readings(28)
    assert len(rows) == 28 and len(set(keys(rows))) == 28
    assert [r["seq"] for r in rows] == [s for s in range(1, 8) for _ in range(4)]
    assert bridge.stop() == 0


def test_a_node_whose_buffer_was_reset_is_recognised(broker: Mosquitto, node: Any, tmp_path: Path,
                                                    bridges: list[BridgeProc]) -> None:
    bridge = BridgeProc(broker, tmp_path)
    bridges.append(bridge.start())
    send(node, "sensord/barn/data", batch("barn", 1_700_000_050, T0))
    bridge.wait_readings(4)
    bridge.stop()
    bridge.start()  # the state comes back from the file: the reset is still recognised
    send(node, "sensord/barn/data", batch("barn", 1, T0 + 100))
    send(node, "sensord/barn/data", batch("barn", 2, T0 + 110))
    rows = bridge.wait_readings(12)
    assert [r["seq"] for r in rows] == [1_700_000_050] * 4 + [1] * 4 + [2] * 4
    bridge.wait_log("its buffer was reset")


def test_plain_retained_topics_keep_the_latest_value(broker: Mosquitto, node: Any, tmp_path: Path,
                                                    bridges: list[BridgeProc]) -> None:
    bridge = BridgeProc(broker, tmp_path, extra='out_prefix = "plain"\n')
    bridges.append(bridge.start())
    send(node, "sensord/barn/status", b"online")
    send(node, "sensord/barn/data", batch("barn", 2, T0 + 10))
    send(node, "sensord/barn/data", batch("barn", 1, T0))  # older: must not replace the retained values
    send(node, "sensord/barn/data", batch("barn", 3, T0 + 5))  # newer seq, older readings: neither
    send(node, "sensord/barn/status", b"offline")
    bridge.wait_log("readings older than already written")
    deadline = time.monotonic() + 10
    # The log line is batch 3's; the status after it may not be written yet.
    while {"node": "barn", "status": "offline"} not in (rows := bridge.rows()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {"node": "barn", "status": "offline"} in rows
    # The JSON row comes before the retained publish: wait for that to land too.
    while (got := {m.topic: m.payload for m in collect(broker, "plain/#", count=3)}).get(
            "plain/barn/status") != b"offline" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == {"plain/barn/air/temperature": b"20.1", "plain/barn/air/humidity": b"41",
                   "plain/barn/status": b"offline"}


def test_bad_input_is_logged_and_nothing_else_is_lost(tmp_path: Path, bridges: list[BridgeProc]) -> None:
    with Mosquitto(extra_config="message_size_limit 0\n") as broker:
        client = connect(broker)
        try:
            bridge = BridgeProc(broker, tmp_path)
            bridges.append(bridge.start())
            send(client, "sensord/barn/data", b"not a batch")
            send(client, "sensord/barn/data", b"\xd9\xd5\xb1" + b"\x00" * (32 * 1024 * 1024))
            send(client, "sensord/odd node,=/data", batch("odd node,=", 1, T0))
            send(client, "sensord/barn/data", b"not a batch either")
            send(client, "sensord/barn/data", batch("barn", 1, T0))
            rows = bridge.wait_readings(8)
            assert {r["node"] for r in rows} == {"barn", "odd node,="}
            log = bridge.log.read_text()
            assert log.count("node 'barn': not a batch") == 1
            assert "node 'barn': payload too large" in log
            assert bridge.proc is not None and bridge.proc.poll() is None
            assert "odd\\ node\\,\\=" in bridge.lp.read_text()
        finally:
            client.disconnect()
            client.loop_stop()


def test_two_bridges_in_a_shared_group_split_the_traffic(broker: Mosquitto, node: Any, tmp_path: Path,
                                                         bridges: list[BridgeProc]) -> None:
    one = BridgeProc(broker, tmp_path, extra='shared_group = "fleet"\n', client_id="bridge-1")
    two = BridgeProc(broker, tmp_path, extra='shared_group = "fleet"\n', client_id="bridge-2")
    bridges += [one.start(), two.start()]
    sent = 0
    for seq in range(1, 11):
        for name in ("barn", "shed", "pump"):
            send(node, f"sensord/{name}/data", batch(name, seq, T0 + 10 * seq))
            sent += 4
    deadline = time.monotonic() + 15
    while len(one.readings()) + len(two.readings()) < sent and time.monotonic() < deadline:
        time.sleep(0.02)
    a, b = keys(one.readings()), keys(two.readings())
    assert len(a) + len(b) == sent == len(set(a) | set(b))  # each reading written once, by one of them
    assert a and b  # both took a share (mosquitto deals shared messages round-robin)
    assert "$share/fleet/sensord/+/data" in one.log.read_text()


def test_kill_9_at_an_arbitrary_moment_loses_nothing(broker: Mosquitto, node: Any, tmp_path: Path,
                                                     bridges: list[BridgeProc]) -> None:
    """The bridge dies while handling: the batch in hand was not acknowledged (on both library
    generations) and comes again; at most that one batch is written twice (output written, state
    not committed)."""
    bridge = BridgeProc(broker, tmp_path)
    bridges.append(bridge.start())
    total = 300
    for seq in range(1, total + 1):
        node.publish("sensord/barn/data", batch("barn", seq, T0 + 10 * seq), qos=1)
    bridge.wait_readings(40)
    bridge.kill9()
    written_before = len(bridge.readings())
    bridge.start()
    rows = bridge.wait_readings(4 * total, timeout_s=60)
    time.sleep(0.2)
    rows = bridge.readings()
    assert written_before < 4 * total, "the kill came too late to test anything"
    assert set(keys(rows)) == {("barn", "air", q, T0 + 10 * s + i) for s in range(1, total + 1) for i in range(2)
                               for q in ("temperature", "humidity")}
    assert len(rows) - 4 * total <= 4
