"""TcpProxy: forwarding, a silent blackhole, restore, resets; and what an MQTT client sees."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sensord.testing.broker import Mosquitto, connect, free_port
from sensord.testing.proxy import TcpProxy

pytestmark = pytest.mark.broker


class EchoServer:
    """Echoes each connection on loopback and records what it saw, including EOFs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.eofs = 0
        self.resets = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except ConnectionResetError:
                    self.resets += 1
                    return
                if not data:
                    self.eofs += 1
                    return
                self.received += data
                conn.sendall(data)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.sock.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo.port) as p:
        yield p


def _client(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.listen_port), timeout=1.0)


def _wait(predicate: Callable[[], bool], timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_forwards_both_ways_and_counts(proxy: TcpProxy, echo: EchoServer) -> None:
    with _client(proxy) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"
    assert (proxy.bytes_up, proxy.bytes_down, proxy.connections) == (4, 4, 1)
    _wait(lambda: echo.eofs == 1)  # a client's close reaches the target
    _wait(lambda: proxy.active_connections == 0)


def test_forwards_bulk_data(proxy: TcpProxy) -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB: more than the proxy buffers per direction
    with _client(proxy) as sock:
        threading.Thread(target=sock.sendall, args=(blob,), daemon=True).start()
        got = bytearray()
        while len(got) < len(blob):
            got += sock.recv(65536)
    assert got == blob


def test_blackhole_is_silent_and_keeps_sockets_open(proxy: TcpProxy, echo: EchoServer) -> None:
    with _client(proxy) as sock:
        sock.sendall(b"a")
        assert sock.recv(10) == b"a"
        proxy.blackhole()
        sock.sendall(b"lost")
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):  # no data, and no EOF (recv would return b"")
            sock.recv(10)
        assert echo.received == b"a" and echo.eofs == 0 and echo.resets == 0
        assert proxy.discarded_bytes == 4 and proxy.bytes_up == 1
        sock.sendall(b"still open")  # our side is writable: nothing was closed
        _wait(lambda: proxy.discarded_bytes == 14)
        # New connections are accepted but lead nowhere, like SYN-ACKs from a dead NAT.
        with _client(proxy) as late:
            late.sendall(b"x")
            late.settimeout(0.1)
            with pytest.raises(TimeoutError):
                late.recv(10)
        # The client closing is not passed on either.
    time.sleep(0.05)
    assert echo.eofs == 0


def test_restore_resets_old_links_and_forwards_new_ones(proxy: TcpProxy, echo: EchoServer) -> None:
    with _client(proxy) as old:
        proxy.blackhole()
        proxy.restore()
        with pytest.raises(ConnectionResetError):
            old.recv(10)
    assert echo.eofs == 0  # the target side stays silent until the target gives up
    with _client(proxy) as new:
        new.sendall(b"back")
        assert new.recv(10) == b"back"


def test_drop_all_resets_both_sides(proxy: TcpProxy, echo: EchoServer) -> None:
    with _client(proxy) as sock:
        sock.sendall(b"x")
        assert sock.recv(10) == b"x"
        proxy.drop_all()
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    _wait(lambda: echo.resets == 1)
    assert proxy.active_connections == 0


def test_refused_target_resets_client() -> None:
    # The RST may even beat connect() returning, so both calls are inside pytest.raises.
    with TcpProxy("127.0.0.1", free_port()) as proxy, pytest.raises(ConnectionResetError), _client(proxy) as sock:
        sock.recv(10)
    assert proxy.connections == 1


def test_blackhole_starves_mqtt_keepalive() -> None:
    with Mosquitto() as broker, TcpProxy(broker.host, broker.port) as proxy:
        client = connect(broker, address=(proxy.host, proxy.listen_port), keepalive_s=1)
        lost = threading.Event()
        client.on_disconnect = lambda *args: lost.set()
        try:
            proxy.blackhole()
            # paho sends PINGREQ after 1 s idle and gives up 1 s later without PINGRESP.
            assert lost.wait(3.0)
            assert proxy.discarded_bytes >= 2  # the PINGREQ went into the void
            assert "Received PINGREQ" not in broker.log_text()
        finally:
            client.disconnect()
            client.loop_stop()


# That a blackholed MQTT client's will is published by the broker is asserted, with the broker's
# log line, by tests/test_daemon.py::test_blackholed_link_will_fires_and_data_survives: it runs
# through this proxy, and a second copy here would wait out mosquitto 2.0.11's 5 s keepalive sweep again.
