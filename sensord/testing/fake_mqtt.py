"""An in-memory MQTT broker for fast tests of `sensord.mqtt` (the link and the publisher).

`FakeBroker.connection` stands in for the library `Connection` that `MqttLink` opens (pass it as
`connection_factory=`), so the link's error mapping and protocol fallback, and the publisher's
reconnect, refusal, duty-cycle and shutdown logic run without a socket, a broker or a thread::

    broker = FakeBroker()
    link = MqttLink(config=MqttConfig(), client_id="n1", connection_factory=broker.connection)
    await link.connect()
    await link.publish("sensord/n1/data", b"...", qos=1, content_type="application/cbor")
    assert broker.published[-1].content_type == "application/cbor"

Faults are injected, not hoped for:

- connect: `broker.unreachable()` (connection refused), `broker.os_error(exc)` (a TLS failure...),
  `broker.refuse(code)` (CONNACK with a reason code), `broker.silent()` (no CONNACK: the connect
  times out), `broker.accept()` again; `broker.refuse_mqtt5()` plays a 3.1.1-only broker.
- publish: `broker.refuse_topic(prefix, code)` (PUBACK with a failure reason code),
  `broker.lose_pubacks(prefix)` (no PUBACK: the publish times out), `broker.hold_pubacks(prefix)`
  (no PUBACK until `release()`: a publish that hangs), `broker.allow()` undoes all three.
- `broker.drop()`: every connection is lost (the broker went away); wills are published.
- keepalive: `broker.ignore_pings()` (PINGREQ gets no PINGRESP, as behind a dead link), `broker.allow()`
  answers them again; `pings` records the client id of each PINGREQ.

Time: a wait that would last until one of the link's timeouts lasts `timeout_s * time_scale` (by
default a thousandth) of real time, so a 30 s PUBACK timeout costs 30 ms. Keepalive runs on
`clock` (`monotonic()` and `sleep_until()`, as `sensord.testing.clock.FakeClock`): give the broker
and the `MqttLink` the same `FakeClock` to test it on virtual time. Without one, the idle time a
connection reports is real time, so a link's keepalive never comes due in a fast test.

Records: `connects` (each CONNECT: client id, protocol, will, properties), `silences` (the
seconds each connect to a silent broker waited for its CONNACK), `attempts` (every
PUBLISH received, refused ones too), `published` (what the broker accepted, in order, wills
included), `disconnects` (client id and reason code; `None` for a lost connection) and
`retained`. `wait_for(predicate)` waits for a condition on the broker without polling sleeps.

Imports `sensord.mqtt.compat` (and so the MQTT library) when a connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__all__ = ["FakeBroker", "FakeConnection", "Message", "Connect"]


@dataclass(frozen=True)
class Message:
    """One PUBLISH as the broker received it (or a will it published)."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None = None
    will: bool = False


@dataclass(frozen=True)
class Connect:
    """One CONNECT as the broker received it."""

    client_id: str
    mqtt5: bool
    clean_start: bool
    will: Message | None
    will_delay_s: int | None
    session_expiry_s: int | None
    username: str | None
    password: str | None
    keepalive_s: int


