"""The publisher's logic against the in-memory broker of `sensord.testing.fake_mqtt`: no socket,
no subprocess, no real waiting (backoff delays are recorded, then shortened a thousandfold).

What only a real broker can show (TLS, passwords, the will on a dead connection, replay through a
restart of mosquitto, the bookworm library stack) is in tests/test_mqtt.py and tests/test_daemon*.py."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sensord.buffer import Buffer
from sensord.config import BatchConfig, BufferConfig, Config, MqttConfig, NodeConfig, SensorSpec, TlsConfig
from sensord.encoding import CONTENT_TYPE, decode, encode_batch
from sensord.mqtt import Backoff, Publisher, Topics, format_value, will_delay_s
from sensord.sensor import Sample, SensorConfig
from sensord.systemd import Notifier
from sensord.testing.fake_mqtt import FakeBroker

T = TypeVar("T")
DATA, STATUS, META = "sensord/n1/data", "sensord/n1/status", "sensord/n1/meta"
LOGGER = "sensord.publisher"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test coroutine; a hang fails the test instead of stalling the suite."""
    return asyncio.run(asyncio.wait_for(coro, 10))


class RecordingBackoff(Backoff):
    """The publisher's backoff with the jitter at its top (delay = cap), recording each delay and
    waiting a thousandth of it."""

    def __init__(self, *, max_s: float) -> None:
        super().__init__(max_s=max_s, rand=lambda: 1.0)
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay / 1000

    def reset(self) -> None:
        super().reset()
        self.delays.append(0.0)  # marks the reset in the sequence


class StatusNotifier(Notifier):
    """Records the STATUS= texts instead of sending them to systemd."""

    def __init__(self) -> None:
        super().__init__({})
        self.texts: list[str] = []

    def status(self, text: str) -> None:
        self.texts.append(text)


class Node:
    """A publisher with a real buffer in `tmp_path` and the fake broker."""

    opened: list[Buffer] = []  # closed after each test by `_close_buffers`

    def __init__(self, tmp_path: Path, broker: FakeBroker, **mqtt: Any) -> None:
        encoding = mqtt.pop("encoding", "compact")
        sensors = (SensorSpec(index=0, name="c0", type="sim", interval_s=0.1, options=SensorConfig()),)
        self.config = Config(file="test.toml", node=NodeConfig(id="n1"),
                             mqtt=MqttConfig(**{"reconnect_max_s": 2.0, **mqtt}),
                             batch=BatchConfig(max_age_s=0.5, encoding=encoding),
                             buffer=BufferConfig(path=str(tmp_path / "buffer.db")), sensors=sensors)
        # A buffer made with the clock at 1970 issues seq 1 first.
        self.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 24, clock=lambda: 0.0)
        Node.opened.append(self.buffer)
        self.broker = broker
        self.wake = asyncio.Event()
        self.backoff = RecordingBackoff(max_s=self.config.mqtt.reconnect_max_s)
        self.notifier = StatusNotifier()
        self.publisher = Publisher(self.config, topics=Topics("sensord", "n1"), buffer=self.buffer, wake=self.wake,
                                   meta=lambda: {"node": "n1", "encoding": encoding}, notifier=self.notifier,
                                   connection_factory=broker.connection, backoff=self.backoff)
        self.task: asyncio.Task[None] | None = None
        self.counter = 0

    def seal(self, n: int = 1, readings: int = 3) -> None:
        """Seal `n` batches of counter readings (0, 1, 2, ... across batches) and wake the publisher."""
        for _ in range(n):
            samples = [Sample("c0", "value", self.counter + k, "", 1_700_000_000.0 + self.counter + k)
                       for k in range(readings)]
            self.counter += readings
            self.buffer.seal(lambda seq, s=samples: encode_batch("n1", seq, s), readings=readings,
                             first_ts=samples[0].ts)
        self.wake.set()

    def start(self) -> Node:
        self.task = asyncio.create_task(self.publisher.run())
        return self

    async def finish(self, *, timeout_s: float = 1.0, offline: bool = True) -> None:
        await self.publisher.finish(timeout_s=timeout_s, offline=offline)

    def values(self) -> list[int]:
        """The counter values delivered on the data topic, de-duplicated by seq, in seq order."""
        batches = {b.seq: b for b in (decode(p) for p in self.broker.payloads(DATA))}
        return [int(s.value) for seq in sorted(batches) for s in batches[seq].samples]

    def pending(self) -> int:
        return self.buffer.stats().pending_batches


