"""The two MQTT library generations sensord runs on, behind one small `Connection` class.

Only `sensord.mqtt.link` uses this module. It imports `aiomqtt` 2.x (Debian trixie, PyPI) and falls
back to `asyncio_mqtt` 0.16 (Debian bookworm). What differs, read from both libraries' source:

- client id: `Client(identifier=)` in 2.x, `Client(client_id=)` in 0.16.
- connecting: 2.x only has `async with client` and takes `timeout=` in the constructor; 0.16 also
  has `connect(timeout=)` / `disconnect(timeout=)`.
- incoming messages: 2.x `client.messages` iterates a queue filled from connect on; 0.16
  `async with client.messages() as gen` keeps only messages arriving while entered, so it must be
  entered before SUBSCRIBE.
- CONNACK code in `MqttCodeError.rc`: 2.x a `ReasonCode`, with MQTT 3.1.1 codes mapped to MQTT 5
  values (4 becomes 0x86); 0.16 the raw int on 3.1.1, a `ReasonCodes` on MQTT 5, except that a
  3.1.1-style refusal (rc 1) of an MQTT 5 CONNECT arrives as the int 132 (0x84).
- reason code class: paho 2.x `ReasonCode` (`ReasonCodes` is a deprecated alias), paho 1.6
  `ReasonCodes`; same constructor `(packet_type, name, identifier=)`.
- paho 2.x needs `CallbackAPIVersion` (aiomqtt passes VERSION2), paho 1.6 has none; the callbacks'
  arguments differ, which is why the wrappers below take `*args`.
- in both, an `OSError` during connect becomes `MqttError(str(exc)) from None` (the type is lost),
  a broker closing the socket before CONNACK leaves the connect waiting for its timeout, and a
  PUBACK carrying a failure reason code (MQTT 5: 0x87 not authorized, 0x97 quota exceeded...)
  counts as success. paho 2.x passes that code to `on_publish`; paho 1.6 parses it and drops it,
  so for 1.6 this module reads it from the packet in `_handle_pubackcomp`.
- acknowledging a received QoS 1 message: both send PUBACK right after on_message, which only
  queues the message. paho 2 has `manual_ack_set(True)` and `ack(mid, qos)`; paho 1.6 has
  neither, so with `manual_ack` this module holds the PUBACK that 1.6's `_handle_publish`
  sends and sends it itself later (`_hold_pubacks`). Either way PUBACKs go out in the order
  the messages came, as MQTT requires (3.1.1 §4.6, 5.0 §4.6).

Both await PUBACK on a QoS 1 publish, take `will=Will(topic, payload, qos, retain, properties)` and
MQTT 5 `properties=`, and keep the paho client in `client._client` and the connection state in the
futures `client._connected` / `client._disconnected`, which this module relies on to fill the gaps.

Keepalive: both libraries start a task at the socket's opening that calls paho's `loop_misc()`
once a second (aiomqtt's `_misc_loop`), for paho's keepalive check alone: it sends PINGREQ when
no packet went out *or none came in* for the keepalive interval, and drops the connection when a
PINGRESP is a keepalive late. As paho never updates its time of the last packet out (see
`_wrap_keepalive`), that is a PINGREQ every keepalive however much is published. On an idle node that task is the
process's main reason to wake (60 times a minute). `Connection` stops it (its `loop_misc` reports
"not connected", which ends the library's loop at its first call) and offers `idle_s()` and
`ping()` instead: `sensord.mqtt.keepalive` sleeps until the keepalive is really due. Neither
paho version does anything else in `loop_misc` (read in 1.6.1 and 2.2: keepalive and ping timeout
only; QoS retries happen on reconnect, not on a timer). paho's own bound on the CONNACK wait
(the keepalive) went with it: `open()` has its own timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from paho.mqtt import client as paho_client
from paho.mqtt import reasoncodes
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["DISCONNECT_WITH_WILL", "LIBRARY", "PENDING_CALLS_WARN", "Connection", "Failure", "PacketTypes",
           "ReasonCode", "code_of", "lib", "properties"]

T = TypeVar("T")
FailureKind = Literal["os", "connack", "closed", "lost", "timeout", "no_connack", "suback", "puback", "library"]
# The paho message ids of the publishes made by the current `Connection.publish` call (a list
# per call, shared with the task the library publishes from, which inherits this context).
_PUBLISH_MIDS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("sensord_publish_mids",
                                                                               default=None)


def _library_version(lib: Any, dist: str) -> str:
    """The installed distribution's version: the module's `__version__`, unless it is missing or
    the "0.0.0" placeholder that Debian trixie's python3-asyncio-mqtt 2.3.1 leaves there (its
    dist-info says 2.3.1). Only then is importlib.metadata imported (0.7 MiB and some 20 ms)."""
    version = getattr(lib, "__version__", None)
    if isinstance(version, str) and version not in ("", "0.0.0"):
        return version
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return str(version or "unknown")


def _import_library() -> tuple[Any, str]:
    try:
        lib = importlib.import_module("aiomqtt")
    except ImportError:
        return importlib.import_module("asyncio_mqtt"), "asyncio_mqtt"
    version = _library_version(lib, "aiomqtt")
    if not version.startswith("2."):
        raise ImportError(f"sensord needs aiomqtt 2.x (or asyncio-mqtt 0.16), found aiomqtt {version}")
    return lib, "aiomqtt"


lib, LIBRARY = _import_library()
_GEN2 = LIBRARY == "aiomqtt"
ReasonCode: Any = getattr(reasoncodes, "ReasonCode", None) or reasoncodes.ReasonCodes
DISCONNECT_WITH_WILL = 0x04  # MQTT 5 §3.14.2.1: the server publishes the will, after its delay
# Both libraries log "There are N pending publish calls." at WARNING once more than 10 calls wait
# for their acknowledgement: on every publish of a page while the publisher replays a backlog
# (it keeps 20 batches in flight), ten lines per page. sensord bounds its own concurrency, so
# the warning is raised above that bound and keeps its meaning: something publishes without one.
PENDING_CALLS_WARN = 100


class Failure(Exception):
    """What went wrong, independent of the library; `sensord.mqtt.link` turns it into a BrokerError."""

    def __init__(self, kind: FailureKind, detail: str = "", *, code: int | None = None,
                 os_error: OSError | None = None) -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail
        self.code = code
        self.os_error = os_error


def code_of(rc: Any) -> int | None:
    """A paho reason code (`ReasonCode`, `ReasonCodes` or int) as an int."""
    if rc is None:
        return None
    return int(getattr(rc, "value", rc))


def properties(packet_type: int, **values: Any) -> Any:
    """MQTT 5 properties, e.g. `properties(PacketTypes.CONNECT, SessionExpiryInterval=60)`."""
    props = Properties(packet_type)  # type: ignore[no-untyped-call]  # paho ships no annotations here
    for name, value in values.items():
        setattr(props, name, value)
    return props


class Connection:
    """One library client: one network connection, opened once and then discarded."""

    def __init__(self, *, host: str, port: int, client_id: str, mqtt5: bool, keepalive_s: int,
                 username: str | None, password: str | None, tls: ssl.SSLContext | None,
                 will: tuple[str, bytes, int, bool, Any] | None, connect_properties: Any,
                 clean_start: bool, logger: logging.Logger, manual_ack: bool = False) -> None:
        # The library's own timeouts are a backstop: the awaits here use their own, shorter ones.
        kwargs: dict[str, Any] = {"identifier": client_id, "timeout": 3600} if _GEN2 else {"client_id": client_id}
        if mqtt5:  # paho refuses clean_start for 3.1.1, which has the clean session flag instead
            kwargs["clean_start"] = clean_start
        else:
            kwargs["clean_session"] = clean_start
        self._client = lib.Client(
            host, port, username=username, password=password, logger=logger, tls_context=tls,
            protocol=lib.ProtocolVersion.V5 if mqtt5 else lib.ProtocolVersion.V311,
            will=lib.Will(*will) if will else None, keepalive=keepalive_s,
            properties=connect_properties, **kwargs)
        self._paho: Any = self._client._client
        if _GEN2:
            self._client.pending_calls_threshold = PENDING_CALLS_WARN
        else:
            self._client._pending_calls_threshold = PENDING_CALLS_WARN
        self._keeps_session = not clean_start
        # paho acknowledges a QoS 1 message as soon as it is queued for the application; with
        # `manual_ack` `messages()` sends the PUBACK of a message only when the consumer asks for
        # the next one, i.e. after it has handled it (see `_hold_pubacks`).
        self._manual_ack = manual_ack
        self._send_puback: Callable[[int], Any] | None = None
        if manual_ack:
            self._hold_pubacks()
        self._opening = False
        self._transport_up = asyncio.Event()  # TCP (and TLS) connected, CONNECT on its way
        self._connect_error: OSError | None = None
        self._close_reason = ""
        self._closed_on_purpose = False
        self._abandoned = False
        self._messages: AsyncIterator[Any] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._refused: dict[int, int] = {}  # message id -> PUBACK failure reason code
        self._pingresp: asyncio.Future[None] | None = None
        self._sent_at = time.monotonic()  # the last write to the socket (CONNECT comes after this)
        self._wrap_paho()
        self._wrap_puback()
        self._wrap_keepalive()

    def _hold_pubacks(self) -> None:
        if _GEN2:
            self._paho.manual_ack_set(True)  # paho 2: `ack(mid, qos)` then sends it
            return
        # paho 1.6.1 has no manual acknowledgement. Its `_handle_publish` (client.py line 3329,
        # QoS 1) calls on_message, which only queues the message for `messages()`, then
        # `self._send_puback(message.mid)`, its only caller: hold that PUBACK here, and let
        # `messages()` send it with paho's own `_send_puback` once the message is handled.
        self._send_puback = self._paho._send_puback
        self._paho._send_puback = lambda mid: paho_client.MQTT_ERR_SUCCESS

    def _ack(self, mid: int, qos: int) -> None:
        if self._send_puback is not None:
            self._send_puback(mid)
        else:
            self._paho.ack(mid, qos)

    def _wrap_paho(self) -> None:
        # Both libraries turn a failed socket connect into `MqttError(str(exc)) from None`; keep the
        # original so a refused connection and a failed certificate check can be told apart.
        paho_connect = self._paho.connect
        loop = asyncio.get_running_loop()

        def connect(*args: Any, **kwargs: Any) -> Any:  # runs in an executor thread
            try:
                result = paho_connect(*args, **kwargs)
            except OSError as exc:
                self._connect_error = exc
                raise
            if self._abandoned:  # open() timed out meanwhile: leave no connection behind
                loop.call_soon_threadsafe(self._paho._sock_close)
            else:
                loop.call_soon_threadsafe(self._transport_up.set)
            return result

        self._paho.connect = connect
        # A broker that does not speak MQTT 5 may just close the socket after CONNECT; neither
        # library notices before its timeout, so end the wait on the close.
        on_disconnect = self._paho.on_disconnect

        def closed_early() -> None:
            connected = self._client._connected
            if self._opening and not connected.done():
                connected.set_exception(Failure("closed", "the broker closed the connection before CONNACK"))

        def wrapped(*args: Any) -> None:
            with contextlib.suppress(Exception):  # paho re-raises callback errors
                self._close_reason = _close_reason(args)
            on_disconnect(*args)
            loop.call_soon_threadsafe(closed_early)

        self._paho.on_disconnect = wrapped

    def _wrap_puback(self) -> None:
        paho_publish = self._paho.publish

        def publish(*args: Any, **kwargs: Any) -> Any:
            info = paho_publish(*args, **kwargs)
            mids = _PUBLISH_MIDS.get()
            if mids is not None:
                mids.append(info.mid)
            return info

        self._paho.publish = publish
        if _GEN2:  # on_publish(client, userdata, mid, reason_code, properties)
            on_publish = self._paho.on_publish

            def published(*args: Any) -> None:
                code = code_of(args[3])
                if code is not None and code >= 0x80:
                    self._refused[args[2]] = code
                on_publish(*args)

            self._paho.on_publish = published
            return
        handle = self._paho._handle_pubackcomp

        def pubackcomp(cmd: str) -> Any:
            # MQTT 5 PUBACK variable header (§3.4.2): packet id (2 bytes), then the reason code
            # when the remaining length is more than 2.
            packet = self._paho._in_packet["packet"]
            if self._paho._protocol == paho_client.MQTTv5 and len(packet) > 2 and packet[2] >= 0x80:
                self._refused[int.from_bytes(packet[:2], "big")] = packet[2]
            return handle(cmd)

        self._paho._handle_pubackcomp = pubackcomp

    def _wrap_keepalive(self) -> None:
        # The library's once-a-second task ends at its first call (see the module docstring).
        self._paho.loop_misc = lambda: paho_client.MQTT_ERR_NO_CONN
        # paho's `_last_msg_out` cannot say when a packet last went out: `_packet_write` returns
        # as soon as its queue is empty, before the line that stamps it, so it stays at the
        # connect time (read in paho 1.6.1 and 2.2) and paho pings every keepalive however busy the
        # link is. Stamp every write to the socket instead (the last write of a packet ends it).
        sock_send = self._paho._sock_send

        def sent(buf: Any) -> Any:
            written = sock_send(buf)
            if written:
                self._sent_at = time.monotonic()
            return written

        self._paho._sock_send = sent
        handle = self._paho._handle_pingresp

        def pingresp() -> Any:  # runs in the event loop: the library reads the socket there
            rc = handle()
            if self._pingresp is not None and not self._pingresp.done():
                self._pingresp.set_result(None)
            return rc

        self._paho._handle_pingresp = pingresp

    def idle_s(self) -> float:
        """Seconds since the last bytes were written to the broker."""
        return time.monotonic() - self._sent_at

    async def ping(self, timeout_s: float) -> None:
        """Send PINGREQ and wait for the PINGRESP: `Failure("timeout")` when none comes within
        `timeout_s`, `Failure("lost")` when the connection ends meanwhile."""
        if not self.is_open:
            raise self._lost_failure()
        answered = self._pingresp = asyncio.get_running_loop().create_future()
        try:
            if self._paho._send_pingreq() != paho_client.MQTT_ERR_SUCCESS:
                raise Failure("lost", "cannot send PINGREQ")
            await self._guard(answered, timeout_s)
        finally:
            self._pingresp = None
            if not answered.done():
                answered.cancel()

    @property
    def _lost(self) -> asyncio.Future[Any]:
        lost: asyncio.Future[Any] = self._client._disconnected
        return lost

    @property
    def is_open(self) -> bool:
        return not self._lost.done()

    async def open(self, timeout_s: float, *, connack_timeout: Callable[[float], float] | None = None) -> None:
        """Connect and wait for a positive CONNACK; raise `Failure` on any error.

        `timeout_s` bounds the whole connect. `connack_timeout`, if given, bounds the wait for
        CONNACK from the moment the TCP (and TLS) connection is up: it gets the seconds that took
        and returns how long to wait. `Failure("no_connack")` then means that a listener took the
        connection and the CONNECT, and said nothing."""
        self._opening = True
        if self._keeps_session and not _GEN2:
            # asyncio-mqtt 0.16 drops messages that arrive before `messages()` is entered, and a
            # resumed session's queued messages follow CONNACK at once (aiomqtt 2.x queues them).
            await self._message_source()
        self._paho._connect_timeout = timeout_s  # TCP connect; both paho versions default to 5 s
        try:
            enter = self._client.__aenter__() if _GEN2 else self._client.connect(timeout=3600)
            if connack_timeout is not None:
                enter = self._connack_within(enter, connack_timeout)
            await _within(enter, timeout_s)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, Failure | asyncio.CancelledError):
                raise
            if isinstance(exc, asyncio.TimeoutError):
                if connack_timeout is not None and self._transport_up.is_set():
                    raise Failure("no_connack", f"no CONNACK within {timeout_s:g} s") from None
                raise Failure("timeout", "no CONNACK") from None
            if self._connect_error is not None:
                raise Failure("os", os_error=self._connect_error) from None
            if isinstance(exc, lib.MqttCodeError):
                raise Failure("connack", str(exc), code=code_of(exc.rc)) from None
            if isinstance(exc, lib.MqttError):
                raise Failure("library", str(exc)) from None
            raise
        finally:
            self._opening = False

    async def _connack_within(self, enter: Awaitable[Any], connack_timeout: Callable[[float], float]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.ensure_future(enter)
        up = asyncio.ensure_future(self._transport_up.wait())
        try:
            await asyncio.wait({task, up}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                wait_s = connack_timeout(loop.time() - started)
                await asyncio.wait({task}, timeout=wait_s)
                if not task.done():
                    raise Failure("no_connack", f"no CONNACK within {wait_s:.3g} s of the connection")
            task.result()
        finally:
            up.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})  # let the library clean up its connect

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool, props: Any,
                      timeout_s: float) -> None:
        """Publish; for QoS 1 return once the broker's PUBACK arrived, and raise `Failure("puback")`
        when that PUBACK carries a failure reason code (MQTT 5 only: 3.1.1 has none)."""
        mids: list[int] = []
        token = _PUBLISH_MIDS.set(mids)
        try:
            await self._guard(self._client.publish(topic, payload, qos, retain, props, timeout=3600), timeout_s)
        finally:
            _PUBLISH_MIDS.reset(token)
            codes = [self._refused.pop(mid) for mid in mids if mid in self._refused]
        if codes:
            name = ReasonCode(PacketTypes.PUBACK, identifier=codes[0]).getName()
            raise Failure("puback", str(name).lower(), code=codes[0])

    async def subscribe(self, topics: list[tuple[str, int]], timeout_s: float) -> None:
        """Subscribe in one SUBSCRIBE packet; raise `Failure("suback")` for a refused topic."""
        await self._message_source()  # asyncio-mqtt 0.16 drops messages that arrive before this
        granted = await self._guard(self._client.subscribe(topics, timeout=3600), timeout_s)
        for (topic, _), rc in zip(topics, granted, strict=False):
            code = code_of(rc)
            if code is not None and code >= 0x80:  # MQTT 3.1.1 §3.9.3, MQTT 5 §3.9.3
                raise Failure("suback", topic, code=code)

    async def messages(self) -> AsyncIterator[tuple[str, bytes, bool]]:
        """(topic, payload, retain) of each message received; `Failure("lost")` when the connection ends."""
        source = await self._message_source()
        unacked: Any = None
        while True:
            if unacked is not None:  # the consumer is done with it: it asks for the next one
                self._ack(unacked.mid, unacked.qos)
                unacked = None
            try:
                message = await source.__anext__()
            except lib.MqttError:
                raise self._lost_failure() from None
            if self._manual_ack and message.qos > 0:
                unacked = message
            yield str(message.topic), bytes(message.payload or b""), bool(message.retain)

    async def _message_source(self) -> AsyncIterator[Any]:
        if self._messages is not None:
            return self._messages
        source: AsyncIterator[Any]
        if _GEN2:
            source = self._client.messages
        else:
            source = await self._stack.enter_async_context(self._client.messages())
        self._messages = source
        return source

    async def wait_closed(self) -> None:
        """Return once `close()` or `abort()` ended the connection; raise `Failure("lost")` if it was lost."""
        with contextlib.suppress(Exception):
            await asyncio.shield(self._lost)
        if not self._closed_on_purpose:
            raise self._lost_failure()

    async def close(self, timeout_s: float, reason_code: int | None = None) -> None:
        """Send DISCONNECT (MQTT 5: with `reason_code`) and wait until it is written."""
        if self.is_open:
            self._closed_on_purpose = True
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reason_code) if reason_code else None
            self._paho.disconnect(reasoncode=rc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._lost), timeout_s)
        self.abort()
        await self._stack.aclose()

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT: to the broker the client just vanished."""
        self._abandoned = True
        self._closed_on_purpose |= self.is_open
        self._paho._sock_close()
        lost = self._lost
        if not lost.done():
            lost.set_result(None)
        elif not lost.cancelled():
            lost.exception()  # mark a lost-connection error as seen: we report it ourselves

    def _lost_failure(self) -> Failure:
        exc = self._lost.exception() if self._lost.done() and not self._lost.cancelled() else None
        detail = self._close_reason or (str(exc) if exc else "")
        return Failure("lost", detail, os_error=exc if isinstance(exc, OSError) else None)

    async def _guard(self, call: Awaitable[T], timeout_s: float) -> T:
        """Await a library call, but give up at once when the connection is lost."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task, self._lost}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            try:
                return task.result()
            except lib.MqttError as exc:
                if not self.is_open:
                    raise self._lost_failure() from None
                raise Failure("library", str(exc), code=code_of(getattr(exc, "rc", None))) from None
        task.cancel()
        await asyncio.wait({task})  # let the library clean up its pending call
        if not task.cancelled() and task.exception() is None and self.is_open:
            return task.result()  # it finished just as the timeout expired
        if not self.is_open:
            raise self._lost_failure()
        raise Failure("timeout")


async def _within(call: Awaitable[T], timeout_s: float) -> T:
    """`asyncio.wait_for`, except that a cancellation is never lost: Python 3.11's wait_for
    returns the result instead of raising CancelledError when the call finishes just as the
    caller is cancelled, which left a stopping publisher connected and waiting forever."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task})  # had it finished meanwhile, the caller's abort() undoes it
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})
        if task.cancelled() or task.exception() is not None:
            raise TimeoutError
    return task.result()  # finished, or finished just as the time ran out


def _close_reason(args: tuple[Any, ...]) -> str:
    """Why paho's on_disconnect was called, from its arguments (which differ between paho 1.6 and 2)."""
    if _GEN2:  # (client, userdata, DisconnectFlags, ReasonCode, properties)
        rc, from_broker = args[3], args[2].is_disconnect_packet_from_server
    else:  # (client, userdata, rc[, properties]): an int for local errors, ReasonCodes from the broker
        rc = args[2]
        from_broker = not isinstance(rc, int)
    if from_broker:
        return f"the broker sent DISCONNECT: {rc.getName()} (code {code_of(rc):#04x})"
    if isinstance(rc, int):
        text = str(paho_client.error_string(rc)).rstrip(".")  # "The connection was lost."
        return text[:1].lower() + text[1:]
    name = str(rc.getName())
    # paho 2 reports a closed socket as "Unspecified error"
    return "the connection was closed" if name == "Unspecified error" else name
