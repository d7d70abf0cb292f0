"""The harness against a real Home Assistant, with a hand-written device discovery message.

The message below is the shape sensord's discovery will send (device-based discovery, `cmps`,
Home Assistant >= 2024.12). What Home Assistant makes of it is read from its own state machine,
registries and log: one device, its entities and attributes, partial state messages,
availability, a restart, removing a component and removing the device.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hass import HomeAssistant

from sensord.testing.broker import Mosquitto, Subscription, publish

pytestmark = [pytest.mark.ha, pytest.mark.broker]

CONFIG_TOPIC = "homeassistant/device/sensord_fake/config"
STATE_TOPIC = "sensord/fake/state"
STATUS_TOPIC = "sensord/fake/status"


def present(key: str, form: str = "{key}") -> str:
    """sensord's value template: the channel when the message has it, else '' (left alone)."""
    return "{{ " + form.format(key=f"value_json.{key}") + f" if '{key}' in value_json else '' }}}}"


COMPONENTS: dict[str, dict[str, Any]] = {
    "fake_attic_temperature": {
        "p": "sensor", "uniq_id": "sensord_fake_attic_temperature", "name": "attic temperature",
        "dev_cla": "temperature", "unit_of_meas": "°C", "stat_cla": "measurement", "sug_dsp_prc": 2,
        "val_tpl": present("attic_temperature")},
    "fake_door_door_open": {
        "p": "binary_sensor", "uniq_id": "sensord_fake_door_door_open", "name": "door door_open",
        "dev_cla": "door", "pl_on": "true", "pl_off": "false",
        "val_tpl": present("door_door_open", "({key} | string | lower)")},
    "fake_rain_total": {
        "p": "sensor", "uniq_id": "sensord_fake_rain_total", "name": "rain total", "dev_cla": "precipitation",
        "unit_of_meas": "mm", "stat_cla": "total_increasing", "val_tpl": present("rain_total")},
    "fake_backlog": {
        "p": "sensor", "uniq_id": "sensord_fake_backlog", "name": "backlog", "ent_cat": "diagnostic",
        "unit_of_meas": "readings", "stat_cla": "measurement", "val_tpl": present("_backlog")},
}


def device_message(components: dict[str, dict[str, Any]], node: str = "fake") -> dict[str, Any]:
    return {
        "dev": {"ids": [f"sensord_{node}"], "name": node, "mdl": "Raspberry Pi 4 Model B Rev 1.4", "sw": "0.9.0",
                "mf": "sensord"},
        "o": {"name": "sensord", "sw": "0.9.0", "url": "https://example.invalid/sensord"},
        "avty_t": f"sensord/{node}/status", "pl_avail": "online", "pl_not_avail": "offline",
        "stat_t": f"sensord/{node}/state", "qos": 1,
        "cmps": components,
    }


def send(broker: Mosquitto, topic: str, payload: Any) -> None:
    """Publish retained, QoS 1, as sensord does; dicts as JSON."""
    publish(broker, topic, json.dumps(payload) if isinstance(payload, dict) else payload, retain=True)


def entity_ids(hass: HomeAssistant, unique_ids: list[str], timeout_s: float = 10.0) -> dict[str, str]:
    """unique_id → entity_id from the entity registry, once every one of `unique_ids` is there."""
    def found(ha: HomeAssistant) -> dict[str, str] | None:
        entities, _ = ha.registries()
        ids = {e["unique_id"]: e["entity_id"] for e in entities if e["platform"] == "mqtt"}
        return ids if set(unique_ids) <= set(ids) else None

    result: dict[str, str] = hass.wait_for(found, timeout_s, f"entities {unique_ids}")
    return result