def lines(caplog: pytest.LogCaptureFixture, text: str = "", level: int = logging.INFO) -> list[str]:
    """`LEVEL logger: message` of the publisher's records containing `text`, as `sensord -v run` logs
    them (INFO and up)."""
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
            if r.name == LOGGER and text in r.getMessage() and r.levelno >= level]


def statuses(broker: FakeBroker) -> list[bytes]:
    return broker.payloads(STATUS)


@pytest.fixture
def broker(fake_mqtt_broker: FakeBroker) -> FakeBroker:
    return fake_mqtt_broker  # the fixture of sensord's pytest plugin


@pytest.fixture(autouse=True)
def _close_buffers() -> Iterator[None]:
    yield
    while Node.opened:
        Node.opened.pop().close()


@pytest.fixture(autouse=True)
def _debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sensord")


def attempts(broker: FakeBroker, n: int) -> Callable[[], bool]:
    return lambda: len(broker.connects) >= n


# -- connecting: status, meta, will ----------------------------------------------------------------

def test_connect_publishes_online_and_meta_under_the_will(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker).start()
        node.seal(2)
        await broker.wait_for(lambda: len(node.values()) == 6)
        await node.finish(offline=True)
        assert node.values() == list(range(6))
        first = broker.connects[0]
        assert first.client_id == "sensord-n1" and first.mqtt5 and first.clean_start
        assert first.will is not None and (first.will.topic, first.will.payload) == (STATUS, b"offline")
        assert (first.will.qos, first.will.retain, first.will_delay_s) == (1, True, None)
        topics = broker.topics()
        assert topics[:2] == [STATUS, META] and topics[-1] == STATUS
        online, meta, offline = broker.published[0], broker.published[1], broker.published[-1]
        assert (online.payload, online.qos, online.retain) == (b"online", 1, True)
        assert (meta.qos, meta.retain, meta.content_type) == (1, True, "application/json")
        assert json.loads(meta.payload) == {"node": "n1", "encoding": "compact"}
        assert (offline.payload, offline.retain) == (b"offline", True)
        # The batches carry the content type of their encoding, at the configured QoS.
        assert {(m.qos, m.retain, m.content_type) for m in broker.published if m.topic == DATA} == \
            {(1, False, CONTENT_TYPE)}
        assert broker.disconnects == [("sensord-n1", None)]  # a clean DISCONNECT: the will is discarded
        assert node.pending() == 0 and node.notifier.texts[-1].startswith("connected, 0 batches pending")

    run(main())


def test_a_reload_closes_without_offline(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker).start()
        await broker.wait_for(lambda: META in broker.topics())
        await node.finish(offline=False)
        assert statuses(broker) == [b"online"]
        assert broker.disconnects == [("sensord-n1", None)]

    run(main())


def test_connection_lost_publishes_the_will_and_replays_the_rest(tmp_path: Path, broker: FakeBroker,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker).start()
        node.seal(3)
        await broker.wait_for(lambda: len(node.values()) == 9)
        broker.unreachable()
        broker.drop()
        await broker.wait_for(attempts(broker, 3))
        node.seal(3)  # taken while the broker is away
        assert statuses(broker) == [b"online", b"offline"]  # the will
        broker.accept()
        await broker.wait_for(lambda: len(node.values()) == 18)
        await node.finish()
        assert node.values() == list(range(18))
        assert statuses(broker) == [b"online", b"offline", b"online", b"offline"]

    run(main())
    lost = lines(caplog, "lost")
    assert lost == ["WARNING sensord.publisher: connection to localhost:1883 lost: MQTT broker localhost:1883: "
                    "connection lost: the connection was lost; 0 readings buffered"], lost
    assert not lines(caplog, "cannot connect")  # the retries of a lost connection: DEBUG
    assert len(lines(caplog, "connected to localhost:1883 again")) == 1


# -- reconnecting: backoff ---------------------------------------------------------------------------

