"""Brokers other than mosquitto, and brokers that misbehave: amqtt (MQTT 3.1.1 only, silent to an
MQTT 5 CONNECT with a will), a listener that never answers CONNECT, and a backlog replay.

amqtt runs as a real subprocess from the `amqtt` package (a test extra, and in `.venv-bookworm`);
without it these tests fail with the install command, they are not skipped. docs/brokers.md says
how to run them."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Node, assert_gapless, counter_values, readings, wait_until, write_config

from sensord.buffer import Buffer
from sensord.config import MqttConfig
from sensord.encoding import encode_batch
from sensord.errors import BrokerTimeout
from sensord.mqtt import MqttLink, Will, v5_probe_s
from sensord.sensor import Sample
from sensord.testing.broker import Mosquitto, Subscription, free_port
from sensord.testing.proxy import SilentBroker

pytestmark = pytest.mark.broker
AMQTT_HINT = ("amqtt is not installed: pip install -e '.[test]' (or .ci/bookworm-env for .venv-bookworm); "
              "these tests run a real amqtt broker")


class Amqtt:
    """An amqtt broker (`python -m amqtt.scripts.broker_script`) on a free loopback port, anonymous
    clients allowed. Duck-types the parts of `Mosquitto` that `Subscription` uses."""

    def __init__(self, workdir: Path) -> None:
        if importlib.util.find_spec("amqtt") is None:
            pytest.fail(AMQTT_HINT)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.password: tuple[str, str] | None = None
        self.tls = False
        self.pki = None
        self.url = f"mqtt://{self.host}:{self.port}"
        self.log_path = workdir / "amqtt.log"
        self.conf_path = workdir / "amqtt.yaml"
        self.conf_path.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: {self.host}:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Amqtt:
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen([sys.executable, "-m", "amqtt.scripts.broker_script", "-c",
                                           str(self.conf_path)], stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while "bind to" not in self.log_text():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"amqtt did not start on port {self.port}: {self.log_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@pytest.fixture
def amqtt(tmp_path: Path) -> Iterator[Amqtt]:
    with Amqtt(tmp_path) as broker:
        yield broker


def lines(node: Node, text: str) -> list[str]:
    return [line for line in node.log().splitlines() if text in line]


# -- amqtt: no CONNACK to an MQTT 5 CONNECT carrying a will ---------------------------------------

def test_link_falls_back_to_311_when_mqtt5_gets_no_connack(amqtt: Amqtt, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sensord.mqtt")
    link = MqttLink(config=MqttConfig(host=amqtt.host, port=amqtt.port), client_id="probe", timeout_s=30.0,
                    will=Will("faults/probe/status", b"offline"))

    async def scenario() -> tuple[float, float]:
        t0 = time.monotonic()
        await link.connect()
        first_s = time.monotonic() - t0
        await link.publish("faults/probe/data", b"1", qos=1)
        await link.disconnect()
        t0 = time.monotonic()
        await link.connect()  # remembered: no second probe
        again_s = time.monotonic() - t0
        await link.publish("faults/probe/data", b"2", qos=1)
        await link.disconnect()
        return first_s, again_s

    with Subscription(amqtt, "faults/probe/data") as sub:
        first_s, again_s = asyncio.run(asyncio.wait_for(scenario(), 40))
        sub.wait_for(lambda msgs: len(msgs) >= 2, 5)
    assert link.protocol == "3.1.1"
    # The probe waits 5 s (on loopback, 4 x setup is far less), not the 30 s connect timeout.
    assert v5_probe_s(0.001) == 5.0 and 5.0 <= first_s < 7.0, first_s
    assert again_s < 1.0, again_s
    assert [m.payload for m in sub.messages] == [b"1", b"2"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "sensord.mqtt"]
    assert len(warnings) == 1 and "did not answer an MQTT 5 CONNECT" in warnings[0], warnings


def test_probe_scales_with_a_slow_link() -> None:
    assert v5_probe_s(0.0) == 5.0
    assert v5_probe_s(3.0) == 12.0  # satellite: 3 s of TCP and TLS handshakes, 12 s for the CONNACK


def test_daemon_delivers_to_amqtt_with_nothing_lost(amqtt: Amqtt, nodes: list[Node], tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=amqtt.port, sensors=2, interval_s=0.1, max_age_s=0.5)
    # A buffer made with the clock at 1970 issues seq 1 first (a new one starts at the Unix time).
    Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 24, clock=lambda: 0.0).close()
    with Subscription(amqtt, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(counter_values(readings(msgs), "c0")) >= 30, 30)
        code, _ = node.stop()
        assert code == 0
        # The stop delivered what was pending (PUBACK from amqtt for every batch the node sealed).
        with Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 24) as buf:
            stats = buf.stats()
        assert (stats.pending_readings, stats.staged_readings, stats.dropped_readings) == (0, 0, 0)
        last_seq = stats.next_seq - 1
        assert last_seq < 10_000
        sub.wait_for(lambda msgs: max(r["seq"] for r in readings(msgs)) >= last_seq, 5)
        received = readings(sub.messages)
    assert sorted({r["seq"] for r in received}) == list(range(1, last_seq + 1))
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(received, sensor))
    assert len(lines(node, "using MQTT 3.1.1 from now on")) == 1, node.log()
    assert "Traceback" not in node.log()


# -- a listener that never answers CONNECT ---------------------------------------------------------

def test_link_gives_up_on_a_silent_broker_within_its_timeouts() -> None:
    with SilentBroker() as silent:
        link = MqttLink(config=MqttConfig(host=silent.host, port=silent.port), client_id="silent", timeout_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(BrokerTimeout, match="no CONNACK|no answer"):
            asyncio.run(asyncio.wait_for(link.connect(), 10))
        took_s = time.monotonic() - t0
        # The MQTT 5 probe (capped by the 1 s timeout), then 3.1.1 once; neither answered.
        assert 2.0 <= took_s < 3.0, took_s
        assert silent.connections == 2
        assert link.protocol == "5"  # silence to both is no reason to give up MQTT 5


def test_confirmed_mqtt5_broker_going_silent_is_not_demoted(mqtt_broker: Mosquitto) -> None:
    link = MqttLink(config=MqttConfig(host=mqtt_broker.host, port=mqtt_broker.port), client_id="frozen",
                    timeout_s=1.0, will=Will("faults/frozen/status", b"offline"))

    async def scenario() -> None:
        await link.connect()
        await link.disconnect()
        mqtt_broker.freeze()
        try:
            with pytest.raises(BrokerTimeout):
                await link.connect()
        finally:
            mqtt_broker.thaw()
        await link.connect()
        await link.disconnect()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert link.protocol == "5"


@pytest.mark.slow
def test_daemon_backs_off_from_a_silent_broker_and_delivers_once_it_answers(nodes: list[Node],
                                                                           tmp_path: Path) -> None:
    broker = Mosquitto()
    with broker, SilentBroker(broker.host, broker.port) as silent:
        # keepalive 2 s: the publisher waits max(3 s, 1.5 x keepalive) for the broker.
        cfg = write_config(tmp_path / "s.toml", port=silent.port, sensors=1, keepalive_s=2)
        node = Node(cfg).start()
        nodes.append(node)
        wait_until(lambda: silent.connections >= 3, 20, "a second connect attempt")
        t_second = time.monotonic()
        # One attempt: the MQTT 5 probe, until paho gives up after the keepalive (2 s) or the
        # timeout (3 s), then MQTT 3.1.1 just as long; then a backoff of 0.5-1 s.
        first, fallback, second = silent.accepted_at[:3]
        assert 1.9 <= fallback - first <= 3.5 and 2.4 <= second - fallback <= 4.5, silent.accepted_at
        warned = lines(node, "cannot connect")
        assert len(warned) == 1 and warned[0].startswith("WARNING sensord.publisher:"), node.log()
        assert "no CONNACK" in warned[0]
        with Subscription(broker, "sensord/n1/data") as sub:
            silent.answer()
            sub.wait_for(lambda msgs: len(readings(msgs)) >= 3, 20)
            assert time.monotonic() - t_second < 12
            assert node.stop()[0] == 0
            time.sleep(0.3)
        assert len(lines(node, "cannot connect")) == 1, node.log()
        # An answer() that lands during an MQTT 5 probe makes the node fall back to 3.1.1 for this
        # run (a broker silent to MQTT 5 and answering 3.1.1 right after looks like amqtt); it
        # delivers either way.
        assert lines(node, "connected to 127.0.0.1") and "Traceback" not in node.log()
        assert_gapless(counter_values(readings(sub.messages), "c0"))


# -- replaying a backlog ---------------------------------------------------------------------------

def test_backlog_replay_does_not_warn_about_pending_calls(mqtt_broker: Mosquitto, nodes: list[Node],
                                                          tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=mqtt_broker.port, sensors=1, interval_s=0.5, max_age_s=0.5)
    t0 = 1_700_000_000.0
    with Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 24, clock=lambda: 0.0) as buf:
        for i in range(100):
            samples = [Sample("old", "count", 3 * i + k, "", t0 + 3 * i + k) for k in range(3)]
            buf.seal(lambda seq, s=samples: encode_batch("n1", seq, s), readings=3, first_ts=t0 + 3 * i)
    with Subscription(mqtt_broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(counter_values(readings(msgs), "old")) >= 300, 20)
        assert node.stop()[0] == 0
    old = [r for r in readings(sub.messages) if r["sensor"] == "old"]
    assert [r["value"] for r in old] == list(range(300))
    assert [r["seq"] for r in old][::3] == list(range(1, 101))
    assert lines(node, "pending publish calls") == [], node.log()
