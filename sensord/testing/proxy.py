"""A loopback TCP proxy that can go silent, to test MQTT keepalive, last will and reconnects.

Put `TcpProxy` between the client under test and the broker. `blackhole()` makes every link
silent without closing anything, as a pulled cable or a crashed NAT box would: nothing crosses
in either direction, so the client's PINGREQ gets no PINGRESP and the broker hears nothing from
the client and publishes its last will after 1.5 × keepalive. `drop_all()` resets every
connection at once, as a restarted router would.

Blackholed data is read and thrown away rather than left unread: the kernel under the proxy
acknowledges it either way, and reading it lets a test see (`discarded_bytes`) that the client
kept sending, for example its pings. A side that closes while blackholed is closed on that side
only; the other end never learns, as with a real dead link.

`restore()` forwards new connections again. Links that were blackholed are not resumed: the
bytes thrown away have torn the MQTT packet stream, and a real link coming back after its NAT
state was lost would not resume them either. Their client side is reset (the client's next send
would meet an RST), their broker side stays silent until the broker gives up on its keepalive,
so the broker notices the loss on its own schedule as it would in the field.

`SilentBroker` is such a proxy blackholed from the start: a listener that never answers CONNECT.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from sensord.testing.broker import free_port

_CHUNK = 65536
_MAX_PENDING = 1 << 20  # stop reading a side while its peer has this much unsent


def _reset(sock: socket.socket | None) -> None:
    """Close with SO_LINGER 0 so the peer gets an RST, not a FIN."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass(eq=False)
class _Link:
    client: socket.socket | None
    upstream: socket.socket | None
    blackholed: bool
    # Bytes waiting to be written to each side, keyed by "client" / "upstream".
    pending: dict[str, bytearray] = field(
        default_factory=lambda: {"client": bytearray(), "upstream": bytearray()}
    )

    def sock(self, side: str) -> socket.socket | None:
        return self.client if side == "client" else self.upstream


def _other(side: str) -> str:
    return "upstream" if side == "client" else "client"