def test_backoff_doubles_to_reconnect_max_s_and_resets_after_a_connection(tmp_path: Path, broker: FakeBroker,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> Node:
        broker.unreachable()  # not started: connection refused until it is
        node = Node(tmp_path, broker, reconnect_max_s=4.0).start()
        node.seal(1)
        await broker.wait_for(attempts(broker, 5))
        broker.accept()
        await broker.wait_for(lambda: len(node.values()) == 3)
        broker.unreachable()
        broker.drop()
        await broker.wait_for(attempts(broker, 8))
        broker.accept()
        node.seal(1)
        await broker.wait_for(lambda: len(node.values()) == 6)
        await node.finish()
        return node

    node = run(main())
    # 1 s, 2 s, 4 s, then capped at reconnect_max_s; back to 1 s after a connection that worked
    # (0.0 marks a reset: one per connection).
    streaks = " ".join(f"{d:g}" for d in node.backoff.delays).split(" 0")
    assert streaks[0].startswith("1 2 4 4") and set(streaks[0].split()[2:]) == {"4"}, node.backoff.delays
    assert streaks[1].startswith(" 1 2"), node.backoff.delays
    # One WARNING per streak, not one per attempt; a refused connection is transient: no ERROR.
    failures = lines(caplog, "cannot connect", logging.WARNING)
    assert failures == ["WARNING sensord.publisher: cannot connect to localhost:1883: MQTT broker localhost:1883: "
                        "connection refused: no broker listening there; retrying with backoff up to 4 s"], failures
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert node.values() == list(range(6))
    assert "offline, 3 readings buffered" in node.notifier.texts


@pytest.mark.parametrize("fault", ["certificate", "password", "client-id"])
def test_a_refusal_only_a_config_change_fixes_is_an_error_once(tmp_path: Path, broker: FakeBroker, fault: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    # Was tests/test_daemon_link.py's test_wrong_ca_... / test_wrong_password_is_refused_clearly_and_retried.
    mqtt: dict[str, Any] = {}
    if fault == "certificate":
        error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        error.verify_message = "unable to get local issuer certificate"
        broker.os_error(error)
        mqtt["tls"] = TlsConfig(ca_file=None)
    elif fault == "password":
        pw = tmp_path / "mqtt.pass"
        pw.write_text("wrong-one\n")
        pw.chmod(0o600)
        mqtt.update(username="node", password_file=str(pw))
        broker.refuse(0x87)
    else:
        broker.refuse(0x85)  # CONNACK "client identifier not valid"

    async def main() -> Node:
        node = Node(tmp_path, broker, **mqtt).start()
        node.seal(1)
        await broker.wait_for(attempts(broker, 4))  # several retries
        await node.finish(timeout_s=0.05)
        return node

    node = run(main())
    refusals = lines(caplog, "cannot connect")
    assert len(refusals) == 1, refusals  # one line per state change, not one per attempt
    # Only a config change helps: ERROR, so `journalctl -p err` shows it.
    assert refusals[0].startswith("ERROR sensord.publisher: cannot connect"), refusals[0]
    assert "1 readings stay buffered" in refusals[0] or "3 readings stay buffered" in refusals[0]
    if fault == "certificate":
        assert "certificate verify failed" in refusals[0] and "ca_file" in refusals[0]
    elif fault == "password":
        assert "password" in refusals[0] and "wrong-one" not in caplog.text
        assert broker.connects[0].password == "wrong-one"
    else:
        assert "client identifier not valid (code 0x85)" in refusals[0] and "mqtt.client_id" in refusals[0]
    assert len(node.backoff.delays) >= 3 and 0.0 not in node.backoff.delays
    assert node.pending() == 1 and "Traceback" not in caplog.text


def test_a_silent_broker_is_retried_with_backoff(tmp_path: Path, broker: FakeBroker,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Was (in part) tests/faults/test_brokers.py's test_daemon_backs_off_from_a_silent_broker_...
    broker.silent()

    async def main() -> Node:
        node = Node(tmp_path, broker, keepalive_s=2).start()
        node.seal(1)
        await broker.wait_for(attempts(broker, 4))
        broker.accept()
        await broker.wait_for(lambda: len(node.values()) == 3)
        await node.finish()
        return node

    node = run(main())
    # One attempt: the MQTT 5 probe, until the timeout (max(3 s, 1.5 x keepalive)), then MQTT
    # 3.1.1 just as long; then a backoff. (paho's own give-up after the keepalive went with its
    # once-a-second housekeeping: sensord.mqtt.compat.)
    assert [c.mqtt5 for c in broker.connects[:4]] == [True, False, True, False]
    assert broker.silences[:4] == [3, 3, 3, 3]
    warned = lines(caplog, "cannot connect")
    assert len(warned) == 1 and warned[0].startswith("WARNING sensord.publisher:"), warned
    assert "connect: no answer within 3 s" in warned[0]
    assert node.backoff.delays[:2] == [1.0, 2.0] and node.backoff.delays[-1] == 0.0
    assert lines(caplog, "connected to localhost:1883 again")


# -- the broker refuses batches (PUBACK with a failure reason code) ------------------------------

def test_batches_the_broker_refuses_stay_buffered_until_it_takes_them(tmp_path: Path, broker: FakeBroker,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    # Was tests/test_daemon.py's test of that name and tests/test_daemon_link.py's
    # test_acl_refusal_is_an_error_once: mosquitto answers with PUBACK 0x87 what its ACL denies.
    broker.refuse_topic(DATA, 0x87)

    async def main() -> Node:
        node = Node(tmp_path, broker).start()
        node.seal(2)
        await broker.wait_for(lambda: sum(m.topic == DATA for m in broker.attempts) >= 6)  # refused retries
        node.seal(2)
        assert node.values() == [] and node.pending() == 4
        broker.allow()
        await broker.wait_for(lambda: len(node.values()) == 12)
        await node.finish()
        return node

    node = run(main())
    assert node.values() == list(range(12))  # every reading, from the first one on, in order
    seqs = [decode(p).seq for p in broker.payloads(DATA)]
    assert len(seqs) == len(set(seqs)) == 4  # and each of the 4 batches taken exactly once: no duplicate
    refusals = lines(caplog, "not authorized", logging.INFO)
    assert len(refusals) == 1, refusals
    assert refusals[0].startswith("ERROR sensord.publisher:") and "ACL" in refusals[0], refusals[0]
    assert "not authorized (code 0x87); check this client's rights (ACL)" in refusals[0]
    assert "readings stay buffered" in refusals[0]
    assert lines(caplog, "the broker takes the batches again")
    assert not lines(caplog, "connection to")  # the connection was kept: no reconnect churn
    assert len(broker.connects) == 1
    assert node.backoff.delays[:3] == [0.0, 1.0, 2.0]  # backing off from the broker, then reset
    assert 0.0 in node.backoff.delays[3:]


def test_a_lost_puback_times_out_and_the_batch_is_sent_again(tmp_path: Path, broker: FakeBroker,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    broker.lose_pubacks(DATA)

    async def main() -> Node:
        node = Node(tmp_path, broker).start()
        node.seal(1)
        await broker.wait_for(lambda: sum(m.topic == DATA for m in broker.attempts) >= 2)
        broker.allow()
        await broker.wait_for(lambda: len(node.values()) == 3)
        await node.finish()
        return node

    node = run(main())
    assert node.values() == [0, 1, 2] and node.pending() == 0
    lost = lines(caplog, "connection to localhost:1883 lost", logging.WARNING)
    # The publisher waits max(3 s, 1.5 x keepalive), at most 30 s, for a PUBACK.
    assert lost and "publish to sensord/n1/data: no answer within 30 s" in lost[0], lost


# -- duty-cycle mode ---------------------------------------------------------------------------------

def test_duty_cycle_sleeps_between_wake_ups_under_a_delayed_will(tmp_path: Path, broker: FakeBroker) -> None:
    # Was tests/test_daemon_link.py's test_duty_cycle (the broker side of the will delay is
    # tests/test_mqtt.py's test_will_delay_holds_the_will_back, against mosquitto).
    async def main() -> Node:
        node = Node(tmp_path, broker, mode="duty_cycle").start()
        await asyncio.sleep(0.01)
        assert broker.connects == []  # nothing to send: no connection
        for wake_up in range(1, 4):
            node.seal(1)
            await broker.wait_for(lambda w=wake_up: len(broker.disconnects) == w)
            assert node.pending() == 0
            assert node.notifier.texts[-1] == "sleeping, 0 batches pending"
        broker.fire_pending_wills()  # the node missed its next wake-up: the broker says offline
        node.seal(1)  # and it comes back
        await broker.wait_for(lambda: len(broker.disconnects) == 4)
        await node.finish()
        return node

    node = run(main())
    assert node.values() == list(range(12))
    delay = will_delay_s(node.config)
    assert delay == 4  # 2 x (max_age_s + interval) + 2
    assert all(c.will_delay_s == delay and c.session_expiry_s == 2 * delay and not c.clean_start
               for c in broker.connects)
    # Each wake-up ends with DISCONNECT 0x04: the broker holds the will back for its delay, and
    # the next wake-up cancels it. So the status stays online between wake-ups.
    assert broker.disconnects == [("sensord-n1", 0x04)] * 4
    assert statuses(broker) == [b"online"] * 3 + [b"offline", b"online"]
    assert broker.topics().count(META) == 1  # meta once, not at every wake-up
    assert json.loads(broker.payloads(META)[0])["node"] == "n1"


def test_duty_cycle_under_mqtt311_disconnects_normally(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker, mode="duty_cycle", protocol="3.1.1").start()
        for wake_up in range(1, 3):
            node.seal(1)
            await broker.wait_for(lambda w=wake_up: len(broker.disconnects) == w)
        await node.finish()
        assert node.values() == list(range(6))

    run(main())
    # 3.1.1 has no will delay: a DISCONNECT with will would publish offline at once.
    assert broker.disconnects == [("sensord-n1", None)] * 2
    assert all(c.will_delay_s is None and c.session_expiry_s is None and not c.mqtt5 for c in broker.connects)
    assert statuses(broker) == [b"online", b"online"]


def test_duty_cycle_stop_delivers_what_is_pending(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker, mode="duty_cycle").start()
        node.seal(1)
        await broker.wait_for(lambda: len(broker.disconnects) == 1)
        node.publisher.wake.clear()
        node.seal(2)
        await node.finish()
        assert node.values() == list(range(9)) and node.pending() == 0

    run(main())
    assert statuses(broker)[-1] == b"offline"


# -- stopping ------------------------------------------------------------------------------------

def test_stop_while_a_publish_hangs_keeps_to_the_stop_timeout(tmp_path: Path, broker: FakeBroker,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    broker.hold_pubacks(DATA)  # the broker takes the batches and never acknowledges them

    async def main() -> tuple[Node, float]:
        node = Node(tmp_path, broker).start()
        node.seal(3)
        await broker.wait_for(lambda: any(m.topic == DATA for m in broker.attempts))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await node.publisher.finish(timeout_s=0.2, offline=True)
        took = loop.time() - t0
        assert node.task is not None and node.task.done()
        assert node.pending() == 3  # undelivered: they stay for the next start
        return node, took

    node, took = run(main())
    assert 0.2 <= took < 1.0, took
    assert lines(caplog, "stopping with 9 readings undelivered; they stay in", logging.WARNING)
    assert statuses(broker) == [b"online", b"offline"]
    assert broker.disconnects == [("sensord-n1", None)]
    assert not node.publisher.connected


def test_stop_while_the_broker_is_away_does_not_wait_for_the_backoff(tmp_path: Path, broker: FakeBroker) -> None:
    broker.unreachable()

    async def main() -> None:
        node = Node(tmp_path, broker, reconnect_max_s=60.0)
        node.backoff = node.publisher.backoff = Backoff(max_s=60.0, first_s=60.0)  # type: ignore[assignment]
        node.start()
        node.seal(1)
        await broker.wait_for(attempts(broker, 1))
        broker.accept()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await node.finish(timeout_s=2.0)  # one more attempt at once, not after the 30-60 s backoff
        assert loop.time() - t0 < 1.0
        assert node.values() == [0, 1, 2]

    run(main())


# -- draining the buffer -------------------------------------------------------------------------

def test_replay_is_oldest_first_a_page_at_a_time(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> Node:
        node = Node(tmp_path, broker)
        node.seal(45)  # a backlog from a long outage
        node.start()
        await broker.wait_for(lambda: len(node.values()) == 135)
        await node.finish()
        return node

    node = run(main())
    seqs = [decode(p).seq for p in broker.payloads(DATA)]
    assert seqs == list(range(1, 46))
    assert node.values() == list(range(135))
    assert node.pending() == 0


def test_per_channel_mode_publishes_plain_values(tmp_path: Path, broker: FakeBroker) -> None:
    # Was tests/test_daemon.py's test_per_channel_mode (the daemon buffers compact batches and
    # splits them when publishing).
    async def main() -> None:
        node = Node(tmp_path, broker, encoding="per_channel").start()
        for i in range(30):  # 60 readings a sensor: more than a page of concurrent publishes
            samples = [Sample(f"c{k}", "value", 2 * i + j, "", 1_700_000_000.0 + i) for j in range(2) for k in (0, 1)]
            node.buffer.seal(lambda seq, s=samples: encode_batch("n1", seq, s), readings=4, first_ts=samples[0].ts)
        node.wake.set()
        await broker.wait_for(lambda: len(broker.payloads("sensord/n1/c1/value")) == 60)
        await node.finish()

    run(main())
    for sensor in ("c0", "c1"):
        assert [int(p) for p in broker.payloads(f"sensord/n1/{sensor}/value")] == list(range(60))
    assert DATA not in broker.topics()
    assert {(m.qos, m.retain, m.content_type) for m in broker.published if m.topic.endswith("/value")} == \
        {(1, False, None)}


def test_format_value() -> None:
    # Was in tests/test_encoding.py: the per_channel payload is the publisher's, not the codec's.
    assert [format_value(v) for v in (21, 21.37, 21.0, 1e-05, True, False, -0.0, math.inf)] == \
        [b"21", b"21.37", b"21.0", b"1e-05", b"true", b"false", b"-0.0", b"inf"]
    assert float(format_value(0.1 + 0.2)) == 0.1 + 0.2
