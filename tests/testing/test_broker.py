"""The real-broker harness: mosquitto lifecycle, auth, TLS, persistence and the paho helpers."""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensord.testing.broker import (
    INSTALL_HINT,
    BrokerStartError,
    Message,
    Mosquitto,
    MosquittoNotFoundError,
    Subscription,
    collect,
    connect,
    free_port,
    publish,
)

pytestmark = pytest.mark.broker


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as b:
        yield b


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    return f"test/{request.node.name}"


def test_publish_subscribe(broker: Mosquitto, topic: str) -> None:
    with Subscription(broker, f"{topic}/#") as sub:
        publish(broker, f"{topic}/a", b"\x00hello", qos=1)
        publish(broker, f"{topic}/b", "text", qos=0)
        msgs = sub.wait_for_count(2)
    assert msgs == [Message(f"{topic}/a", b"\x00hello", 1, False), Message(f"{topic}/b", b"text", 0, False)]
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert "New client connected" in broker.log_text()


def test_wait_for_times_out_listing_what_arrived(broker: Mosquitto, topic: str) -> None:
    with Subscription(broker, topic) as sub:
        publish(broker, topic, b"one")
        with pytest.raises(TimeoutError, match="b'one'"):
            sub.wait_for_count(2, timeout_s=0.2)


def test_retained_lost_on_restart_without_persistence(broker: Mosquitto, topic: str) -> None:
    publish(broker, topic, b"r", retain=True)
    assert [m.payload for m in collect(broker, topic, count=1)] == [b"r"]
    broker.restart()
    assert collect(broker, topic, timeout_s=0.2) == []


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_retained_survives_restart_with_persistence(how: str, topic: str) -> None:
    with Mosquitto(persistence=True) as broker:
        port = broker.port
        publish(broker, topic, b"kept", retain=True)
        if how == "stop":
            broker.stop()
        else:
            broker.wait_persisted(b"kept")  # mosquitto saves just after its PUBACK
            broker.kill()
        broker.start()
        assert broker.port == port
        assert collect(broker, topic, count=1) == [Message(topic, b"kept", 1, True)]


def test_kill_and_restart_on_same_port_reconnects_subscriber(broker: Mosquitto, topic: str) -> None:
    port = broker.port
    with Subscription(broker, topic) as sub:
        publish(broker, topic, b"before")
        sub.wait_for_count(1)
        broker.kill()
        assert not broker.running and broker.pid is None
        broker.start()  # the subscriber's old connection may still be in TIME_WAIT on this port
        assert broker.port == port
        # The subscriber reconnects on its own; publish until it has resubscribed and sees one.
        deadline = time.monotonic() + 3.0
        while True:
            publish(broker, topic, b"after", qos=0)
            try:
                sub.wait_for(lambda msgs: msgs[-1].payload == b"after", timeout_s=0.05)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def test_password_auth(topic: str) -> None:
    with Mosquitto(password=("sensor", "s3cret")) as broker:
        client = connect(broker)  # credentials default to the broker's
        client.disconnect()
        client.loop_stop()
        with pytest.raises(ConnectionRefusedError, match="refused"):
            connect(broker, username="sensor", password="wrong")
        with pytest.raises(ConnectionRefusedError, match="refused"):
            connect(broker, username=None)  # anonymous: off once a password is set
        broker.wait_for_log("disconnected, not authorised", count=2)


def test_tls_with_generated_ca(topic: str) -> None:
    with Mosquitto(tls=True) as broker:
        assert broker.url.startswith("mqtts://") and broker.pki is not None
        with Subscription(broker, topic) as sub:
            publish(broker, topic, b"secure")
            assert sub.wait_for_count(1)[0].payload == b"secure"
        # Checked with the ssl module rather than paho: paho 2.2 leaks the socket of a failed handshake.
        for hostname in ("localhost", "127.0.0.1"):
            _tls_handshake(broker, broker.pki.ca_cert, hostname)
        with pytest.raises(ssl.SSLCertVerificationError):
            _tls_handshake(broker, broker.pki.other_ca_cert, "localhost")


def _tls_handshake(broker: Mosquitto, ca_cert: Path, hostname: str) -> None:
    context = ssl.create_default_context(cafile=str(ca_cert))
    with socket.create_connection((broker.host, broker.port), timeout=2.0) as raw, \
            context.wrap_socket(raw, server_hostname=hostname):
        pass


def test_freeze_and_thaw(broker: Mosquitto, topic: str) -> None:
    broker.freeze()
    # The kernel completes the TCP handshake, but nobody answers CONNECT.
    with pytest.raises(ConnectionRefusedError, match="no CONNACK"):
        connect(broker, timeout_s=0.3)
    broker.thaw()
    publish(broker, topic, b"x")


def test_stop_while_frozen_does_not_hang(broker: Mosquitto) -> None:
    broker.freeze()
    broker.stop(timeout_s=2.0)
    assert not broker.running


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(MosquittoNotFoundError) as info:
        Mosquitto()
    assert str(info.value) == INSTALL_HINT
    assert 'apt-get install -y mosquitto' in str(info.value)


def test_bad_config_reports_mosquitto_output() -> None:
    broker = Mosquitto(extra_config="no_such_option true")
    try:
        with pytest.raises(BrokerStartError, match="no_such_option"):
            broker.start()
    finally:
        broker.close()


def test_explicit_port_in_use_is_reported() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        broker = Mosquitto(port=port)
        try:
            with pytest.raises(BrokerStartError, match="in use"):
                broker.start()
        finally:
            broker.close()
