"""sensord.mqtt against a real mosquitto on loopback (and a fake broker for the MQTT 5 refusal),
and the link's logic against the in-memory broker of `sensord.testing.fake_mqtt`.

Runs on both library generations: `.venv` (aiomqtt 2.x) and `.venv-bookworm` (asyncio-mqtt 0.16)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import pytest

from sensord.config import MqttConfig, TlsConfig
from sensord.errors import (
    BrokerAuthError,
    BrokerDisconnected,
    BrokerError,
    BrokerRefused,
    BrokerTimeout,
    BrokerTlsError,
    BrokerUnreachable,
    ConfigError,
)
from sensord.mqtt import Backoff, MqttLink, Received, Will, read_password_file, v5_probe_s
from sensord.testing.broker import Mosquitto
from sensord.testing.fake_mqtt import FakeBroker
from sensord.testing.pytest_plugin import MqttBrokerFactory

T = TypeVar("T")
PASSWORD = "s3cret-PW-7Hq2"
PROTOCOLS = pytest.mark.parametrize("protocol", ["5", "3.1.1"])


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test coroutine; a hang fails the test instead of stalling the suite."""
    return asyncio.run(asyncio.wait_for(coro, 10))


class Address(NamedTuple):
    host: str
    port: int


def link_to(broker: Mosquitto | Address, client_id: str, **kwargs: Any) -> MqttLink:
    """A link with small timeouts; `protocol`, `username`, `password_file`, `tls` go to MqttConfig."""
    host, port = broker.host, broker.port
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in ("protocol", "username", "password_file", "tls")}
    return MqttLink(config=MqttConfig(host=host, port=port, **options), client_id=client_id,
                    timeout_s=2.0, **kwargs)


class Watcher:
    """A subscriber collecting messages in the background."""

    def __init__(self, broker: Mosquitto) -> None:
        self.link = link_to(broker, "watcher")
        self.received: list[Received] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, topic: str) -> Watcher:
        await self.link.connect()
        await self.link.subscribe(topic)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for message in self.link.messages():
            self.received.append(message)

    async def wait_for(self, topic: str, timeout_s: float) -> Received | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.received:
                if message.topic == topic:
                    return message
            await asyncio.sleep(0.02)
        return None

    async def stop(self) -> None:
        await self.link.disconnect()
        if self._task is not None:
            await self._task  # messages() ends by itself on disconnect()


# ---------------------------------------------------------------------------------------------
# Publish and subscribe