def _prop(props: Any, name: str) -> Any:
    return getattr(props, name, None) if props is not None else None


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (§4.7): `+` one level, `#` the rest."""
    want, have = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


@dataclass
class _Rule:
    prefix: str
    action: str  # "refuse", "lose", "hold"
    code: int = 0


class FakeBroker:
    """Plays the broker for every `FakeConnection` it makes; see the module docstring."""

    def __init__(self, *, time_scale: float = 0.001, clock: Clock | None = None) -> None:
        self.time_scale = time_scale
        self.clock = clock
        self.pings: list[str] = []  # client id of each PINGREQ
        self._ignore_pings = False
        self.connects: list[Connect] = []
        self.attempts: list[Message] = []
        self.published: list[Message] = []
        self.disconnects: list[tuple[str, int | None]] = []
        self.retained: dict[str, Message] = {}
        self.pending_wills: dict[str, Message] = {}  # client id -> will held back by its delay
        self.silences: list[float] = []  # how long each connect to a silent broker waited, in seconds
        self._connect_fault: tuple[str, Any] | None = None
        self._no_mqtt5: str | None = None
        self._rules: list[_Rule] = []
        self._released = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.connections: list[FakeConnection] = []

    # -- faults ----------------------------------------------------------------------------------

    def accept(self) -> None:
        """Accept connections again."""
        self._connect_fault = None

    def unreachable(self) -> None:
        """Connection refused: nothing listens on the port."""
        self.os_error(ConnectionRefusedError(111, "Connection refused"))

    def os_error(self, exc: OSError) -> None:
        """Every connect fails with `exc` (an `ssl.SSLCertVerificationError`, a `socket.gaierror`...)."""
        self._connect_fault = ("os", exc)

    def refuse(self, code: int) -> None:
        """Answer CONNECT with CONNACK `code` (3.1.1: 1-5, MQTT 5: >= 0x80)."""
        self._connect_fault = ("connack", code)

    def silent(self) -> None:
        """Take the TCP connection and the CONNECT, and never answer."""
        self._connect_fault = ("silent", None)

    def refuse_mqtt5(self, how: str = "connack") -> None:
        """An MQTT 3.1.1-only broker: an MQTT 5 CONNECT gets CONNACK rc 1 ("connack"), a closed
        connection ("closed") or no answer ("silent")."""
        self._no_mqtt5 = how

    def refuse_topic(self, prefix: str, code: int = 0x87) -> None:
        """PUBACK with failure reason `code` for topics starting with `prefix` (MQTT 5 only)."""
        self._rules.append(_Rule(prefix, "refuse", code))

    def lose_pubacks(self, prefix: str = "") -> None:
        """No PUBACK for topics starting with `prefix`: the publish times out."""
        self._rules.append(_Rule(prefix, "lose"))

    def hold_pubacks(self, prefix: str = "") -> None:
        """No PUBACK for topics starting with `prefix` until `release()`: the publish hangs."""
        self._released.clear()
        self._rules.append(_Rule(prefix, "hold"))

    def release(self) -> None:
        """Send the PUBACKs held back by `hold_pubacks()`, and stop holding them."""
        self._rules = [r for r in self._rules if r.action != "hold"]
        self._released.set()

    def allow(self) -> None:
        """Take every publish again (ends `refuse_topic`, `lose_pubacks`, `hold_pubacks`) and
        answer pings again (ends `ignore_pings`)."""
        self.release()
        self._rules.clear()
        self._ignore_pings = False

    def ignore_pings(self) -> None:
        """Never answer PINGREQ: the client's ping times out, as behind a blackholed link."""
        self._ignore_pings = True

    def drop(self) -> None:
        """Lose every open connection, as when the broker dies; their wills are published."""
        for conn in list(self.connections):
            conn._lose("the connection was lost")

    def fire_pending_wills(self) -> None:
        """The will delays ran out: publish the wills held back."""
        for will in self.pending_wills.values():
            self._deliver(will)
        self.pending_wills.clear()

    # -- records ---------------------------------------------------------------------------------

    def topics(self, suffix: str = "") -> list[str]:
        return [m.topic for m in self.published if m.topic.endswith(suffix)]

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.published if m.topic == topic]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Wait until `predicate()` holds; it is checked after every change on the broker."""
        if predicate():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, waiter))
        try:
            await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.remove((predicate, waiter))

    # -- what a connection calls -----------------------------------------------------------------

    def connection(self, **kwargs: Any) -> FakeConnection:
        """Make a connection: takes `MqttLink`'s keyword arguments for the library `Connection`."""
        return FakeConnection(self, **kwargs)

    def _changed_now(self) -> None:
        for predicate, waiter in self._waiters:
            if not waiter.done() and predicate():
                waiter.set_result(None)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, client_id: str = "other") -> None:
        """A message from another client (Home Assistant's birth message, say), delivered to the
        subscribers; retained (an empty payload deletes the retained one) when `retain`."""
        self._deliver(Message(client_id, topic, payload, 0, retain))

    def _deliver(self, message: Message) -> None:
        self.published.append(message)
        if message.retain and not message.payload:
            self.retained.pop(message.topic, None)  # MQTT 5 §3.3.1.3: an empty retained message deletes
        elif message.retain:
            self.retained[message.topic] = message
        for conn in self.connections:
            conn._receive(message)
        self._changed_now()

    def _rule(self, topic: str) -> _Rule | None:
        return next((r for r in self._rules if topic.startswith(r.prefix)), None)


