"""Suite-wide settings. The broker fixtures (`mqtt_broker`, `mqtt_broker_factory`) and the fakes
come from sensord's own pytest plugin (`sensord.testing.pytest_plugin`, entry point `pytest11`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from daemon_harness import Node

    from sensord.testing.broker import Mosquitto

# The host's clock is not what the tests are about: every `sensord run` they start (in this process
# or a child) takes the clock as synchronised unless a test says otherwise (tests/test_clock*.py).
os.environ["SENSORD_CLOCK_SYNC"] = "none"

# pytester runs the plugin's fixtures in an inner pytest session (tests/testing/test_pytest_plugin.py).
pytest_plugins = ["pytester"]


def pytest_report_header() -> str:
    """Name the MQTT library in use: aiomqtt 2.x, or asyncio-mqtt 0.16 in `.venv-bookworm`."""
    from sensord.mqtt.compat import LIBRARY

    return f"sensord MQTT library: {LIBRARY}"


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A mosquitto of its own for one test, on a free loopback port."""
    from sensord.testing.broker import Mosquitto

    with Mosquitto() as b:
        yield b


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """`sensord run` processes a test starts (`daemon_harness.Node`); each is closed after the test."""
    started: list[Node] = []
    yield started
    for node in started:
        node.close()