@pytest.mark.broker
@PROTOCOLS
def test_publish_qos1_round_trip(mqtt_broker: Mosquitto, protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        watcher = await Watcher(mqtt_broker).start("rt/#")
        async with link_to(mqtt_broker, "node", protocol=protocol) as link:
            assert link.protocol == protocol and link.connected
            closed = asyncio.create_task(link.wait_closed())
            await link.publish("rt/data", b"\x00batch", qos=1, content_type="application/cbor")
            await link.publish("rt/retained", b"on", qos=1, retain=True)
        assert not link.connected
        await closed  # returns: the link was closed on purpose
        assert await watcher.wait_for("rt/data", 2) == Received("rt/data", b"\x00batch", retain=False)
        await watcher.stop()
        # A new subscription gets the retained message with the retain flag set.
        late = await Watcher(mqtt_broker).start("rt/retained")
        assert await late.wait_for("rt/retained", 2) == Received("rt/retained", b"on", retain=True)
        await late.stop()

    with caplog.at_level(logging.DEBUG, logger="sensord.mqtt.client"):
        run(main())
    # paho logs the properties of what it receives: the Content Type got through under MQTT 5
    publishes = [r.getMessage() for r in caplog.records if "PUBLISH" in r.getMessage() and "rt/data" in r.getMessage()]
    assert len(publishes) == 2  # sent by "node", received by the watcher
    assert all(("ContentType : application/cbor" in line) == (protocol == "5") for line in publishes), publishes


@pytest.mark.broker
def test_publish_raises_instead_of_returning_without_puback(mqtt_broker: Mosquitto) -> None:
    async def main() -> None:
        link = link_to(mqtt_broker, "node")
        await link.connect()
        mqtt_broker.freeze()  # the TCP stack still takes the bytes, but no PUBACK comes back
        started = time.monotonic()
        with pytest.raises(BrokerTimeout, match=r"no answer within 0\.4 s"):
            await link.publish("frozen/data", b"x", qos=1, timeout_s=0.4)
        assert 0.35 < time.monotonic() - started < 1.5
        mqtt_broker.thaw()
        await link.disconnect()

    run(main())


def acl_broker(mqtt_broker_factory: MqttBrokerFactory, tmp_path: Path, *lines: str) -> Mosquitto:
    """A broker whose anonymous clients may use only the topics of these `topic ...` ACL lines."""
    acl = tmp_path / "acl"
    acl.write_text("".join(f"{line}\n" for line in lines))
    return mqtt_broker_factory(extra_config=f"acl_file {acl}")


@pytest.mark.broker
def test_puback_failure_code_raises_broker_refused(mqtt_broker_factory: MqttBrokerFactory, tmp_path: Path) -> None:
    # mosquitto answers a publish its ACL denies with PUBACK 0x87 (not authorized) under MQTT 5;
    # both libraries would report it as delivered, and the batch would leave the buffer.
    broker = acl_broker(mqtt_broker_factory, tmp_path, "topic readwrite open/#")

    async def main() -> None:
        async with link_to(broker, "node") as link:
            with pytest.raises(BrokerRefused, match=r"refused publish to closed/data: not authorized \(code 0x87\); "
                                                    r"check this client's rights \(ACL\)") as refused:
                await link.publish("closed/data", b"x", qos=1)
            assert refused.value.code == 0x87 and not refused.value.transient
            await link.publish("open/data", b"x", qos=1)  # the connection stays usable
            results = await asyncio.gather(link.publish("open/a", b"1", qos=1), link.publish("closed/b", b"2", qos=1),
                                           link.publish("open/c", b"3", qos=1), return_exceptions=True)
            assert [type(r).__name__ for r in results] == ["NoneType", "BrokerRefused", "NoneType"]

    run(main())


@pytest.mark.broker
def test_puback_under_mqtt311_has_no_failure_code(mqtt_broker_factory: MqttBrokerFactory, tmp_path: Path) -> None:
    # MQTT 3.1.1 §3.4: a PUBACK is only the packet id; the broker acknowledges a message it drops.
    broker = acl_broker(mqtt_broker_factory, tmp_path, "topic readwrite open/#")

    async def main() -> None:
        async with link_to(broker, "node", protocol="3.1.1") as link:
            assert await link.publish("closed/data", b"x", qos=1) is None
            assert link.connected

    run(main())


@pytest.mark.broker
def test_connect_times_out_without_connack(mqtt_broker: Mosquitto) -> None:
    async def main() -> None:
        mqtt_broker.freeze()  # the kernel still completes the TCP handshake
        with pytest.raises(BrokerTimeout, match=r"connect: no answer within 0\.3 s"):
            await link_to(mqtt_broker, "node").connect(timeout_s=0.3)
        mqtt_broker.thaw()

    run(main())


@pytest.mark.broker
def test_publish_raises_when_the_connection_drops(mqtt_broker: Mosquitto) -> None:
    async def consume(link: MqttLink) -> None:
        async for _ in link.messages():
            pass

    async def main() -> None:
        link, listener = link_to(mqtt_broker, "node"), link_to(mqtt_broker, "listener")
        await link.connect()
        await listener.connect()
        await listener.subscribe("drop/#")
        closed = asyncio.create_task(link.wait_closed())
        receiving = asyncio.create_task(consume(listener))
        mqtt_broker.freeze()
        publish = asyncio.create_task(link.publish("drop/data", b"x", qos=1, timeout_s=5))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        mqtt_broker.kill()  # while frozen, so it cannot send the PUBACK first
        with pytest.raises(BrokerDisconnected, match="connection lost during publish to drop/data"):
            await publish
        with pytest.raises(BrokerDisconnected, match="connection lost: the connection was (closed|lost)"):
            await closed
        with pytest.raises(BrokerDisconnected, match="connection lost during receive"):
            await receiving
        assert time.monotonic() - started < 2  # at once, not after the 5 s timeout
        assert not link.connected
        with pytest.raises(BrokerDisconnected, match="not connected"):
            await link.publish("drop/data", b"x", qos=1)
        await link.disconnect()
        await link.disconnect()  # idempotent

    run(main())


@pytest.mark.broker
def test_no_broker_there_is_a_one_line_error(mqtt_broker: Mosquitto) -> None:
    mqtt_broker.stop()

    async def main() -> None:
        with pytest.raises(BrokerUnreachable) as info:
            await link_to(mqtt_broker, "node").connect()
        assert str(info.value) == (f"MQTT broker 127.0.0.1:{mqtt_broker.port}: connection refused: "
                                   f"no broker listening there")
        assert info.value.transient

    run(main())


# ---------------------------------------------------------------------------------------------
# Last will


@pytest.mark.broker
@PROTOCOLS
def test_will_published_on_disconnect_with_will(mqtt_broker: Mosquitto, protocol: str) -> None:
    async def main() -> None:
        watcher = await Watcher(mqtt_broker).start("w/+/status")
        link = link_to(mqtt_broker, "a", protocol=protocol, will=Will("w/a/status", b"offline"))
        await link.connect()
        await link.disconnect(send_will=True)
        message = await watcher.wait_for("w/a/status", 1.5)
        assert message is not None and message.payload == b"offline"
        await watcher.stop()

    run(main())


@pytest.mark.broker
@PROTOCOLS
def test_will_discarded_on_normal_disconnect(mqtt_broker: Mosquitto, protocol: str) -> None:
    async def main() -> None:
        watcher = await Watcher(mqtt_broker).start("w/+/status")
        link = link_to(mqtt_broker, "b", protocol=protocol, will=Will("w/b/status", b"offline", delay_s=None))
        await link.connect()
        await link.disconnect()
        assert await watcher.wait_for("w/b/status", 0.7) is None
        await watcher.stop()

    run(main())


@pytest.mark.broker
def test_will_delay_holds_the_will_back(mqtt_broker: Mosquitto) -> None:
    async def main() -> None:
        watcher = await Watcher(mqtt_broker).start("wd/+/status")
        link = link_to(mqtt_broker, "c", will=Will("wd/c/status", b"offline", delay_s=1))
        await link.connect()
        await link.disconnect(send_will=True)
        assert await watcher.wait_for("wd/c/status", 0.8) is None  # not before the delay
        assert await watcher.wait_for("wd/c/status", 1.5) is not None  # but after it
        await watcher.stop()

    run(main())


@pytest.mark.broker
def test_reconnect_within_will_delay_cancels_the_will(mqtt_broker: Mosquitto,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        watcher = await Watcher(mqtt_broker).start("wd/+/status")
        link = link_to(mqtt_broker, "d", will=Will("wd/d/status", b"offline", delay_s=1))
        await link.connect()
        await link.disconnect(send_will=True)  # going to sleep: offline unless back within 1 s
        await asyncio.sleep(0.3)
        await link.connect()  # the same client id is back in time
        assert await watcher.wait_for("wd/d/status", 1.6) is None
        await link.disconnect()
        await watcher.stop()

    with caplog.at_level(logging.DEBUG, logger="sensord.mqtt.client"):
        run(main())
    # Clean Start 0: per MQTT 5 §3.1.3.2.2 a clean start would end the session and so publish the
    # will at once. mosquitto 2.0 cancels it either way, so check the flag in paho's debug log.
    connects = [r.getMessage() for r in caplog.records if "Sending CONNECT" in r.getMessage()]
    assert len(connects) == 3 and all(", c0," in line for line in connects[1:]), connects


# ---------------------------------------------------------------------------------------------
# Protocol fallback, against a fake broker that only speaks MQTT 3.1.1


async def start_v311_only_broker(refusal: Literal["connack", "close"]) -> tuple[asyncio.Server, int, list[int]]:
    """Answers an MQTT 5 CONNECT with a 3.1.1 CONNACK rc 1 (or by closing), accepts 3.1.1."""
    levels: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)  # CONNECT fixed header
        length, shift = 0, 0
        while True:  # remaining length, MQTT 3.1.1 §2.2.3
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        body = await reader.readexactly(length)
        assert body[:6] == b"\x00\x04MQTT"
        levels.append(body[6])  # protocol level: 4 = 3.1.1, 5 = MQTT 5
        if body[6] == 4:
            writer.write(b"\x20\x02\x00\x00")  # CONNACK accepted
            await reader.read()  # until the client's DISCONNECT and close
        elif refusal == "connack":
            writer.write(b"\x20\x02\x00\x01")  # CONNACK rc 1: unacceptable protocol version
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], levels


