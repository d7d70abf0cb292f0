"""A real mosquitto on a free loopback port, for tests marked `broker`.

Stop-gap until `sensord.testing.broker.Mosquitto` exists; keep it small."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def pytest_report_header() -> str:
    from sensord.mqtt_compat import LIBRARY

    return f"sensord MQTT library: {LIBRARY}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Broker:
    """One mosquitto process; `extra` config lines are appended to the listener."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, extra: str = "") -> None:
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            pytest.fail('mosquitto not found: install it with "apt-get install -y mosquitto"')
        self.port = free_port()
        self.log = directory / f"mosquitto-{self.port}.log"
        conf = directory / f"mosquitto-{self.port}.conf"
        # `user`: when started as root mosquitto would switch to user "mosquitto" and lose tmp_path.
        conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
                        f"user {getpass.getuser()}\n{extra}\n")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"mosquitto did not start: {self.log.read_text()}")
                time.sleep(0.02)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the kernel closes the connections, the broker answers nothing more."""
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start brokers with `mosquitto_factory(extra_config_lines)`; all are stopped afterwards."""
    brokers: list[Broker] = []

    def start(extra: str = "") -> Broker:
        brokers.append(Broker(tmp_path, extra))
        return brokers[-1]

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Broker]) -> Broker:
    """A fresh anonymous mosquitto for this test."""
    return mosquitto_factory()