def state_of(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.state(entity_id)
    return None if state is None else str(state["state"])


def wait_state(hass: HomeAssistant, entity_id: str, value: str, timeout_s: float = 10.0) -> None:
    hass.wait_for(lambda ha: state_of(ha, entity_id) == value, timeout_s, f"{entity_id} == {value!r}")


@pytest.fixture
def fake(hass: HomeAssistant, broker: Mosquitto) -> dict[str, str]:
    """The fake node announced, online, with a first full state message; uniq_id → entity_id."""
    send(broker, STATUS_TOPIC, "online")
    send(broker, CONFIG_TOPIC, device_message(COMPONENTS))
    ids = entity_ids(hass, [c["uniq_id"] for c in COMPONENTS.values()])
    send(broker, STATE_TOPIC, {"attic_temperature": 20.5, "door_door_open": False, "rain_total": 1.2, "_backlog": 0})
    wait_state(hass, ids["sensord_fake_backlog"], "0")
    return ids


def test_every_component_is_an_entity_of_one_device(hass: HomeAssistant, fake: dict[str, str]) -> None:
    device_ids = {uid: hass.render(f"{{{{ device_id('{eid}') }}}}") for uid, eid in fake.items()}
    assert len(set(device_ids.values())) == 1 and all(device_ids.values()), device_ids
    device_id = next(iter(device_ids.values()))
    attrs = {name: hass.render(f"{{{{ device_attr('{device_id}', '{name}') }}}}")
             for name in ("name", "model", "sw_version", "manufacturer")}
    assert attrs == {"name": "fake", "model": "Raspberry Pi 4 Model B Rev 1.4", "sw_version": "0.9.0",
                     "manufacturer": "sensord"}
    members = json.loads(hass.render(f"{{{{ device_entities('{device_id}') | tojson }}}}"))
    assert sorted(members) == sorted(fake.values())
    _, devices = hass.registries()
    (device,) = [d for d in devices if ["mqtt", "sensord_fake"] in d["identifiers"]]
    assert device["id"] == device_id

    attic = hass.state(fake["sensord_fake_attic_temperature"])
    assert attic is not None and attic["state"] == "20.5"
    assert {k: attic["attributes"].get(k) for k in ("device_class", "unit_of_measurement", "state_class")} == {
        "device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement"}
    rain = hass.state(fake["sensord_fake_rain_total"])
    assert rain is not None and rain["state"] == "1.2"
    assert {k: rain["attributes"].get(k) for k in ("device_class", "unit_of_measurement", "state_class")} == {
        "device_class": "precipitation", "unit_of_measurement": "mm", "state_class": "total_increasing"}
    door = hass.state(fake["sensord_fake_door_door_open"])
    assert door is not None and door["state"] == "off" and door["attributes"]["device_class"] == "door"
    backlog = hass.state(fake["sensord_fake_backlog"])
    assert backlog is not None and backlog["attributes"]["unit_of_measurement"] == "readings"
    entities, _ = hass.registries()
    categories = {e["unique_id"]: e["entity_category"] for e in entities if e["platform"] == "mqtt"}
    assert categories["sensord_fake_backlog"] == "diagnostic"
    assert categories["sensord_fake_attic_temperature"] is None
    assert hass.mqtt_problems() == []


def test_a_state_message_with_one_channel_leaves_the_others_alone(
        hass: HomeAssistant, broker: Mosquitto, fake: dict[str, str]) -> None:
    attic, door = fake["sensord_fake_attic_temperature"], fake["sensord_fake_door_door_open"]
    rain, backlog = fake["sensord_fake_rain_total"], fake["sensord_fake_backlog"]
    send(broker, STATE_TOPIC, {"attic_temperature": 21.37})
    wait_state(hass, attic, "21.37")
    send(broker, STATE_TOPIC, {"door_door_open": True})
    wait_state(hass, door, "on")
    send(broker, STATE_TOPIC, {"_backlog": 7})
    wait_state(hass, backlog, "7")
    assert {e: state_of(hass, e) for e in (attic, door, rain, backlog)} == {
        attic: "21.37", door: "on", rain: "1.2", backlog: "7"}
    assert hass.mqtt_problems() == []


def test_offline_makes_every_entity_unavailable_and_online_brings_them_back(
        hass: HomeAssistant, broker: Mosquitto, fake: dict[str, str]) -> None:
    send(broker, STATUS_TOPIC, "offline")
    for entity_id in fake.values():
        wait_state(hass, entity_id, "unavailable")
    send(broker, STATUS_TOPIC, "online")
    wait_state(hass, fake["sensord_fake_attic_temperature"], "20.5")
    wait_state(hass, fake["sensord_fake_door_door_open"], "off")
    assert hass.mqtt_problems() == []


def test_entities_come_back_from_retained_messages_after_a_restart(
        hass: HomeAssistant, broker: Mosquitto, fake: dict[str, str]) -> None:
    send(broker, STATE_TOPIC, {"attic_temperature": 22.0})
    wait_state(hass, fake["sensord_fake_attic_temperature"], "22.0")
    with Subscription(broker, "homeassistant/status") as birth:
        hass.restart()
        # Home Assistant's birth message, on which a node would re-send its discovery.
        birth.wait_for(lambda messages: any(m.payload == b"online" for m in messages), 10)
    # MQTT entities do not restore their state: the retained state topic holds only the last
    # message, so a channel it lacks is unknown until the node sends it again.
    wait_state(hass, fake["sensord_fake_attic_temperature"], "22.0")
    assert entity_ids(hass, list(fake)) == fake
    assert state_of(hass, fake["sensord_fake_door_door_open"]) == "unknown"
    # What a node must do on the birth message: send every channel's last value again.
    send(broker, STATE_TOPIC, {"attic_temperature": 22.0, "door_door_open": False, "rain_total": 1.2, "_backlog": 0})
    wait_state(hass, fake["sensord_fake_door_door_open"], "off")
    assert state_of(hass, fake["sensord_fake_rain_total"]) == "1.2"
    assert hass.mqtt_problems() == []


def test_a_component_sent_as_only_its_platform_is_removed(
        hass: HomeAssistant, broker: Mosquitto, fake: dict[str, str]) -> None:
    smaller = {**COMPONENTS, "fake_rain_total": {"p": "sensor"}}
    send(broker, CONFIG_TOPIC, device_message(smaller))
    rain = fake["sensord_fake_rain_total"]
    hass.wait_for(lambda ha: ha.state(rain) is None, 10, f"{rain} gone")
    entities, _ = hass.registries()
    assert "sensord_fake_rain_total" not in {e["unique_id"] for e in entities}
    assert state_of(hass, fake["sensord_fake_attic_temperature"]) == "20.5"
    assert hass.mqtt_problems() == []


def test_a_component_left_out_is_not_removed(hass: HomeAssistant, broker: Mosquitto, fake: dict[str, str]) -> None:
    """Device discovery updates the components it lists; one missing from `cmps` stays."""
    smaller = {key: value for key, value in COMPONENTS.items() if key != "fake_rain_total"}
    send(broker, CONFIG_TOPIC, device_message(smaller))
    # The new config goes through before the state message after it (one connection, in order).
    send(broker, STATE_TOPIC, {"attic_temperature": 19.0, "rain_total": 2.5})
    wait_state(hass, fake["sensord_fake_attic_temperature"], "19.0")
    wait_state(hass, fake["sensord_fake_rain_total"], "2.5")
    entities, _ = hass.registries()
    assert "sensord_fake_rain_total" in {e["unique_id"] for e in entities}
    assert hass.mqtt_problems() == []


def test_an_empty_config_message_removes_the_device(
        hass: HomeAssistant, broker: Mosquitto, fake: dict[str, str]) -> None:
    send(broker, CONFIG_TOPIC, "")

    def gone(ha: HomeAssistant) -> bool:
        entities, devices = ha.registries()
        return (not any(e["platform"] == "mqtt" for e in entities)
                and not any(["mqtt", "sensord_fake"] in d["identifiers"] for d in devices))

    hass.wait_for(gone, 10, "the device and its entities removed")
    assert all(hass.state(e) is None for e in fake.values())
    assert hass.mqtt_problems() == []


# Device class, unit and state class combinations sensord may send: (component, value sent, state shown).
PROBES: dict[str, tuple[dict[str, Any], Any, str]] = {
    "uptime": ({"dev_cla": "duration", "unit_of_meas": "s", "stat_cla": "total_increasing"}, 3600, "3600"),
    "pressure": ({"dev_cla": "pressure", "unit_of_meas": "hPa", "stat_cla": "measurement"}, 1013.25, "1013.25"),
    "distance": ({"dev_cla": "distance", "unit_of_meas": "m", "stat_cla": "measurement"}, 1.5, "1.5"),
    "energy": ({"dev_cla": "energy", "unit_of_meas": "Wh", "stat_cla": "total_increasing"}, 120, "120"),
    "water": ({"dev_cla": "water", "unit_of_meas": "L", "stat_cla": "total_increasing"}, 42.5, "42.5"),
    "humidity_free": ({"unit_of_meas": "%", "stat_cla": "measurement"}, 55.5, "55.5"),
    "booted": ({"dev_cla": "timestamp", "ent_cat": "diagnostic"}, "2026-12-03T08:00:00+00:00",
               "2026-12-03T08:00:00+00:00"),
}


def keep_own_state(key: str) -> str:
    """For a timestamp (or any non-numeric) sensor: its own state when the message lacks the key.

    An empty render would be parsed as a timestamp ("Invalid state message ''", then unknown);
    'None' sets unknown, which it already is before its first value.
    """
    return (f"{{{{ value_json.{key} if '{key}' in value_json else (this.state if this.state not in "
            "('unknown', 'unavailable') else 'None') }}")


def probe_components(template: Any = present) -> dict[str, dict[str, Any]]:
    return {f"probe_{key}": {"p": "sensor", "uniq_id": f"sensord_probe_{key}", "name": key,
                             "val_tpl": template(key), **fields}
            for key, (fields, _, _) in PROBES.items()}


def test_device_class_unit_and_state_class_combinations_are_accepted(
        hass: HomeAssistant, broker: Mosquitto) -> None:
    send(broker, "sensord/probe/status", "online")
    send(broker, "homeassistant/device/sensord_probe/config", device_message(probe_components(), "probe"))
    ids = entity_ids(hass, [f"sensord_probe_{key}" for key in PROBES])
    send(broker, "sensord/probe/state", {key: sent for key, (_, sent, _) in PROBES.items()})
    for key, (fields, _, shown) in PROBES.items():
        wait_state(hass, ids[f"sensord_probe_{key}"], shown)
        attributes = hass.state(ids[f"sensord_probe_{key}"])["attributes"]  # type: ignore[index]
        assert attributes.get("device_class") == fields.get("dev_cla")
        assert attributes.get("unit_of_measurement") == fields.get("unit_of_meas")
        assert attributes.get("state_class") == fields.get("stat_cla")
    assert hass.mqtt_problems() == []


def test_an_empty_render_is_not_a_timestamp(hass: HomeAssistant, broker: Mosquitto) -> None:
    """Numeric sensors and binary sensors ignore an empty render; a timestamp sensor does not:
    it logs "Invalid state message ''" and turns unknown. Its template must keep its own state."""
    send(broker, "sensord/probe/status", "online")
    send(broker, "homeassistant/device/sensord_probe/config", device_message(probe_components(), "probe"))
    ids = entity_ids(hass, [f"sensord_probe_{key}" for key in PROBES])
    booted = ids["sensord_probe_booted"]
    send(broker, "sensord/probe/state", {"booted": "2026-12-03T08:00:00+00:00"})
    wait_state(hass, booted, "2026-12-03T08:00:00+00:00")
    send(broker, "sensord/probe/state", {"pressure": 1000.0})
    wait_state(hass, ids["sensord_probe_pressure"], "1000.0")
    assert state_of(hass, booted) == "unknown"
    assert [line for line in hass.mqtt_problems() if "Invalid state message ''" in line]


def test_a_timestamp_template_that_keeps_its_own_state(hass: HomeAssistant, broker: Mosquitto) -> None:
    send(broker, "sensord/probe/status", "online")
    send(broker, "homeassistant/device/sensord_probe/config", device_message(probe_components(keep_own_state), "probe"))
    ids = entity_ids(hass, [f"sensord_probe_{key}" for key in PROBES])
    booted, pressure = ids["sensord_probe_booted"], ids["sensord_probe_pressure"]
    send(broker, "sensord/probe/state", {"pressure": 990.0})
    wait_state(hass, pressure, "990.0")
    assert state_of(hass, booted) == "unknown"
    send(broker, "sensord/probe/state", {"booted": "2026-12-03T08:00:00+00:00"})
    wait_state(hass, booted, "2026-12-03T08:00:00+00:00")
    send(broker, "sensord/probe/state", {"pressure": 1000.0})
    wait_state(hass, pressure, "1000.0")
    assert state_of(hass, booted) == "2026-12-03T08:00:00+00:00"
    assert hass.mqtt_problems() == []
