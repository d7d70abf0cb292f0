"""A real mosquitto broker for integration tests, and a synchronous subscriber to watch it.

`Mosquitto` runs the distribution's `mosquitto` binary on a free loopback port in a temporary
directory it owns (config, log, password file, certificates, persistence database). Tests can
stop, kill, freeze and restart it on the same port to exercise reconnects. `Subscription` is a
paho-mqtt client in a background thread that records what arrives, so a test subscribes first,
runs the system under test, then waits for the messages it expects.

paho is imported inside functions: pytest imports `sensord.testing` at start-up as a plugin, and
that must work where paho is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

INSTALL_HINT = 'mosquitto not found: install it with "apt-get install -y mosquitto" (Debian/Raspberry Pi OS)'


class MosquittoNotFoundError(FileNotFoundError):
    """The `mosquitto` (or `mosquitto_passwd`, `openssl`) binary is not on PATH."""


class BrokerStartError(RuntimeError):
    """mosquitto exited or did not listen in time; the message ends with its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now.

    The kernel picks it; there is a small race until the caller binds it, which is fine for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _which(name: str) -> str:
    # Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH.
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/usr/local/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        if name == "openssl":
            raise MosquittoNotFoundError('openssl not found: install it with "apt-get install -y openssl"')
        raise MosquittoNotFoundError(INSTALL_HINT)
    return found


_RUNNING = re.compile(r"mosquitto version \S+ running")