class FakeConnection:
    """The `Connection` interface of `sensord.mqtt.compat`, served by a `FakeBroker`."""

    def __init__(self, broker: FakeBroker, *, client_id: str, mqtt5: bool, will: Any = None,
                 connect_properties: Any = None, clean_start: bool = True, username: str | None = None,
                 password: str | None = None, keepalive_s: int = 60, logger: logging.Logger | None = None,
                 **_: Any) -> None:
        self.broker = broker
        self.client_id = client_id
        self.mqtt5 = mqtt5
        self.clean_start = clean_start
        self.username = username
        self.password = password
        self.keepalive_s = keepalive_s
        self.will: Message | None = None
        self.will_delay_s: int | None = None
        if will is not None:
            topic, payload, qos, retain, props = will
            self.will = Message(client_id, topic, payload, qos, retain, will=True)
            self.will_delay_s = _prop(props, "WillDelayInterval")
        self.session_expiry_s = _prop(connect_properties, "SessionExpiryInterval")
        self._lost = asyncio.get_running_loop().create_future()
        self._lost_detail = ""
        self._on_purpose = False
        self._open = False
        self._subscriptions: list[str] = []
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._sent_at = self._now()  # the last packet to the broker

    def _now(self) -> float:
        clock = self.broker.clock
        return clock.monotonic() if clock is not None else time.monotonic()

    def idle_s(self) -> float:
        return self._now() - self._sent_at

    async def ping(self, timeout_s: float) -> None:
        if not self.is_open:
            raise self._lost_failure()
        broker = self.broker
        self._sent_at = self._now()
        broker.pings.append(self.client_id)
        broker._changed_now()
        if not broker._ignore_pings:
            return
        if broker.clock is None:
            await self._until_lost(timeout_s * broker.time_scale)
        else:
            timer = asyncio.ensure_future(broker.clock.sleep_until(self._sent_at + timeout_s))
            lost = asyncio.ensure_future(asyncio.shield(self._lost))
            try:
                await asyncio.wait({timer, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                lost.cancel()
            if not self.is_open:
                raise self._lost_failure()
        raise self._failure("timeout")

    def _failure(self, kind: str, detail: str = "", **kwargs: Any) -> Exception:
        from sensord.mqtt.compat import Failure

        # `kind` is one of Failure's literal kinds; the fake takes it from its callers as a str.
        return Failure(kind, detail, **kwargs)  # type: ignore[arg-type]

    @property
    def is_open(self) -> bool:
        return self._open and not self._lost.done()

    async def open(self, timeout_s: float, *, connack_timeout: Callable[[float], float] | None = None) -> None:
        broker = self.broker
        broker.connects.append(Connect(self.client_id, self.mqtt5, self.clean_start, self.will, self.will_delay_s,
                                       self.session_expiry_s, self.username, self.password, self.keepalive_s))
        broker._changed_now()
        kind, value = broker._connect_fault or ("", None)
        if self.mqtt5 and broker._no_mqtt5 and not kind:
            kind = {"connack": "connack", "closed": "closed", "silent": "silent"}[broker._no_mqtt5]
            value = 0x84 if kind == "connack" else None
        if kind == "os":
            raise self._failure("os", os_error=value)
        if kind == "connack":
            raise self._failure("connack", f"code {value}", code=value)
        if kind == "closed":
            raise self._failure("closed", "the broker closed the connection before CONNACK")
        if kind == "silent":
            probe_s = connack_timeout(0.0) if connack_timeout is not None else math.inf
            wait_s = min(timeout_s, probe_s)
            broker.silences.append(wait_s)
            await asyncio.sleep(wait_s * broker.time_scale)
            if connack_timeout is not None:
                raise self._failure("no_connack", f"no CONNACK within {wait_s:.3g} s of the connection")
            raise self._failure("timeout", "no CONNACK")
        self._open = True
        self._sent_at = self._now()
        if self.will is not None:
            held = broker.pending_wills.pop(self.client_id, None)  # back within the will delay
            del held
        broker.connections.append(self)

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool, props: Any,
                      timeout_s: float) -> None:
        if not self.is_open:
            raise self._lost_failure()
        broker = self.broker
        self._sent_at = self._now()
        message = Message(self.client_id, topic, bytes(payload), qos, retain, _prop(props, "ContentType"))
        broker.attempts.append(message)
        broker._changed_now()
        rule = broker._rule(topic)
        if rule is not None and qos > 0:
            if rule.action == "refuse" and self.mqtt5:
                raise self._failure("puback", "not authorized" if rule.code == 0x87 else f"code {rule.code}",
                                    code=rule.code)
            if rule.action == "refuse":  # MQTT 3.1.1 §3.4: a PUBACK without a code; the message is dropped
                return
            if rule.action == "lose":
                await self._until_lost(timeout_s * broker.time_scale)
                raise self._failure("timeout")
            if rule.action == "hold":
                await self._until_lost(None, broker._released)
        broker._deliver(message)

    async def _until_lost(self, timeout_s: float | None, event: asyncio.Event | None = None) -> None:
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.shield(self._lost))}
        if event is not None:
            waits.add(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if not self.is_open:
            raise self._lost_failure()

    async def subscribe(self, topics: list[tuple[str, int]], timeout_s: float) -> None:
        self._sent_at = self._now()
        self._subscriptions += [t for t, _ in topics]
        for message in self.broker.retained.values():
            if any(_matches(f, message.topic) for f, _ in topics):
                self._inbox.put_nowait(message)

    def _receive(self, message: Message) -> None:
        if self.is_open and any(_matches(f, message.topic) for f in self._subscriptions):
            self._inbox.put_nowait(Message(message.client_id, message.topic, message.payload, message.qos, False,
                                           message.content_type, message.will))

    async def messages(self) -> AsyncIterator[tuple[str, bytes, bool]]:
        while True:
            message = await self._inbox.get()
            if message is None:
                raise self._lost_failure()
            yield message.topic, message.payload, message.retain

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(self._lost)
        if not self._on_purpose:
            raise self._lost_failure()

    async def close(self, timeout_s: float, reason_code: int | None = None) -> None:
        if self.is_open:
            self.broker.disconnects.append((self.client_id, reason_code))
            if reason_code == 0x04 and self.will is not None:  # DISCONNECT with Will Message (§3.14.2.1)
                if self.will_delay_s:
                    self.broker.pending_wills[self.client_id] = self.will
                else:
                    self.broker._deliver(self.will)
            self._end(on_purpose=True)
        self.abort()

    def abort(self) -> None:
        if self.is_open:  # to the broker, the client vanished: it publishes the will
            self.broker.disconnects.append((self.client_id, None))
            if self.will is not None:
                self.broker._deliver(self.will)
            self._end(on_purpose=True)

    def _lose(self, detail: str) -> None:
        if self.is_open:
            self._lost_detail = detail
            self.broker.disconnects.append((self.client_id, None))
            self._end(on_purpose=False)
            if self.will is not None:
                self.broker._deliver(self.will)

    def _end(self, *, on_purpose: bool) -> None:
        self._on_purpose = on_purpose
        if not self._lost.done():
            self._lost.set_result(None)
        self._inbox.put_nowait(None)
        with contextlib.suppress(ValueError):
            self.broker.connections.remove(self)
        self.broker._changed_now()

    def _lost_failure(self) -> Exception:
        return self._failure("lost", self._lost_detail)


if TYPE_CHECKING:  # mypy checks that a FakeConnection is what MqttLink takes
    from sensord.mqtt.keepalive import Clock
    from sensord.mqtt.link import Transport

    def _is_a_transport(conn: FakeConnection) -> Transport:
        return conn