class TcpProxy:
    """Forwards `127.0.0.1:listen_port` to `(target_host, target_port)` from a background thread.

    Counters (read them from any thread): `bytes_up` client→target and `bytes_down`
    target→client forwarded, `discarded_bytes` swallowed while blackholed, `connections` accepted.
    A connection the target refuses is reset on the client side. Mode changes return once the
    proxy thread has applied them, so no byte crosses after `blackhole()` returns.
    """

    def __init__(self, target_host: str, target_port: int, *, listen_port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.listen_port = listen_port if listen_port is not None else free_port()
        self.bytes_up = 0
        self.bytes_down = 0
        self.discarded_bytes = 0
        self.connections = 0
        self._blackholed = False
        self._links: set[_Link] = set()
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._calls: list[tuple[Callable[[], None], threading.Event]] = []
        self._calls_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    @property
    def host(self) -> str:
        """The address clients connect to."""
        return "127.0.0.1"

    @property
    def blackholed(self) -> bool:
        """True between `blackhole()` and `restore()`."""
        return self._blackholed

    @property
    def active_connections(self) -> int:
        """Links with at least one side still open."""
        return len(self._links)

    def start(self) -> TcpProxy:
        """Listen and start the proxy thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A test may restart a proxy on the same port while old connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.listen_port))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._wake_r.setblocking(False)
        self._sel.register(listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=f"TcpProxy:{self.listen_port}", daemon=True)
        self._thread.start()
        return self

    def _call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the proxy thread and wait for it, so sockets are touched by one thread only."""
        if self._crash is not None:
            raise RuntimeError(f"{self!r}: proxy thread crashed") from self._crash
        if self._thread is None or not self._thread.is_alive():
            fn()
            return
        done = threading.Event()
        with self._calls_lock:
            self._calls.append((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(5.0):
            raise TimeoutError("proxy thread did not respond within 5 s")

    def blackhole(self) -> None:
        """Stop all traffic in both directions, silently; new connections are accepted but go nowhere."""

        def apply() -> None:
            self._blackholed = True
            for link in self._links:
                link.blackholed = True
                for buf in link.pending.values():
                    buf.clear()  # in flight when the link died: lost
                self._update(link)

        self._call(apply)

    def restore(self) -> None:
        """Forward new connections again; reset the client side of blackholed ones (see module doc)."""

        def apply() -> None:
            self._blackholed = False
            for link in list(self._links):
                if link.blackholed:
                    self._close_side(link, "client", reset=True)

        self._call(apply)

    def drop_all(self) -> None:
        """Reset every connection, both sides, at once."""

        def apply() -> None:
            for link in list(self._links):
                self._close_side(link, "client", reset=True)
                self._close_side(link, "upstream", reset=True)

        self._call(apply)

    def stop(self) -> None:
        """Reset all connections, stop listening and end the thread."""
        if self._thread is not None and self._thread.is_alive() and self._crash is None:

            def halt() -> None:
                self._stopping = True

            self._call(halt)
            self._thread.join(5.0)
        # The thread has ended, so its sockets are ours to reset.
        for link in self._links:
            _reset(link.client)
            _reset(link.upstream)
        self._links.clear()
        crash, self._crash = self._crash, None
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._sel.close()
        self._thread = None
        if crash is not None:
            raise RuntimeError(f"{self!r}: proxy thread crashed") from crash

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = "blackholed" if self._blackholed else "forwarding"
        return f"<TcpProxy {self.host}:{self.listen_port} -> {self.target[0]}:{self.target[1]} {mode}>"

    # --- proxy thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the next mode change or stop(), not lost
            self._crash = exc
            raise

    def _loop(self) -> None:
        while not self._stopping:
            for key, events in self._sel.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._run_calls()
                else:
                    link, side = key.data
                    if events & selectors.EVENT_WRITE:
                        self._flush(link, side)
                    if events & selectors.EVENT_READ and link.sock(side) is not None:
                        self._read(link, side)

    def _run_calls(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, done in calls:
            try:
                fn()
            finally:
                done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.connections += 1
        upstream = None
        if not self._blackholed:
            try:
                # Blocking connect is fine: the target is on loopback, it answers or refuses at once.
                upstream = socket.create_connection(self.target, timeout=2.0)
            except OSError:
                _reset(client)
                return
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream, blackholed=self._blackholed)
        self._links.add(link)
        for side in ("client", "upstream"):
            sock = link.sock(side)
            if sock is not None:
                self._sel.register(sock, selectors.EVENT_READ, (link, side))

    def _read(self, link: _Link, side: str) -> None:
        sock = link.sock(side)
        assert sock is not None
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._lost(link, side, reset=True)
            return
        if not data:
            self._lost(link, side, reset=False)
            return
        if link.blackholed:
            self.discarded_bytes += len(data)
            return
        if side == "client":
            self.bytes_up += len(data)
        else:
            self.bytes_down += len(data)
        link.pending[_other(side)] += data
        self._flush(link, _other(side))

    def _flush(self, link: _Link, side: str) -> None:
        sock, buf = link.sock(side), link.pending[side]
        if sock is not None and buf:
            try:
                sent = sock.send(buf)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._lost(link, side, reset=True)
                return
            del buf[:sent]
        self._update(link)

    def _lost(self, link: _Link, side: str, *, reset: bool) -> None:
        """`side` closed (EOF) or failed (reset). Forwarding passes that on; a blackhole hides it."""
        self._close_side(link, side, reset=reset)
        if not link.blackholed:
            other = _other(side)
            if not reset:
                self._flush(link, other)  # deliver what the closing side sent last
            self._close_side(link, other, reset=reset)

    def _close_side(self, link: _Link, side: str, *, reset: bool) -> None:
        sock = link.sock(side)
        if sock is not None:
            if self._registered(sock):
                self._sel.unregister(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()
            if side == "client":
                link.client = None
            else:
                link.upstream = None
        link.pending[side].clear()
        if link.client is None and link.upstream is None:
            self._links.discard(link)

    def _update(self, link: _Link) -> None:
        """Register each open side for what it needs: write while data waits, read unless backlogged."""
        for side in ("client", "upstream"):
            sock = link.sock(side)
            if sock is None:
                continue
            events = 0
            if link.blackholed or len(link.pending[_other(side)]) < _MAX_PENDING:
                events |= selectors.EVENT_READ
            if link.pending[side]:
                events |= selectors.EVENT_WRITE
            # selectors refuses an empty mask: a backlogged side with nothing to write is unregistered
            # until its peer drains (each flush calls _update again).
            if not events:
                if self._registered(sock):
                    self._sel.unregister(sock)
            elif self._registered(sock):
                self._sel.modify(sock, events, (link, side))
            else:
                self._sel.register(sock, events, (link, side))

    def _registered(self, sock: socket.socket) -> bool:
        try:
            self._sel.get_key(sock)
        except KeyError:
            return False
        return True


class SilentBroker(TcpProxy):
    """A listener that accepts connections and reads what clients send, but never answers: a
    broker that hangs after accept, a half-dead NAT box, or a port that is not MQTT at all. A
    client's CONNECT gets no CONNACK, ever; when the client closes, the connection just ends.

    `connections` counts the TCP connections accepted (each connect attempt makes one, an MQTT 5
    probe that falls back to 3.1.1 two) and `accepted_at` holds their `time.monotonic()` times,
    to check a client's backoff. `answer()` forwards connections made from then on to `target`
    (a real broker), so a test can check that the client delivers once something answers;
    connections made before stay silent until the client gives up on them.
    """

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 1, *,
                 listen_port: int | None = None) -> None:
        super().__init__(target_host, target_port, listen_port=listen_port)
        self._blackholed = True
        self.accepted_at: list[float] = []

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self.listen_port

    def answer(self) -> None:
        """From now on, forward new connections to the target broker."""

        def apply() -> None:
            self._blackholed = False

        self._call(apply)

    def _accept(self) -> None:
        before = self.connections
        super()._accept()
        if self.connections > before:
            self.accepted_at.append(time.monotonic())

    def __enter__(self) -> SilentBroker:
        self.start()
        return self