@pytest.mark.parametrize("refusal", ["connack", "close"])
def test_mqtt5_refused_falls_back_to_311_with_one_log_line(refusal: Literal["connack", "close"],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, port, levels = await start_v311_only_broker(refusal)
        link = link_to(Address("127.0.0.1", port), "old", will=Will("x/status", b"offline", delay_s=5))
        assert link.protocol == "5"
        await link.connect()
        assert link.protocol == "3.1.1" and levels == [5, 4]
        await link.disconnect()
        await link.connect()  # stays on 3.1.1, without trying MQTT 5 again
        await link.disconnect()
        assert levels == [5, 4, 4]
        server.close()

    with caplog.at_level(logging.INFO, logger="sensord"):
        run(main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1 and "refused MQTT 5" in lines[0] and "using MQTT 3.1.1" in lines[0], lines


# ---------------------------------------------------------------------------------------------
# Protocol fallback and silence, against the in-memory broker (no socket, no real waiting)


def fake_link(broker: FakeBroker, client_id: str, **kwargs: Any) -> MqttLink:
    return MqttLink(config=MqttConfig(), client_id=client_id, connection_factory=broker.connection, **kwargs)


def test_link_falls_back_to_311_when_mqtt5_gets_no_connack(caplog: pytest.LogCaptureFixture) -> None:
    # Was tests/faults/test_brokers.py's test against amqtt, which says nothing to an MQTT 5
    # CONNECT with a will; the daemon against a real amqtt is still there (test_daemon_delivers_to_amqtt_...).
    caplog.set_level(logging.WARNING, logger="sensord.mqtt")
    broker = FakeBroker()
    broker.refuse_mqtt5("silent")
    link = fake_link(broker, "probe", timeout_s=30.0, will=Will("faults/probe/status", b"offline"))

    async def scenario() -> None:
        await link.connect()
        await link.publish("faults/probe/data", b"1", qos=1)
        await link.disconnect()
        await link.connect()  # remembered: no second probe
        await link.publish("faults/probe/data", b"2", qos=1)
        await link.disconnect()

    run(scenario())
    assert link.protocol == "3.1.1"
    # The probe waits 5 s (on loopback, 4 x setup is far less), not the 30 s connect timeout.
    assert v5_probe_s(0.001) == 5.0 and broker.silences == [5.0], broker.silences
    assert [c.mqtt5 for c in broker.connects] == [True, False, False]
    assert broker.payloads("faults/probe/data") == [b"1", b"2"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "sensord.mqtt"]
    assert len(warnings) == 1 and "did not answer an MQTT 5 CONNECT" in warnings[0], warnings


def test_probe_scales_with_a_slow_link() -> None:
    assert v5_probe_s(0.0) == 5.0
    assert v5_probe_s(3.0) == 12.0  # satellite: 3 s of TCP and TLS handshakes, 12 s for the CONNACK


def test_confirmed_mqtt5_broker_going_silent_is_not_demoted() -> None:
    # Was in tests/faults/test_brokers.py, against a frozen mosquitto.
    broker = FakeBroker()
    link = fake_link(broker, "frozen", timeout_s=1.0, will=Will("faults/frozen/status", b"offline"))

    async def scenario() -> None:
        await link.connect()
        await link.disconnect()
        broker.silent()
        with pytest.raises(BrokerTimeout):
            await link.connect()
        broker.accept()
        await link.connect()
        await link.disconnect()

    run(scenario())
    assert link.protocol == "5"
    assert [c.mqtt5 for c in broker.connects] == [True, True, True]  # a timeout, never a fallback


@pytest.mark.parametrize(("code", "error", "text"), [
    (0x86, BrokerAuthError, "refused the connection: bad user name or password (code 0x86); set mqtt.username "
                            "and mqtt.password_file"),
    (0x85, BrokerError, "refused the connection: client identifier not valid (code 0x85); "
                        "set mqtt.client_id to one the broker accepts (now 'n1')"),
    (0x89, BrokerError, "refused the connection: server busy (code 0x89)"),
])
def test_connack_refusals_are_one_line_errors(code: int, error: type[BrokerError], text: str) -> None:
    broker = FakeBroker()
    broker.refuse(code)
    with pytest.raises(error) as info:
        run(fake_link(broker, "n1").connect())
    assert str(info.value) == f"MQTT broker localhost:1883 {text}"
    assert info.value.transient == (code == 0x89)


def test_a_dropped_connection_ends_publish_wait_closed_and_messages_at_once() -> None:
    broker = FakeBroker()
    broker.hold_pubacks("drop/")

    async def consume(link: MqttLink) -> None:
        async for _ in link.messages():
            pass

    async def main() -> None:
        link, listener = fake_link(broker, "node", timeout_s=30.0), fake_link(broker, "listener")
        await link.connect()
        await listener.connect()
        await listener.subscribe("drop/#")
        closed = asyncio.create_task(link.wait_closed())
        receiving = asyncio.create_task(consume(listener))
        publish = asyncio.create_task(link.publish("drop/data", b"x", qos=1))
        await broker.wait_for(lambda: len(broker.attempts) == 1)
        broker.drop()
        with pytest.raises(BrokerDisconnected, match="connection lost during publish to drop/data"):
            await publish
        with pytest.raises(BrokerDisconnected, match="connection lost: the connection was lost"):
            await closed
        with pytest.raises(BrokerDisconnected, match="connection lost during receive"):
            await receiving
        with pytest.raises(BrokerDisconnected, match="not connected"):
            await link.publish("drop/data", b"x", qos=1)
        await link.disconnect()

    run(main())


# ---------------------------------------------------------------------------------------------
# Credentials


def test_password_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mqtt.pass"
    path.write_text(PASSWORD + "\n")
    for mode, verb in ((0o644, "read"), (0o640, "read"), (0o620, "change")):
        os.chmod(path, mode)
        with pytest.raises(ConfigError) as info:
            read_password_file(str(path))
        assert str(info.value) == f"{path}: mode {mode:04o} lets other users {verb} the password; chmod 600 it"
        assert PASSWORD not in str(info.value)
    os.chmod(path, 0o600)
    assert read_password_file(str(path)) == PASSWORD  # one trailing newline stripped
    path.write_text(PASSWORD + "\n\n")
    assert read_password_file(str(path)) == PASSWORD + "\n"
    with pytest.raises(ConfigError, match="password file .* not found"):
        read_password_file(str(tmp_path / "missing"))
    # The constructor reads it, so a bad file stops the daemon at start-up.
    os.chmod(path, 0o604)
    with pytest.raises(ConfigError, match="mode 0604"):
        link_to(Address("127.0.0.1", 1), "x", username="node", password_file=str(path))


def _texts(exc: BaseException | None) -> list[str]:
    """str and repr of an exception and of everything chained to it."""
    texts: list[str] = []
    while exc is not None:
        texts += [str(exc), repr(exc), repr(exc.args)]
        exc = exc.__cause__ or exc.__context__
    return texts


@pytest.mark.broker
def test_credentials_and_the_password_never_shows(mqtt_broker_factory: MqttBrokerFactory, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    broker = mqtt_broker_factory(password=("node", PASSWORD))  # no anonymous access
    good, bad = tmp_path / "good.pass", tmp_path / "bad.pass"
    for path, password in ((good, PASSWORD), (bad, PASSWORD[::-1])):
        path.write_text(password + "\n")
        path.chmod(0o600)

    async def main() -> list[BrokerError]:
        errors: list[BrokerError] = []
        for protocol in ("5", "3.1.1"):
            with pytest.raises(BrokerAuthError) as info:
                await link_to(broker, "n", protocol=protocol, username="node", password_file=str(bad)).connect()
            errors.append(info.value)
        with pytest.raises(BrokerAuthError, match="set mqtt.username and mqtt.password_file") as anon:
            await link_to(broker, "n").connect()
        errors.append(anon.value)
        async with link_to(broker, "n", username="node", password_file=str(good)) as link:
            await link.publish("auth/data", b"x", qos=1)
        return errors

    with caplog.at_level(logging.DEBUG):
        errors = run(main())
    for error in errors[:2]:
        # mosquitto says "not authorized" (3.1.1: 5, MQTT 5: 0x87) to a wrong password; paho 2
        # reports the 3.1.1 code as its MQTT 5 equivalent, paho 1.6 as it is
        assert re.search(r"refused the connection: not authorized \(code 0x(87|05)\)", str(error))
        assert f"check mqtt.username ('node'), the password in {bad}, and the user's rights" in str(error)
    assert all(not e.transient for e in errors)
    for text in [*(t for e in errors for t in _texts(e)), caplog.text,
                 *(repr(r.args) for r in caplog.records)]:
        assert PASSWORD not in text and PASSWORD[::-1] not in text
    assert "Sending CONNECT" in caplog.text  # the library's debug log was captured too


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.mark.broker
def test_tls(mqtt_broker_factory: MqttBrokerFactory, caplog: pytest.LogCaptureFixture) -> None:
    broker = mqtt_broker_factory(tls=True)  # certificate for 127.0.0.1 from a throw-away CA
    assert broker.pki is not None
    ca_file = str(broker.pki.ca_cert)

    async def main() -> None:
        with pytest.raises(BrokerTlsError, match="certificate verify failed .*set mqtt.tls.ca_file") as info:
            await link_to(broker, "t", tls=TlsConfig()).connect()
        assert not info.value.transient
        async with link_to(broker, "t", tls=TlsConfig(ca_file=ca_file)) as link:
            await link.publish("tls/data", b"x", qos=1)
        insecure = link_to(broker, "t", tls=TlsConfig(insecure=True))
        for _ in range(2):
            await insecure.connect()
        await insecure.disconnect()
        with pytest.raises(BrokerUnreachable, match="closed the connection before accepting it"):
            await link_to(broker, "t").connect()  # plain MQTT to a TLS port

    with caplog.at_level(logging.WARNING, logger="sensord"):
        run(main())
    assert sum("insecure" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(ConfigError, match="mqtt.tls.ca_file: cannot load CA certificates from /nonexistent"):
        link_to(broker, "t", tls=TlsConfig(ca_file="/nonexistent"))


# ---------------------------------------------------------------------------------------------
# Backoff


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    low = Backoff(max_s=10, rand=lambda: 0.0)
    assert [low.next_delay() for _ in range(7)] == [0.5, 1, 2, 4, 5, 5, 5]
    high = Backoff(max_s=10, rand=lambda: 0.999999)
    assert [round(high.next_delay(), 3) for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    high.reset()
    assert round(high.next_delay(), 3) == 1
    jittered = Backoff(max_s=60)
    delays = [jittered.next_delay() for _ in range(200)]
    assert all(0.5 <= d <= 60 for d in delays)
    assert len({round(d, 6) for d in delays[10:]}) > 100  # not lockstep once capped
    with pytest.raises(ValueError):
        Backoff(max_s=0.5)
