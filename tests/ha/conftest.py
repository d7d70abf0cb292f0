"""Fixtures for the tests against a real Home Assistant (`make test-ha`).

These tests are collected only when tests/ha (or a file in it) is named on the command line:
plain `pytest` and `make test` leave them out, since they need `.venv-ha` (about 900 MB, made by
`.ci/ha-env`). Asked for without it, they fail and say so; they are never skipped quietly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hass import DEFAULT_VENV, INSTALL_HINT, HomeAssistant

from sensord.testing.broker import Mosquitto

HERE = Path(__file__).resolve().parent


def _named(config: pytest.Config) -> bool:
    start = config.invocation_params.dir
    for arg in config.args:
        path = (start / arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and not _named(config):
        return True
    return None


@pytest.fixture
def hass(broker: Mosquitto, tmp_path: Path) -> Iterator[HomeAssistant]:
    """A Home Assistant of its own for one test, its MQTT integration on `broker`."""
    if not (DEFAULT_VENV / "bin" / "hass-py313").exists():
        pytest.fail(f"{DEFAULT_VENV} has no Home Assistant: {INSTALL_HINT}", pytrace=False)
    with HomeAssistant(tmp_path, mqtt_host=broker.host, mqtt_port=broker.port) as ha:
        yield ha
