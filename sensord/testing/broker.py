"""A real mosquitto broker for integration tests.

`Mosquitto` runs the distribution's `mosquitto` binary on a free loopback port in a temporary
directory it owns (config, log, password file, certificates, persistence database). Tests can
stop, kill, freeze and restart it on the same port to exercise reconnects. `make_test_pki()`
makes the certificates for a TLS listener.

The paho clients that watch and drive a broker (`Subscription`, `Message`, `collect`, `connect`,
`paho_client`, `publish`) live in `sensord.testing.mqtt_client` and are re-exported here, so
`from sensord.testing.broker import Mosquitto, Subscription` keeps working.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from .mqtt_client import Message, Subscription, collect, connect, paho_client, publish

__all__ = [
    "INSTALL_HINT",
    "BrokerStartError",
    "Message",
    "Mosquitto",
    "MosquittoNotFoundError",
    "Pki",
    "Subscription",
    "collect",
    "connect",
    "free_port",
    "make_test_pki",
    "paho_client",
    "publish",
]

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
