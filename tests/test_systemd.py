"""sd_notify datagrams reach a socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from sensord.systemd import Notifier


def test_notify_messages(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(1)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_interval_s == 2.0
    n.ready()
    n.status("connected, 0 batches pending")
    n.status("connected, 0 batches pending")  # unchanged: not sent again
    n.watchdog()
    n.stopping()
    got = [server.recv(256).decode() for _ in range(4)]
    assert got == ["READY=1", "STATUS=connected, 0 batches pending", "WATCHDOG=1", "STOPPING=1"]
    n.close()
    server.close()


def test_without_systemd_nothing_happens() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    n.ready()  # no socket, no error
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None


def test_a_full_notify_queue_never_blocks(tmp_path: Path) -> None:
    # Nobody reads the socket: the kernel queues a few datagrams (net.unix.max_dgram_qlen), then
    # a blocking send would hang the daemon's event loop, SIGTERM handling included.
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    n = Notifier({"NOTIFY_SOCKET": path})
    sender = threading.Thread(target=lambda: [n.watchdog() for _ in range(2000)], daemon=True)
    sender.start()
    sender.join(5)
    assert not sender.is_alive(), "Notifier.send blocked on a full queue"
    server.settimeout(1)
    assert server.recv(256) == b"WATCHDOG=1"  # the first ones were queued
    n.close()
    server.close()
