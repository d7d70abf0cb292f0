"""Suite-wide settings. The broker fixtures (`mqtt_broker`, `mqtt_broker_factory`) and the fakes
come from sensord's own pytest plugin (`sensord.testing.pytest_plugin`, entry point `pytest11`)."""

from __future__ import annotations

# pytester runs the plugin's fixtures in an inner pytest session (tests/testing/test_pytest_plugin.py).
pytest_plugins = ["pytester"]


def pytest_report_header() -> str:
    """Name the MQTT library in use: aiomqtt 2.x, or asyncio-mqtt 0.16 in `.venv-bookworm`."""
    from sensord.mqtt_compat import LIBRARY

    return f"sensord MQTT library: {LIBRARY}"
