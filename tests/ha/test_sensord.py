"""A real `sensord run` on config/fake.toml against a real Home Assistant core, through mosquitto.

What is checked comes from Home Assistant's own state machine, registries and log: every channel
is an entity of one device with its device class, unit and a numeric state; a restart of Home
Assistant brings them back without restarting the node; a sensor removed from the config and
reloaded is removed; SIGKILL makes every entity unavailable within 1.5 x keepalive (plus the up
to 5 s of mosquitto 2.0.11's keepalive sweep); no MQTT warning or error in Home Assistant's log.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from daemon_harness import Node
from hass import HomeAssistant

from sensord import startup
from sensord.testing.broker import Mosquitto
from sensord.testing.proxy import TcpProxy

pytestmark = [pytest.mark.ha, pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[2]
KEEPALIVE_S = 4
SWEEP_S = 5  # mosquitto before 2.0.21 looks for expired keepalives every 5 s


def fake_config(tmp_path: Path, broker: Mosquitto, *, without: str | None = None, port: int | None = None) -> Path:
    """config/fake.toml on the test broker (or `port`), batches every second, its buffer in tmp_path."""
    text = (ROOT / "config" / "fake.toml").read_text()
    text = text.replace('[mqtt]\nhost = "127.0.0.1"\n',
                        f'[mqtt]\nhost = "{broker.host}"\nport = {port or broker.port}\nkeepalive_s = {KEEPALIVE_S}\n'
                        "[batch]\nmax_age_s = 1\n")
    text = text.replace('path = ".state/fake-buffer.db"', f'path = "{tmp_path / "buffer.db"}"')
    if without is not None:  # drop one [[sensor]] table
        text = re.sub(rf'\[\[sensor\]\]\nname = "{without}"\n(?:(?!\[\[sensor\]\]).*\n)*', "", text)
    path = tmp_path / "fake.toml"
    path.write_text(text)
    return path


def expected(config: Path) -> dict[str, object]:
    """unique_id → the entity sensord announces for it (`sensord check` prints the same)."""
    loaded = startup.load_runnable(str(config), entry_points=False)
    return {f"sensord_fake_{e.component_id}": e for e in startup.announced_entities(loaded)}


def mqtt_entities(hass: HomeAssistant) -> dict[str, dict[str, object]]:
    entities, _ = hass.registries()
    return {str(e["unique_id"]): e for e in entities if e["platform"] == "mqtt"}


#: Entities without a value for a while by design: the SGP40's VOC index comes after the gas index
#: algorithm's 45-sample blackout (45 s at the fake node's `interval_s = 1`).
LATE = ("voc_index",)


def all_numeric(hass: HomeAssistant, entity_ids: list[str], *, late: tuple[str, ...] = LATE) -> bool:
    for entity_id in entity_ids:
        if entity_id.endswith(late):
            continue
        state = hass.state(entity_id)
        if state is None:
            return False
        value = str(state["state"])
        if entity_id.startswith("binary_sensor."):
            if value not in ("on", "off"):
                return False
        elif "last_delivery" in entity_id:
            if value in ("unknown", "unavailable"):
                return False
        else:
            try:
                float(value)
            except ValueError:
                return False
    return True


def test_a_fake_node_in_home_assistant(hass: HomeAssistant, broker: Mosquitto, tmp_path: Path) -> None:
    config = fake_config(tmp_path, broker)
    announced = expected(config)
    node = Node(config).start()
    try:
        # Every channel and diagnostic is an entity, all of one device.
        found = hass.wait_for(lambda ha: (lambda got: got if set(announced) <= set(got) else None)(
            mqtt_entities(ha)), 30, "every announced entity in the registry")
        ids = {uid: str(found[uid]["entity_id"]) for uid in announced}
        devices = {found[uid]["device_id"] for uid in announced}
        assert len(devices) == 1
        (device_id,) = devices
        assert hass.render(f"{{{{ device_attr('{device_id}', 'name') }}}}") == "fake"
        assert hass.render(f"{{{{ device_attr('{device_id}', 'sw_version') }}}}") == __import__("sensord").__version__
        for uid, entity in announced.items():
            assert ids[uid] == entity.entity_id("fake"), (uid, ids[uid])  # as `sensord check` prints it
        hass.wait_for(lambda ha: all_numeric(ha, list(ids.values())), 20, "a value for every entity")
        hass.wait_for(lambda ha: all_numeric(ha, list(ids.values()), late=()), 60,
                      "the VOC index, after its blackout")
        for uid, entity in announced.items():
            attributes = (hass.state(ids[uid]) or {})["attributes"]
            assert attributes.get("device_class") == entity.device_class, uid
            assert attributes.get("unit_of_measurement") == entity.unit, uid
            assert attributes.get("state_class") == entity.state_class, uid
        categories = {uid: found[uid]["entity_category"] for uid in announced}
        assert categories["sensord_fake_sensord_backlog"] == "diagnostic"
        assert categories["sensord_fake_attic_temperature"] is None

        # Home Assistant restarts; the node does not. Its birth message brings every value back.
        hass.restart()
        hass.wait_for(lambda ha: all_numeric(ha, list(ids.values())), 30, "every value again after the restart")
        assert "Home Assistant announced itself" in node.log()

        # A sensor removed from the config and a reload: its entities leave Home Assistant.
        fake_config(tmp_path, broker, without="rain")
        node.signal(signal.SIGHUP)
        rain = [uid for uid in announced if uid.startswith("sensord_fake_rain_")]
        assert len(rain) == 3
        hass.wait_for(lambda ha: not set(rain) & set(mqtt_entities(ha)), 20, "the rain entities removed")
        assert all(hass.state(ids[uid]) is None for uid in rain)
        kept = [ids[uid] for uid in announced if uid not in rain]
        hass.wait_for(lambda ha: all_numeric(ha, kept), 10, "the other entities still there")

        # SIGKILL: no offline from the node itself. The kernel closes its socket, so the broker
        # publishes the will at once.
        killed = time.monotonic()
        node.kill9()
        hass.wait_for(lambda ha: all((ha.state(e) or {}).get("state") == "unavailable" for e in kept),
                      1.5 * KEEPALIVE_S, "every entity unavailable")
        print(f"unavailable {time.monotonic() - killed:.1f} s after SIGKILL")
    finally:
        node.close()
    assert hass.mqtt_problems() == []
    assert "Traceback" not in node.log() and "WARNING sensord.mqtt.discovery" not in node.log()


def test_a_node_that_loses_power_goes_unavailable_within_its_keepalive(
        hass: HomeAssistant, broker: Mosquitto, tmp_path: Path) -> None:
    """A power cut sends no FIN: the link goes silent (a blackholed proxy), then SIGKILL. The
    broker publishes the will 1.5 x keepalive after the last packet, seen by mosquitto 2.0.11's
    keepalive sweep (every 5 s)."""
    with TcpProxy(broker.host, broker.port) as proxy:
        config = fake_config(tmp_path, broker, port=proxy.listen_port)
        node = Node(config).start()
        try:
            ids = [e.entity_id("fake") for e in expected(config).values() if not e.diagnostic]
            hass.wait_for(lambda ha: all_numeric(ha, ids), 30, "a value for every entity")
            proxy.blackhole()
            cut = time.monotonic()
            node.kill9()
            hass.wait_for(lambda ha: all((ha.state(e) or {}).get("state") == "unavailable" for e in ids),
                          1.5 * KEEPALIVE_S + SWEEP_S + 5, "every entity unavailable")
            took = time.monotonic() - cut
        finally:
            node.close()
    print(f"unavailable {took:.1f} s after the power cut (keepalive {KEEPALIVE_S} s)")
    assert 1.5 * KEEPALIVE_S - 1 <= took <= 1.5 * KEEPALIVE_S + SWEEP_S + 1
    assert hass.mqtt_problems() == []
