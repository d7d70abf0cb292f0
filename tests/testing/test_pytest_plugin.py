"""The broker fixtures of sensord's pytest plugin: `mqtt_broker` and `mqtt_broker_factory`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sensord.testing import Mosquitto, Subscription
from sensord.testing.broker import INSTALL_HINT
from sensord.testing.mqtt_client import connect, publish
from sensord.testing.pytest_plugin import MqttBrokerFactory

pytestmark = pytest.mark.broker


def test_mqtt_broker_is_running_on_loopback(mqtt_broker: Mosquitto, request: pytest.FixtureRequest,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    assert mqtt_broker.running and mqtt_broker.host == "127.0.0.1"
    assert mqtt_broker.url == f"mqtt://127.0.0.1:{mqtt_broker.port}"
    topic = f"test/{request.node.name}"
    with Subscription(mqtt_broker, topic) as sub:
        publish(mqtt_broker, topic, b"hello")
        assert sub.wait_for_count(1)[0].payload == b"hello"
    # The work dir (config, log) lives in pytest's temporary directory, kept for a post-mortem.
    assert mqtt_broker.workdir.is_relative_to(tmp_path_factory.getbasetemp())


def test_mqtt_broker_factory_passes_options(mqtt_broker_factory: MqttBrokerFactory) -> None:
    secured = mqtt_broker_factory(password=("node", "pw"), tls=True)
    plain = mqtt_broker_factory()
    assert secured.port != plain.port
    assert secured.url.startswith("mqtts://") and plain.url.startswith("mqtt://")
    client = connect(secured)  # credentials and CA taken from the broker
    client.disconnect()
    client.loop_stop()
    with pytest.raises(ConnectionRefusedError, match="refused"):
        connect(secured, username=None)


def _pids_are_gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_brokers_are_stopped_after_the_test(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    pytester.makepyfile(f"""
        from pathlib import Path

        def test_uses_brokers(mqtt_broker, mqtt_broker_factory):
            other = mqtt_broker_factory(password=("u", "p"))
            assert mqtt_broker.running and other.running
            Path({str(pid_file)!r}).write_text(f"{{mqtt_broker.pid}} {{other.pid}}")
        """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert len(pids) == 2 and _pids_are_gone(pids)


def test_missing_mosquitto_fails_with_the_install_hint(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import shutil
        import pytest

        @pytest.fixture(autouse=True)
        def no_binaries_on_path(monkeypatch):
            monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
        """)
    pytester.makepyfile("""
        def test_needs_a_broker(mqtt_broker):
            pass

        def test_needs_a_factory(mqtt_broker_factory):
            mqtt_broker_factory(tls=True)
        """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    # An error in set-up for the fixture, a failure for the factory call: never a skip.
    result.assert_outcomes(failed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.str().count(INSTALL_HINT) >= 2
    assert "skipped" not in result.stdout.str()
