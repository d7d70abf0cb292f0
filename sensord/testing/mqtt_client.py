"""Synchronous paho-mqtt clients for watching and driving a test broker.

`Subscription` is a paho client in a background thread that records what arrives on a topic
filter, so a test subscribes first, runs the system under test, then waits for the messages it
expects. `collect()`, `connect()` and `publish()` are one-call helpers on top of `paho_client()`,
which sets a client up for a `Mosquitto` (credentials, TLS trust). All work with paho-mqtt 2.x
and 1.6 (Debian bookworm).

paho is imported inside functions: pytest imports `sensord.testing` at start-up as a plugin, and
that must work where paho is not installed.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol


class _Trust(Protocol):
    @property
    def ca_cert(self) -> Path: ...


class BrokerAddress(Protocol):
    """What these clients need of a broker: `sensord.testing.Mosquitto` (whose module imports
    this one) has it; so can any other test broker."""

    host: str
    port: int
    password: tuple[str, str] | None
    tls: bool
    pki: _Trust | None

    @property
    def url(self) -> str: ...

__all__ = ["Message", "Subscription", "collect", "connect", "paho_client", "publish"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a subscriber received it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def _failed(code: Any) -> bool:
    # paho 2.x passes ReasonCode objects, paho 1.6 plain ints; failures are >= 0x80 (CONNACK: != 0).
    return int(getattr(code, "value", code)) >= 0x80


def paho_client(broker: BrokerAddress, *, client_id: str = "", username: str | None = None,
                password: str | None = None, ca_cert: Path | None = None) -> Any:
    """A paho `Client` (not connected) set up for `broker`: credentials and TLS trust.

    Works with paho 2.x (callback API version 2) and 1.6. `ca_cert` overrides the broker's CA,
    e.g. with `Pki.other_ca_cert` to test a rejected certificate.
    """
    import paho.mqtt.client as mqtt

    client: Any  # paho 2.x is typed, 1.6 is not; reconnect_delay_set() takes floats in both
    if hasattr(mqtt, "CallbackAPIVersion"):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    else:  # paho 1.6
        client = mqtt.Client(client_id=client_id)
    # paho waits 1 s before reconnecting (doubling up to 2 min), and loop_stop() waits out that
    # sleep; tests restart brokers and refuse logins, so retry fast.
    client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
    if username is not None:
        client.username_pw_set(username, password)
    if ca_cert is None and broker.tls:
        assert broker.pki is not None  # Mosquitto(tls=True) always has one
        ca_cert = broker.pki.ca_cert
    if ca_cert is not None:
        # A ready context rather than tls_set(): paho 1.6's tls_set() builds an
        # SSLContext(PROTOCOL_TLS), deprecated since Python 3.10.
        client.tls_set_context(ssl.create_default_context(cafile=str(ca_cert)))
    return client


class Subscription:
    """A background subscriber recording messages on `topic_filter`.

    Use as a context manager: entering connects and waits for the SUBACK, so everything published
    afterwards is seen. `messages` grows from paho's thread; read it through `wait_for()`.
    `username`/`password` default to the broker's `password` option. If the broker restarts, the
    subscriber reconnects within 0.2 s and subscribes again (so retained messages come again).
    """

    def __init__(self, broker: BrokerAddress, topic_filter: str, *, qos: int = 1, client_id: str = "",
                 username: str | None = None, password: str | None = None,
                 timeout_s: float = 5.0) -> None:
        if username is None and broker.password is not None:
            username, password = broker.password
        self.broker = broker
        self.topic_filter = topic_filter
        self.qos = qos
        self.timeout_s = timeout_s
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._error: str | None = None
        self._client = paho_client(broker, client_id=client_id, username=username, password=password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, *_: Any) -> None:
        if code != 0:
            self._error = f"connection refused: {code}"
            self._ready.set()
            return
        client.subscribe(self.topic_filter, qos=self.qos)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, *_: Any) -> None:
        if any(_failed(c) for c in codes):
            self._error = f"subscription to {self.topic_filter!r} refused: {list(codes)}"
        self._ready.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))
            self._cond.notify_all()

    def start(self) -> Subscription:
        """Connect, subscribe and wait for the SUBACK (at most `timeout_s`)."""
        self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        self._client.loop_start()
        if not self._ready.wait(self.timeout_s) or self._error is not None:
            self.stop()
            raise ConnectionError(f"subscriber on {self.broker.url}: "
                                  f"{self._error or f'no SUBACK within {self.timeout_s} s'}")
        return self

    def stop(self) -> None:
        """Disconnect and end paho's thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def wait_for(
        self, predicate: Callable[[list[Message]], bool], timeout_s: float | None = None
    ) -> list[Message]:
        """Block until `predicate(messages)` is true; return a copy of the messages.

        Raises `TimeoutError` listing what did arrive.
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), limit):
                raise TimeoutError(f"{self.topic_filter!r}: condition not met within {limit} s; "
                                   f"received {self.messages!r}")
            return list(self.messages)

    def wait_for_count(self, count: int, timeout_s: float | None = None) -> list[Message]:
        """Block until at least `count` messages arrived; return them."""
        return self.wait_for(lambda msgs: len(msgs) >= count, timeout_s)

    def __enter__(self) -> Subscription:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def collect(broker: BrokerAddress, topic_filter: str, *, count: int | None = None, timeout_s: float = 2.0,
            qos: int = 1, **kwargs: Any) -> list[Message]:
    """Subscribe and return what arrives: `count` messages (else `TimeoutError`), or, with
    `count=None`, everything within `timeout_s` (handy for retained messages)."""
    with Subscription(broker, topic_filter, qos=qos, timeout_s=timeout_s, **kwargs) as sub:
        if count is not None:
            return sub.wait_for_count(count)[:count]
        time.sleep(timeout_s)
        return list(sub.messages)


def connect(broker: BrokerAddress, *, keepalive_s: int = 30, timeout_s: float = 5.0,
            address: tuple[str, int] | None = None, will: tuple[str, bytes] | None = None,
            **kwargs: Any) -> Any:
    """A paho client connected to `broker` with its network thread running; call
    `client.disconnect(); client.loop_stop()` when done.

    `address` connects elsewhere, e.g. to a `TcpProxy` in front of the broker. `will` is a
    (topic, payload) last will at QoS 1. `kwargs` go to `paho_client()`; credentials default to
    the broker's `password` option. Raises `ConnectionRefusedError` naming the reason if the
    broker refuses (bad password) or does not answer, and `ssl.SSLError` from the handshake if
    the broker's certificate is not trusted.
    """
    if "username" not in kwargs and broker.password is not None:
        kwargs["username"], kwargs["password"] = broker.password
    client = paho_client(broker, **kwargs)
    if will is not None:
        client.will_set(will[0], will[1], qos=1)
    done = threading.Event()
    result: list[Any] = []

    def on_connect(client: Any, userdata: Any, flags: Any, code: Any, *_: Any) -> None:
        result.append(code)
        done.set()

    client.on_connect = on_connect
    host, port = address if address is not None else (broker.host, broker.port)
    client.connect(host, port, keepalive=keepalive_s)
    client.loop_start()
    if not done.wait(timeout_s) or result[0] != 0:
        # Stop here, or paho's thread keeps reconnecting with the rejected credentials.
        client.disconnect()
        client.loop_stop()
        reason = f"refused: {result[0]}" if result else f"no CONNACK within {timeout_s} s"
        raise ConnectionRefusedError(f"MQTT connection to {broker.url} {reason}")
    client.on_connect = None
    return client


def publish(broker: BrokerAddress, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
            timeout_s: float = 5.0, **kwargs: Any) -> None:
    """Connect, publish one message, wait until the broker has it (PUBACK/PUBCOMP), disconnect.

    `kwargs` go to `connect()`.
    """
    client = connect(broker, timeout_s=timeout_s, **kwargs)
    try:
        info = client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic!r} on {broker.url} not acknowledged within {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()
