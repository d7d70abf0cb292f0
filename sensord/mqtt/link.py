"""The link to the MQTT broker: connect, publish with acknowledgement, last will, subscribe.

This and `compat` are the only modules that touch the MQTT library (the package `sensord.mqtt`
is the only one in sensord that imports it); `compat` hides the
differences between aiomqtt 2.x (Debian trixie, PyPI) and asyncio-mqtt 0.16 (Debian bookworm).

    link = MqttLink(config=cfg.mqtt, client_id="attic", will=Will("sensord/attic/status", b"offline"))
    await link.connect()
    await link.publish("sensord/attic/data", batch, qos=1, content_type="application/json")
    await link.disconnect()

Every failure is a `sensord.errors.BrokerError` with a one-line message naming the broker; the
daemon retries all of them with `Backoff`, and logs those with `transient = False` (bad password,
untrusted certificate) at ERROR. Password-file and TLS-file problems are `ConfigError`s at start-up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
import stat
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from ..config import MqttConfig, TlsConfig
from ..errors import (
    BrokerAuthError,
    BrokerDisconnected,
    BrokerError,
    BrokerRefused,
    BrokerTimeout,
    BrokerTlsError,
    BrokerUnreachable,
    ConfigError,
)
from .backoff import Backoff, connect_timeout_s
from .compat import DISCONNECT_WITH_WILL, LIBRARY, Connection, Failure, PacketTypes, properties
from .keepalive import Clock, MonotonicClock, keep_alive

__all__ = ["LIBRARY", "Backoff", "ConnectionFactory", "connect_timeout_s", "MqttLink", "Received", "Transport", "Will",
           "make_tls_context", "read_password_file", "v5_probe_s"]

# The name it had as the module sensord.mqtt: log filters and tests look for it.
log = logging.getLogger("sensord.mqtt")

# CONNACK refusals: MQTT 3.1.1 §3.2.2.3 return codes (1-5) and MQTT 5 §3.2.2.2 reason codes (>= 0x80).
_CONNACK_TEXT = {
    1: "unacceptable protocol version", 0x84: "unsupported protocol version",
    2: "client identifier rejected", 0x85: "client identifier not valid",
    3: "server unavailable", 0x88: "server unavailable", 0x89: "server busy",
    4: "bad user name or password", 0x86: "bad user name or password",
    5: "not authorized", 0x87: "not authorized", 0x8A: "banned", 0x8C: "bad authentication method",
}
_BAD_CREDENTIALS = {4, 0x86}
_NOT_AUTHORIZED = {5, 0x87, 0x8A, 0x8C}
_NO_MQTT5 = {1, 0x84}
_BAD_CLIENT_ID = {2, 0x85}
_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}
_V5_PROBE_MIN_S = 5.0
_V5_PROBE_FACTOR = 4.0


class Transport(Protocol):
    """What `MqttLink` needs of one network connection: `compat.Connection` for a real broker,
    `sensord.testing.fake_mqtt.FakeConnection` in tests. Every method raises `compat.Failure`."""

    @property
    def is_open(self) -> bool: ...

    async def open(self, timeout_s: float, *, connack_timeout: Callable[[float], float] | None = None) -> None: ...

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool, props: Any,
                      timeout_s: float) -> None: ...

    async def subscribe(self, topics: list[tuple[str, int]], timeout_s: float) -> None: ...

    def messages(self) -> AsyncIterator[tuple[str, bytes, bool]]: ...

    async def wait_closed(self) -> None: ...

    def idle_s(self) -> float: ...

    async def ping(self, timeout_s: float) -> None: ...

    async def close(self, timeout_s: float, reason_code: int | None = None) -> None: ...

    def abort(self) -> None: ...


#: Makes a `Transport` from the keyword arguments of `compat.Connection`'s constructor.
ConnectionFactory = Callable[..., Transport]


def v5_probe_s(setup_s: float) -> float:
    """How long to wait for the first CONNACK to an MQTT 5 CONNECT, counted from the moment the
    TCP (and TLS) connection is up, which took `setup_s`: at least 5 s, or 4 x `setup_s` on a link
    slow enough to need more. A broker that answers at all answers within a round trip or two
    (plus its password check), and the TCP and TLS handshakes took one to three round trips, so
    this scales with a slow satellite link rather than cutting it off."""
    return max(_V5_PROBE_MIN_S, _V5_PROBE_FACTOR * setup_s)


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published by the broker when this client goes away without saying goodbye.

    `delay_s` (MQTT 5 only) is the Will Delay Interval (§3.1.3.2.2): the broker waits that long
    after the connection closes and drops the will if the same client id reconnects meanwhile."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True
    delay_s: int | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """A message received on a subscription."""

    topic: str
    payload: bytes
    retain: bool


def read_password_file(path: str) -> str:
    """The password in `path`, without one trailing newline.

    Refuses a file that group or others may access: the password must not leak to other users."""
    try:
        with open(path, "rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            if mode & 0o077:
                verb = "read" if mode & 0o044 else "change" if mode & 0o022 else "reach"
                raise ConfigError(f"{path}: mode {mode:04o} lets other users {verb} the password; chmod 600 it")
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: password file (mqtt.password_file) not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the password file: permission denied "
                          f"(it must belong to the user sensord runs as)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a password file, found a directory") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: password file is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        raise ConfigError(f"{path}: password file is empty")
    return text


def make_tls_context(tls: TlsConfig, logger: logging.Logger = log) -> ssl.SSLContext:
    """An SSLContext trusting `ca_file` (else the system CAs), with the client certificate if set.

    `insecure` turns off certificate and host name checks, and says so with one warning."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.tls.ca_file: cannot load CA certificates from {tls.ca_file}: "
                          f"{_reason(exc)}") from None
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.tls.cert_file: cannot load client certificate {tls.cert_file} with key "
                              f"{tls.key_file}: {_reason(exc)}") from None
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        logger.warning("mqtt.tls.insecure is set: the broker's certificate and host name are not checked, "
                       "so anyone on the network path can impersonate it")
    return context


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