class Pki(NamedTuple):
    """Paths of a throw-away PKI made by `make_test_pki()` (all PEM)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path
    """A second, unrelated CA: a client trusting only this one must reject the broker."""


_REQ_CNF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

# Python 3.13 verifies with VERIFY_X509_STRICT, which wants key usage and key identifiers too.
_SERVER_EXT = """basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_test_pki(directory: Path) -> Pki:
    """Create a CA, a server certificate for 127.0.0.1/::1/localhost and an unrelated CA.

    Uses the `openssl` CLI with EC P-256 keys (milliseconds, unlike RSA). Valid for ten years.
    """
    openssl = _which("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    def make_ca(name: str) -> None:
        (directory / f"{name}.cnf").write_text(_REQ_CNF.format(cn=f"sensord test {name}"))
        run("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3650",
            "-config", f"{name}.cnf", "-extensions", "v3_ca")

    make_ca("ca")
    make_ca("other-ca")
    (directory / "server.cnf").write_text(_REQ_CNF.format(cn="localhost"))
    (directory / "server.ext").write_text(_SERVER_EXT)
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-config", "server.cnf")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "3650", "-extfile", "server.ext")
    return Pki(directory / "ca.crt", directory / "server.crt", directory / "server.key",
               directory / "other-ca.crt")


class Mosquitto:
    """A mosquitto process on `127.0.0.1:port`, configured for one test.

    Anonymous clients are allowed unless `password=(user, password)` is given (then only that
    user may connect, unless `allow_anonymous=True` is passed too). `tls=True` serves MQTT over
    TLS with certificates from `pki` (made by `make_test_pki()` in the work dir if not given).
    `persistence=True` keeps retained messages and sessions across `restart()`. mosquitto saves
    after every change, just after its PUBACK: before a `kill()` that must keep a message, call
    `wait_persisted(payload)`. `extra_config` is appended to mosquitto.conf
    (do not change logging: start-up is detected from the log).
    The port stays the same for the object's life, so clients can reconnect after `restart()`.

    Keepalive: the broker accepts 1 s (only the mosquitto_sub/pub CLIs insist on 5), but before
    2.0.21 (bookworm ships 2.0.11) it checks for silent clients only every 5 s, so a last will
    comes 1.5 × keepalive plus up to about 6 s after the link went quiet.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        password: tuple[str, str] | None = None,
        allow_anonymous: bool | None = None,
        tls: bool = False,
        pki: Pki | None = None,
        persistence: bool = False,
        workdir: Path | None = None,
        extra_config: str = "",
        start_timeout_s: float = 5.0,
    ) -> None:
        self.binary = _which("mosquitto")
        self.host = "127.0.0.1"
        self._port_given = port is not None
        self.port = port if port is not None else free_port()
        self.password = password
        self.allow_anonymous = password is None if allow_anonymous is None else allow_anonymous
        self.tls = tls
        self.persistence = persistence
        self.extra_config = extra_config
        self.start_timeout_s = start_timeout_s
        self._owns_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="sensord-mosquitto-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "mosquitto.log"
        self.conf_path = self.workdir / "mosquitto.conf"
        if tls and pki is None:
            pki = make_test_pki(self.workdir / "pki")
        self.pki = pki
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False
        if password is not None:
            self._write_password_file(*password)

    @property
    def url(self) -> str:
        """`mqtt://127.0.0.1:PORT`, or `mqtts://` with TLS."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while running, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True from `start()` until the process exits or is stopped."""
        return self._proc is not None and self._proc.poll() is None

    def _write_password_file(self, user: str, password: str) -> None:
        # mosquitto_passwd ships in Debian's `mosquitto` package, so it is there whenever the broker is.
        subprocess.run(
            [_which("mosquitto_passwd"), "-b", "-c", str(self.workdir / "passwd"), user, password],
            check=True, capture_output=True,
        )

    def _config(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to user "mosquitto", who cannot write our temp dir.
            lines.append("user root")
        if self.password is not None:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        if self.tls:
            assert self.pki is not None
            lines += [f"cafile {self.pki.ca_cert}", f"certfile {self.pki.server_cert}",
                      f"keyfile {self.pki.server_key}"]
        if self.persistence:
            # Save after every change: tests kill -9 the broker and expect retained messages back.
            lines += ["persistence true", f"persistence_location {self.workdir}/",
                      "autosave_on_changes true", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        return "\n".join(lines) + "\n" + self.extra_config + "\n"

    def start(self) -> None:
        """Start mosquitto and return once it logs that it runs (its listener is open by then).

        Raises `BrokerStartError` with the end of mosquitto's log if it exits or does not listen
        within `start_timeout_s`. If the port picked by `free_port()` was taken meanwhile (another
        test run) on the first start, a new port is picked once.
        """
        if self.running:
            raise BrokerStartError(f"mosquitto already running on port {self.port} (pid {self.pid})")
        try:
            self._start_once()
        except BrokerStartError as exc:
            if self._port_given or "in use" not in str(exc):
                raise
            self.port = free_port()
            self._start_once()
        self._port_given = True  # from now on restarts must reuse this port

    def _start_once(self) -> None:
        self.conf_path.write_text(self._config())
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.workdir / "mosquitto.out", "ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._frozen = False
        # Wait for mosquitto's own "running" line rather than probing the port: a probe would
        # succeed against whatever else took the port, and would litter the log with a client.
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(f"mosquitto exited with code {self._proc.returncode}{self._tail()}")
            if _RUNNING.search(self._log_bytes()[log_start:].decode(errors="replace")):
                return
            time.sleep(0.005)
        self.kill()
        raise BrokerStartError(f"mosquitto did not start on port {self.port} within "
                               f"{self.start_timeout_s} s{self._tail()}")

    def wait_for_log(self, text: str, *, count: int = 1, timeout_s: float = 2.0) -> None:
        """Wait until `text` occurs `count` times in the log. Raises `TimeoutError`."""
        deadline = time.monotonic() + timeout_s
        while self.log_text().count(text) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged {count} times within {timeout_s} s{self._tail()}")
            time.sleep(0.005)

    def wait_persisted(self, needle: bytes, *, timeout_s: float = 2.0) -> None:
        """With `persistence=True`, wait until the saved database contains `needle` (a retained
        payload or topic), so a following `kill()` cannot lose it. Raises `TimeoutError`."""
        # mosquitto logs "Saving" before it writes mosquitto.db.new and renames it over the old
        # file; reading the file itself is the only race-free sign that the save completed.
        db = self.workdir / "mosquitto.db"
        deadline = time.monotonic() + timeout_s
        while not (db.exists() and needle in db.read_bytes()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not saved to {db} within {timeout_s} s{self._tail()}")
            time.sleep(0.005)

    def _tail(self, lines: int = 20) -> str:
        text = (self.workdir / "mosquitto.out").read_text(errors="replace") + self.log_text()
        return "; mosquitto said:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop with SIGTERM (mosquitto saves persistence and closes clients), SIGKILL if it hangs."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self.thaw()  # a stopped process would not handle SIGTERM
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash or power cut. The kernel still closes its sockets (clients see EOF)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._frozen = False

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the broker hangs. The kernel still accepts connections and buffers data."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        """SIGCONT after `freeze()`."""
        if self._frozen and self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
        self._frozen = False

    def log_text(self) -> str:
        """Everything mosquitto has logged so far (all log types, across restarts)."""
        return self._log_bytes().decode(errors="replace")

    def _log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        """Stop the broker and remove the work dir if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        try:
            self.start()
        except BaseException:
            self.close()  # the error message carries the log; do not leak the temp dir
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Mosquitto {self.url} pid={self.pid}>"


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


def paho_client(broker: Mosquitto, *, client_id: str = "", username: str | None = None,
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
        client.tls_set(ca_certs=str(ca_cert))
    return client


class Subscription:
    """A background subscriber recording messages on `topic_filter`.

    Use as a context manager: entering connects and waits for the SUBACK, so everything published
    afterwards is seen. `messages` grows from paho's thread; read it through `wait_for()`.
    `username`/`password` default to the broker's `password` option. If the broker restarts, the
    subscriber reconnects within 0.2 s and subscribes again (so retained messages come again).
    """

    def __init__(self, broker: Mosquitto, topic_filter: str, *, qos: int = 1, client_id: str = "",
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


def collect(broker: Mosquitto, topic_filter: str, *, count: int | None = None, timeout_s: float = 2.0,
            qos: int = 1, **kwargs: Any) -> list[Message]:
    """Subscribe and return what arrives: `count` messages (else `TimeoutError`), or, with
    `count=None`, everything within `timeout_s` (handy for retained messages)."""
    with Subscription(broker, topic_filter, qos=qos, timeout_s=timeout_s, **kwargs) as sub:
        if count is not None:
            return sub.wait_for_count(count)[:count]
        time.sleep(timeout_s)
        return list(sub.messages)


def connect(broker: Mosquitto, *, keepalive_s: int = 30, timeout_s: float = 5.0,
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


def publish(broker: Mosquitto, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
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