class MqttLink:
    """One client of one broker: connect, publish, subscribe, disconnect, and connect again.

    Protocol: with `protocol = "5"` a broker that refuses MQTT 5 (CONNACK "unacceptable protocol
    version", closing the connection right after CONNECT, or no CONNACK at all within
    `v5_probe_s()` of the TCP/TLS connection, as amqtt does with a will in the CONNECT) is retried
    at once with MQTT 3.1.1. If that is accepted, 3.1.1 is used for the life of this object
    (MQTT 5 is not probed again: each probe of such a broker costs the probe timeout);
    `protocol` tells which one is in use. If 3.1.1 gets no answer either, the broker is just
    silent and the next `connect()` probes MQTT 5 again. Once a broker has accepted MQTT 5, a
    later silence is only a timeout, never a reason to fall back.

    Will and duty-cycle mode: `disconnect(send_will=True)` makes the broker publish the will. Under
    MQTT 5 that is DISCONNECT with reason code 0x04 (§3.14.2.1); with `will.delay_s` set, the will
    carries the Will Delay Interval (§3.1.3.2.2) and CONNECT a Session Expiry Interval (§3.1.2.11.2)
    of at least that long, because the broker publishes the will when the session ends, whichever
    comes first. A reconnect with the same client id within the delay then cancels the will: the node
    sleeps between wake-ups and only goes "offline" if it fails to come back in time. Such
    connections use Clean Start = 0 (§3.1.2.4): a clean start ends the old session, and with it the
    delay (§3.1.3.2.2); mosquitto 2.0 drops the will anyway, other brokers publish it.

    MQTT 3.1.1 has no will delay and no reason code: `send_will=True` there drops the TCP
    connection without DISCONNECT, so the will is published immediately (3.1.1 §3.1.2.5). In
    duty-cycle mode on 3.1.1 the daemon therefore disconnects normally, and the status stays
    "online" between wake-ups, with no automatic "offline" if the node dies.
    """

    def __init__(self, *, config: MqttConfig, client_id: str, will: Will | None = None,
                 session_expiry_s: int | None = None, keep_session: bool = False, timeout_s: float = 30.0,
                 logger: logging.Logger | None = None, connection_factory: ConnectionFactory = Connection,
                 clock: Clock | None = None, ack_when_handled: bool = False) -> None:
        """`client_id` should stay the same across restarts (the session and the will delay hang on
        it). `session_expiry_s` (MQTT 5) keeps the session on the broker that long after a
        disconnect; it is raised to `will.delay_s` when that is longer. `keep_session` asks for a
        persistent session under MQTT 3.1.1 too (clean session 0; the broker's own expiry applies),
        and connects with clean start 0 under MQTT 5 even without an expiry. `timeout_s` is the default
        for every wait on the broker. Reads the password file and the TLS files now, so their
        ConfigErrors come at start-up. `connection_factory` makes each network connection: the
        MQTT library's by default, an in-memory one in tests (`sensord.testing.fake_mqtt`).

        Keepalive (`sensord.mqtt.keepalive`): PINGREQ only when nothing went out for
        `keepalive_s`; no PINGRESP within `timeout_s` drops the connection, which `wait_closed()`
        then reports. `clock` times it (a `FakeClock` in tests).

        `ack_when_handled`: a QoS 1 message from `messages()` is acknowledged (PUBACK) only when
        the consumer asks for the next one, so a consumer that dies while handling it gets it again
        from its persistent session. On both library generations (paho 2's manual acknowledgement;
        on paho 1.6 `sensord.mqtt.compat` holds back the PUBACK that paho sends on receipt)."""
        self._config = config
        self._client_id = client_id
        self._will = will
        self._session_expiry_s = max(session_expiry_s or 0, (will.delay_s or 0) if will else 0)
        self._keep_session = keep_session
        self._timeout_s = timeout_s
        self._log = logger or log
        self._where = f"MQTT broker {config.host}:{config.port}"
        self._password = (read_password_file(config.password_file)
                          if config.password_file is not None else None)
        self._tls = make_tls_context(config.tls, self._log) if config.tls is not None else None
        self._mqtt5 = config.protocol == "5"
        self._mqtt5_confirmed = False  # a CONNACK to MQTT 5 came from this broker
        self._connection_factory = connection_factory
        self._conn: Transport | None = None
        self._clock: Clock = clock or MonotonicClock()
        self._factory_extra: dict[str, Any] = {"manual_ack": True} if ack_when_handled else {}
        self._keeper: asyncio.Task[None] | None = None
        self._expired: tuple[Transport, str] | None = None  # a connection the keepalive gave up on, and why

    @property
    def protocol(self) -> Literal["5", "3.1.1"]:
        """The MQTT version in use (or to be tried first, before the first connect)."""
        return "5" if self._mqtt5 else "3.1.1"

    @property
    def connected(self) -> bool:
        """True between a successful `connect()` and `disconnect()` or the loss of the connection."""
        return self._conn is not None and self._conn.is_open

    async def connect(self, *, timeout_s: float | None = None) -> None:
        """Connect, waiting at most `timeout_s` for the broker to accept; raise a BrokerError.

        While MQTT 5 is not yet confirmed by this broker, the first CONNACK is awaited only
        `v5_probe_s()` after the TCP (and TLS) connection is up; see the class docstring."""
        if self._conn is not None:
            await self.disconnect()
        timeout = timeout_s or self._timeout_s
        probing = self._mqtt5 and not self._mqtt5_confirmed
        try:
            self._conn = await self._open(self._mqtt5, timeout, probe=probing)
        except Failure as failure:
            silent = failure.kind == "no_connack"
            # An explicit refusal is unambiguous (a broker replaced by an older one); silence or a
            # close is only taken as "no MQTT 5" from a broker that never accepted it.
            if not (self._mqtt5 and (failure.code in _NO_MQTT5 or (probing and (silent or failure.kind == "closed")))):
                raise self._error(failure, "connect", timeout) from None
            try:
                self._conn = await self._open(False, timeout)
            except Failure as again:
                # A listener that answers neither version is just silent (or frozen): try MQTT 5 again next time.
                raise self._error(again, "connect", timeout) from None
            self._mqtt5 = False
            if silent:
                self._log.warning("%s did not answer an MQTT 5 CONNECT (%s) but accepted MQTT 3.1.1; using "
                                  "MQTT 3.1.1 from now on, without will delay and content type (set "
                                  "mqtt.protocol = \"3.1.1\" to skip the probe)", self._where, failure.detail)
            else:
                self._log.warning("%s refused MQTT 5 (%s); using MQTT 3.1.1 from now on, without will delay "
                                  "and content type", self._where, failure.detail or failure.kind)
        if self._mqtt5:
            self._mqtt5_confirmed = True
        self._keeper = asyncio.create_task(self._keep_alive(self._conn), name="mqtt keepalive")
        self._log.debug("connected to %s as %r (MQTT %s)", self._where, self._client_id, self.protocol)

    async def _keep_alive(self, conn: Transport) -> None:
        try:
            reason = await keep_alive(conn, keepalive_s=self._config.keepalive_s, answer_s=self._timeout_s,
                                      clock=self._clock)
        except Failure:
            return  # lost otherwise: wait_closed() says why
        self._log.debug("%s: %s; dropping the connection", self._where, reason)
        self._expired = (conn, reason)
        conn.abort()

    async def _open(self, mqtt5: bool, timeout_s: float, *, probe: bool = False) -> Transport:
        will = self._will
        session = mqtt5 and self._session_expiry_s > 0
        will_props = (properties(PacketTypes.WILLMESSAGE, WillDelayInterval=will.delay_s)
                      if mqtt5 and will and will.delay_s else None)
        conn = self._connection_factory(
            host=self._config.host, port=self._config.port, client_id=self._client_id, mqtt5=mqtt5,
            keepalive_s=self._config.keepalive_s, username=self._config.username, password=self._password,
            tls=self._tls, will=(will.topic, will.payload, will.qos, will.retain, will_props) if will else None,
            connect_properties=(properties(PacketTypes.CONNECT, SessionExpiryInterval=self._session_expiry_s)
                                if session else None),
            clean_start=not (session or self._keep_session), logger=self._log.getChild("client"),
            **self._factory_extra)
        await conn.open(timeout_s, connack_timeout=(lambda setup_s: min(timeout_s, v5_probe_s(setup_s)))
                        if probe else None)
        return conn

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False,
                      content_type: str | None = None, timeout_s: float | None = None) -> None:
        """Publish and, for QoS 1, return only once the broker acknowledged it (PUBACK).

        Raises BrokerTimeout after `timeout_s` without PUBACK, BrokerDisconnected when the
        connection drops meanwhile, and BrokerRefused when the PUBACK carries an MQTT 5 failure
        reason code; the caller then keeps the data to send again. `content_type`
        becomes the MQTT 5 Content Type property (§3.3.2.3.9); MQTT 3.1.1 has none."""
        conn = self._require("publish")
        props = properties(PacketTypes.PUBLISH, ContentType=content_type) if content_type and self._mqtt5 else None
        timeout = timeout_s or self._timeout_s
        try:
            await conn.publish(topic, payload, qos=qos, retain=retain, props=props, timeout_s=timeout)
        except Failure as failure:
            raise self._error(failure, f"publish to {topic}", timeout) from None

    async def subscribe(self, topics: str | Iterable[str], *, qos: int = 1, timeout_s: float | None = None) -> None:
        """Subscribe to topic filters; their messages come from `messages()`."""
        conn = self._require("subscribe")
        filters = [topics] if isinstance(topics, str) else list(topics)
        timeout = timeout_s or self._timeout_s
        try:
            await conn.subscribe([(f, qos) for f in filters], timeout)
        except Failure as failure:
            raise self._error(failure, f"subscribe to {', '.join(filters)}", timeout) from None

    async def messages(self) -> AsyncIterator[Received]:
        """Messages received on the subscriptions, until `disconnect()` (the iteration ends) or the
        loss of the connection (BrokerDisconnected)."""
        conn = self._require("receive")
        try:
            async for topic, payload, retain in conn.messages():
                yield Received(topic, payload, retain)
        except Failure as failure:
            if self._conn is not conn:  # disconnect() ended it on purpose
                return
            raise self._error(failure, "receive", 0) from None

    async def wait_closed(self) -> None:
        """Wait while connected: return after `disconnect()`, raise BrokerDisconnected (with the
        reason) when the connection is lost, e.g. the broker went away or keepalive expired."""
        conn = self._conn
        if conn is None:
            raise BrokerDisconnected(f"{self._where}: not connected")
        try:
            await conn.wait_closed()
        except Failure as failure:
            if self._conn is conn:
                raise self._error(failure, "", 0) from None
        if self._expired is not None and self._expired[0] is conn and self._conn is conn:
            raise self._error(Failure("lost", self._expired[1]), "", 0)

    async def disconnect(self, *, send_will: bool = False, timeout_s: float | None = None) -> None:
        """Close the connection; without `send_will` the broker discards the will (MQTT 5 §3.14.4).

        With `send_will=True` the broker publishes the will: after `will.delay_s` under MQTT 5,
        at once under 3.1.1 (see the class docstring). Never raises; a no-op when not connected."""
        conn, self._conn = self._conn, None
        self._stop_keepalive()
        if conn is None:
            return
        if send_will and not self._mqtt5:
            conn.abort()
        await conn.close(timeout_s or self._timeout_s, DISCONNECT_WITH_WILL if send_will else None)
        self._log.debug("disconnected from %s%s", self._where, " with will" if send_will else "")

    def _stop_keepalive(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        self._expired = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.disconnect()

    def _require(self, action: str) -> Transport:
        if self._conn is None or not self._conn.is_open:
            raise BrokerDisconnected(f"{self._where}: cannot {action}: not connected")
        return self._conn

    def _error(self, failure: Failure, action: str, timeout_s: float) -> BrokerError:
        """A one-line BrokerError for people, from what the library reported."""
        where, code = self._where, failure.code
        if failure.kind == "os" and failure.os_error is not None:
            return self._os_error(failure.os_error)
        if failure.kind == "connack" and code is not None:
            text = f"{where} refused the connection: {_CONNACK_TEXT.get(code, failure.detail)} (code {code:#04x})"
            user, pw_file = self._config.username, self._config.password_file
            if code in _BAD_CREDENTIALS | _NOT_AUTHORIZED and user is None:
                return BrokerAuthError(f"{text}; set mqtt.username and mqtt.password_file")
            if code in _BAD_CREDENTIALS | _NOT_AUTHORIZED:
                # mosquitto answers a wrong password with "not authorized" too
                secret = f"the password in {pw_file}" if pw_file else "that no mqtt.password_file is set"
                rights = "" if code in _BAD_CREDENTIALS else ", and the user's rights on the broker"
                return BrokerAuthError(f"{text}; check mqtt.username ({user!r}), {secret}{rights}")
            error = BrokerError(text if code not in _BAD_CLIENT_ID else f"{text}; set mqtt.client_id to one "
                                f"the broker accepts (now {self._client_id!r})")
            error.transient = code not in _BAD_CLIENT_ID  # only a config change helps
            return error
        if failure.kind == "closed":
            return BrokerUnreachable(f"{where} closed the connection before accepting it; is that port an "
                                     f"MQTT listener{' without TLS' if self._tls is None else ' with TLS'}?")
        if failure.kind == "no_connack":
            return BrokerTimeout(f"{where}: {action}: {failure.detail}; is that port an MQTT listener?")
        if failure.kind == "timeout":
            return BrokerTimeout(f"{where}: {action}: no answer within {timeout_s:g} s")
        if failure.kind == "lost":
            detail = f": {failure.detail}" if failure.detail else ""
            return BrokerDisconnected(f"{where}: connection lost{f' during {action}' if action else ''}{detail}")
        if failure.kind == "puback" and code is not None:
            hint = "; check this client's rights (ACL) for that topic on the broker" if code == 0x87 else ""
            return BrokerRefused(f"{where} refused {action}: {failure.detail} (code {code:#04x}){hint}", code=code)
        if failure.kind == "suback":
            reason = "not authorized" if code in (0x80, 0x87) else f"code {code:#04x}"
            return BrokerAuthError(f"{where} refused subscription to {failure.detail}: {reason}")
        return BrokerError(f"{where}: {action} failed: {failure.detail}")

    def _os_error(self, exc: OSError) -> BrokerError:
        where, tls = self._where, self._config.tls
        if isinstance(exc, ssl.SSLCertVerificationError):
            hint = (f"is mqtt.tls.ca_file ({tls.ca_file}) the CA that signed the broker's certificate, "
                    f"for host {self._config.host}?" if tls and tls.ca_file else
                    "the system CAs do not trust it: set mqtt.tls.ca_file to the CA that signed it")
            return BrokerTlsError(f"{where}: TLS certificate verify failed ({exc.verify_message}); {hint}")
        if isinstance(exc, ssl.SSLError):
            return BrokerTlsError(f"{where}: TLS handshake failed ({_reason(exc)}); is that port a TLS "
                                  f"listener, and does it require a client certificate (mqtt.tls.cert_file)?")
        if isinstance(exc, ConnectionRefusedError):
            return BrokerUnreachable(f"{where}: connection refused: no broker listening there")
        if isinstance(exc, socket.gaierror):
            return BrokerUnreachable(f"{where}: cannot resolve host name {self._config.host!r} ({exc.strerror})")
        if isinstance(exc, TimeoutError):
            return BrokerTimeout(f"{where}: connect: no answer (TCP or TLS handshake timed out)")
        error = BrokerUnreachable(f"{where}: cannot connect: {_reason(exc)}")
        error.no_route = exc.errno in _NO_ROUTE
        return error
