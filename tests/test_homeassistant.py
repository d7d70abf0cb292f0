"""Home Assistant discovery: the messages (sensord.homeassistant) and when they go out
(sensord.mqtt.discovery), against the in-memory broker. The proof against a real Home Assistant
core is `make test-ha` (tests/ha/)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sensord import homeassistant as ha
from sensord import startup
from sensord.buffer import Buffer
from sensord.config import BatchConfig, BufferConfig, Config, HomeAssistantConfig, MqttConfig, NodeConfig
from sensord.encoding import encode_batch
from sensord.errors import ConfigError
from sensord.mqtt import Publisher, Topics
from sensord.mqtt.discovery import DISCOVERY_GRACE_S, Announcer
from sensord.sensor import Channel, Sample
from sensord.systemd import Notifier
from sensord.testing.fake_mqtt import FakeBroker
from sensord_plugins.sgp40 import voc_algorithm_class

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
CONFIG_TOPIC = "homeassistant/device/sensord_n1/config"
STATE = "sensord/n1/state"
ACCEPTED = ROOT / "tests" / "ha" / "ha_device_classes.json"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


# -- the messages ----------------------------------------------------------------------------------

def fake_entities() -> tuple[str, list[ha.Entity]]:
    loaded = startup.load_runnable(str(ROOT / "config" / "fake.toml"), entry_points=False)
    return loaded.config.node.id, startup.announced_entities(loaded)


def test_entities_without_keys_differ_only_in_the_keys() -> None:
    # `sensord check` lists them so, without importing hashlib; the daemon announces them keyed.
    loaded = startup.load_runnable(str(ROOT / "config" / "fake.toml"), entry_points=False)
    keyed, listed = startup.announced_entities(loaded), startup.announced_entities(loaded, keys=False)
    assert [e._replace(key="") if not e.diagnostic else e for e in keyed] == listed
    assert all(e.key for e in keyed)


def test_the_fake_node_announces_every_channel_with_its_class_unit_and_precision() -> None:
    node, entities = fake_entities()
    by_name = {e.name: e for e in entities}
    t = by_name["attic temperature"]
    assert (t.platform, t.device_class, t.unit, t.state_class, t.precision) == \
        ("sensor", "temperature", "°C", "measurement", 2)
    assert t.entity_id(node) == "sensor.fake_attic_temperature"
    assert (by_name["attic pressure"].device_class, by_name["attic pressure"].unit) == ("pressure", "hPa")
    mast = by_name["mast pressure"]  # BMP388
    assert (mast.device_class, mast.unit, mast.precision) == ("pressure", "hPa", 2)
    assert (by_name["office_co2 carbon_dioxide"].device_class, by_name["office_co2 carbon_dioxide"].precision) == \
        ("carbon_dioxide", 0)
    co2 = by_name["bedroom_co2 carbon_dioxide"]  # SCD30: floats, shown to 0.1 ppm
    assert (co2.device_class, co2.unit, co2.precision) == ("carbon_dioxide", "ppm", 1)
    gas = by_name["lounge gas_resistance"]  # BME680: Home Assistant has no device class for Ω
    assert (gas.device_class, gas.unit, gas.state_class, gas.precision) == (None, "Ω", "measurement", 0)
    # SGP40: voc_index with Sensirion's algorithm, which the test extra installs and Debian lacks
    # (the .deb's build-time run of this test goes without it).
    with_voc = voc_algorithm_class() is not None
    if with_voc:
        voc = by_name["living_voc voc_index"]
        assert (voc.device_class, voc.unit, voc.precision) == ("aqi", None, 0)
    else:
        assert "living_voc voc_index" not in by_name and "living_voc voc_raw" in by_name
    rain = by_name["rain total"]
    assert (rain.device_class, rain.unit, rain.state_class) == ("precipitation", "mm", "total_increasing")
    assert by_name["rain count"].state_class == "total_increasing"
    assert by_name["rain pulses"].state_class == "measurement"
    door, pir = by_name["door contact"], by_name["hall_pir motion"]
    assert (door.platform, door.device_class, door.unit, door.precision) == ("binary_sensor", "opening", None, None)
    assert (pir.platform, pir.device_class) == ("binary_sensor", "motion")
    diagnostics = [e for e in entities if e.diagnostic]
    assert [e.name for e in diagnostics] == ["backlog", "readings dropped", "last delivery", "uptime"]
    # iio and hwmon sensors with their channels in the config are announced before they open.
    porch, battery = by_name["porch humidity"], by_name["battery voltage"]
    assert (porch.device_class, porch.unit, porch.precision) == ("humidity", "%", None)  # IIO: resolution unknown
    assert (battery.device_class, battery.unit, battery.precision) == ("voltage", "V", 3)  # hwmon: whole mV
    desk = by_name["desk illuminance"]
    assert (desk.device_class, desk.unit, desk.precision) == ("illuminance", "lx", 1)  # VEML7700: 0.2688 lx steps
    window, infrared = by_name["window illuminance"], by_name["window infrared"]
    assert (window.device_class, window.unit, window.precision) == ("illuminance", "lx", 1)  # TSL2591: 0.163 lx
    assert (infrared.device_class, infrared.unit, infrared.state_class) == (None, None, "measurement")  # counts
    fridge = by_name["fridge temperature"]
    assert (fridge.device_class, fridge.unit, fridge.precision) == ("temperature", "°C", 2)  # MCP9808: 0.0625 °C steps
    # UART sensors: particulate matter in Home Assistant's spelling of µg/m³ (a Greek mu), CO2 as scd4x's.
    assert [(by_name[f"balcony {q}"].device_class, by_name[f"balcony {q}"].unit, by_name[f"balcony {q}"].precision)
            for q in ("pm1", "pm2_5", "pm10")] == [("pm1", "\u03bcg/m³", 0), ("pm25", "\u03bcg/m³", 0),
                                                     ("pm10", "\u03bcg/m³", 0)]
    assert (by_name["street pm2_5"].device_class, by_name["street pm2_5"].precision) == ("pm25", 1)
    assert (by_name["balcony particles_0_3um"].device_class, by_name["balcony particles_0_3um"].unit) == (None, "/dL")
    assert by_name["living_room_co2 carbon_dioxide"].device_class == "carbon_dioxide"
    # Every sensor channel of the config and the diagnostics, each once.
    assert len({e.component_id for e in entities}) == len({e.key for e in entities}) == len(entities) == 79 + with_voc


def test_every_built_in_mapping_is_one_home_assistant_accepts() -> None:
    """Against the device classes, units and state classes dumped from a real Home Assistant
    (tests/ha/dump_device_classes.py)."""
    accepted = json.loads(ACCEPTED.read_text())
    sensor_classes = accepted["sensor"]
    for rule in ha.DEVICE_CLASSES:
        known = sensor_classes[rule.device_class]
        for unit in rule.units:
            assert (unit or None) in known["units"], (rule.device_class, unit, known["units"])
        for kind in rule.kinds:
            state_class = "total_increasing" if kind == "total" else "measurement"
            assert known["state_classes"] is None or state_class in known["state_classes"], (rule, state_class)
    binary = set(accepted["binary_sensor"])
    assert {device_class for _, device_class in ha.BINARY_CLASSES} <= binary
    for _key, _name, unit, device_class, state_class, _ts in ha.DIAGNOSTICS:
        if device_class is not None:
            known = sensor_classes[device_class]
            assert unit is None or unit in known["units"]
            assert state_class is None or known["state_classes"] is None or state_class in known["state_classes"]


@pytest.mark.parametrize(("channel", "expected"), [
    (Channel("temperature", "°C", 0.0625), ("sensor", "temperature", "°C", "measurement")),
    (Channel("soil_moisture", "%", 0.1), ("sensor", "moisture", "%", "measurement")),
    (Channel("memory_used", "%", 0.1), ("sensor", None, "%", "measurement")),
    (Channel("load_1m", "", 0.01), ("sensor", None, None, "measurement")),
    (Channel("voc_index", "", 1.0), ("sensor", "aqi", None, "measurement")),
    (Channel("voc_raw", "", 1.0), ("sensor", None, None, "measurement")),
    (Channel("energy", "Wh", 1.0, "total"), ("sensor", "energy", "Wh", "total_increasing")),
    (Channel("water", "l", 1.0, "total"), ("sensor", "water", "L", "total_increasing")),
    (Channel("wind_run", "m", 0.667, "total"), ("sensor", "distance", "m", "total_increasing")),
    (Channel("uptime", "s", 1.0, "total"), ("sensor", "duration", "s", "total_increasing")),
    (Channel("pm1", "µg/m³", 1.0), ("sensor", "pm1", "μg/m³", "measurement")),
    (Channel("pm10", "µg/m³", 1.0), ("sensor", "pm10", "μg/m³", "measurement")),
    (Channel("pm2_5", "µg/m³", 0.1), ("sensor", "pm25", "μg/m³", "measurement")),
    (Channel("pm4", "µg/m³", 1.0), ("sensor", "pm4", "μg/m³", "measurement")),
    (Channel("door_open", kind="binary"), ("binary_sensor", "door", None, None)),
    (Channel("float_switch", kind="binary"), ("binary_sensor", None, None, None)),
])
def test_classify(channel: Channel, expected: tuple[str, str | None, str | None, str | None]) -> None:
    assert ha.classify(channel) == expected


@pytest.mark.parametrize(("resolution", "digits"), [(0.01, 2), (0.0625, 2), (175.72 / 2**14, 2), (1.0, 0),
                                                    (5.0, 0), (0.1, 1), (None, None), (0.0, None)])
def test_display_precision_follows_the_resolution(resolution: float | None, digits: int | None) -> None:
    assert ha.precision(resolution) == digits


def test_object_ids_are_sanitised_and_keys_are_short_stable_and_distinct() -> None:
    assert ha.object_id("attic.1 °C") == "attic_1__C"
    assert ha.discovery_topic("homeassistant", "pi/4") == "homeassistant/device/sensord_pi_4/config"
    ids = [f"s{i}\0temperature" for i in range(100)]
    keys = ha.short_keys(ids)
    assert len(set(keys.values())) == 100 and all(len(k) >= 2 and k.isalnum() for k in keys.values())
    assert ha.short_keys(ids) == keys  # no randomness: stable across restarts
    assert ha.short_keys(ids[:1]) == {ids[0]: keys[ids[0]][:2]}


def test_two_channels_that_collide_once_sanitised_are_a_check_error(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    sensors = "".join(f'[[sensor]]\nname = "{name}"\ntype = "sim"\ninterval_s = 1\n' for name in ("a.b", "a_b"))
    cfg.write_text(f'[node]\nid = "n1"\n[plugins]\ndirs = []\n{sensors}')
    with pytest.raises(ConfigError) as err:
        startup.load_runnable(str(cfg), entry_points=False)
    assert str(err.value) == (f'{cfg}: homeassistant: sensor "a_b" channel "value" and sensor "a.b" channel "value" '
                              'would both be "a_b_value" in Home Assistant (only A-Z a-z 0-9 _ - are kept); rename '
                              "one of the sensors, or set [homeassistant] discovery = false")
    cfg.write_text(cfg.read_text().replace("[plugins]", "[homeassistant]\ndiscovery = false\n[plugins]"))
    assert startup.load_runnable(str(cfg), entry_points=False).config.homeassistant.discovery is False


def test_the_discovery_prefix_is_checked() -> None:
    with pytest.raises(ValueError, match="discovery_prefix: expected a topic without wildcards"):
        HomeAssistantConfig(discovery_prefix="ha/#")


def test_the_device_message() -> None:
    entities = ha.entities("n1", [("c0", Channel("temperature", "°C", 0.01))])
    msg = ha.with_removed(ha.discovery_message(node="n1", entities=entities, status_topic="sensord/n1/status",
                                               state_topic=STATE, version="1.2",
                                               model="Raspberry Pi 4 Model B Rev 1.4"),
                          {"n1_old": "sensor", "c0_temperature": "sensor"})
    assert msg["dev"] == {"ids": ["sensord_n1"], "name": "n1", "mdl": "Raspberry Pi 4 Model B Rev 1.4", "sw": "1.2"}
    assert msg["o"] == {"name": "sensord", "sw": "1.2", "url": ha.SUPPORT_URL}
    assert (msg["avty_t"], msg["pl_avail"], msg["pl_not_avail"], msg["stat_t"]) == \
        ("sensord/n1/status", "online", "offline", STATE)
    c0 = msg["cmps"]["c0_temperature"]
    key = entities[0].key
    assert c0 == {"p": "sensor", "name": "c0 temperature", "uniq_id": "sensord_n1_c0_temperature",
                  "dev_cla": "temperature", "unit_of_meas": "°C", "stat_cla": "measurement", "sug_dsp_prc": 2,
                  "val_tpl": f"{{{{ value_json['{key}'] if '{key}' in value_json else '' }}}}"}
    assert msg["cmps"]["n1_old"] == {"p": "sensor"}  # the removal form
    assert len(msg["cmps"]["c0_temperature"]) > 1  # an announced component is never stubbed
    assert ha.announced(msg) == {e.component_id: "sensor" for e in entities}  # stubs are not announced
    assert msg["cmps"]["sensord_uptime"]["ent_cat"] == "diagnostic"
    assert "timestamp_custom" in msg["cmps"]["sensord_last_delivery"]["val_tpl"]


def test_the_device_model_comes_from_the_device_tree(tmp_path: Path) -> None:
    (tmp_path / "model").write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\0")
    assert ha.device_model(str(tmp_path / "model")) == "Raspberry Pi Zero 2 W Rev 1.0"
    assert ha.device_model(str(tmp_path / "missing")) == ha.DEFAULT_MODEL


def test_the_state_message_carries_what_changed() -> None:
    entities = ha.entities("n1", [("c0", Channel("temperature", "°C", 0.01)), ("d", Channel("door", kind="binary")),
                                  ("n", Channel("count", "", 1.0, "total"))])
    t, d, n = (e.key for e in entities[:3])
    tracker = ha.StateTracker(entities)
    assert tracker.message({}) is None
    tracker.observe("d", "door", True)
    tracker.observe("n", "count", 7)
    tracker.observe("other", "x", 1)  # not announced: ignored
    tracker.observe("c0", "temperature", "21.5")  # not a number (the pipeline drops those first): ignored
    tracker.observe("c0", "temperature", math.inf)
    tracker.observe("c0", "temperature", 21.3749999)
    assert json.loads(tracker.message({"_u": 5}) or b"") == {t: 21.37, d: True, n: 7, "_u": 5}
    tracker.observe("c0", "temperature", 21.37)
    tracker.observe("d", "door", False)
    tracker.observe("n", "count", math.nan)  # JSON has no NaN: the last good value stays
    assert json.loads(tracker.message({"_u": 5}) or b"") == {d: False}
    assert tracker.message({"_u": 5}) is None
    assert json.loads(tracker.message({"_u": 6}, everything=True) or b"") == {t: 21.37, d: False, n: 7, "_u": 6}


# -- when they go out ------------------------------------------------------------------------------

class Node:
    """A publisher with an announcer, a real buffer in `tmp_path` and the fake broker."""

    def __init__(self, tmp_path: Path, broker: FakeBroker, *, channels: list[tuple[str, Channel]] | None = None,
                 discovery: bool = True, mode: str = "persistent", state_file: Path | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = Config(file="test.toml", node=NodeConfig(id="n1"),
                             mqtt=MqttConfig(reconnect_max_s=2.0, mode=mode),  # type: ignore[arg-type]
                             batch=BatchConfig(max_age_s=0.5),
                             buffer=BufferConfig(path=str(tmp_path / "buffer.db")),
                             homeassistant=HomeAssistantConfig(discovery=discovery))
        self.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 24, clock=lambda: 0.0)
        self.broker = broker
        self.wake = asyncio.Event()
        self.channels = channels if channels is not None else [("c0", Channel("temperature", "°C", 0.01)),
                                                               ("c1", Channel("humidity", "%", 0.01))]
        self.announcer = Announcer(self.config, state_file=state_file or tmp_path / "homeassistant.json",
                                   state_topic=STATE,
                                   status_topic="sensord/n1/status", version="1.0", model="test board",
                                   monotonic=monotonic)
        self.announcer.configure(self.config, state_topic=STATE, status_topic="sensord/n1/status",
                                 channels=lambda: self.channels)
        self.publisher = Publisher(self.config, topics=Topics("sensord", "n1"), buffer=self.buffer, wake=self.wake,
                                   meta=lambda: {}, notifier=Notifier({}), connection_factory=broker.connection,
                                   announcer=self.announcer)
        self.task: asyncio.Task[None] | None = None
        self.counter = 0

    def seal(self, values: dict[tuple[str, str], float]) -> None:
        samples = [Sample(s, q, v, "", 1_700_000_000.0 + self.counter) for (s, q), v in values.items()]
        self.counter += 1
        self.buffer.seal(lambda seq: encode_batch("n1", seq, samples), readings=len(samples), first_ts=samples[0].ts)
        self.announcer.observe(samples)
        self.wake.set()

    def start(self) -> Node:
        self.task = asyncio.create_task(self.publisher.run())
        return self

    async def stop(self) -> None:
        await self.publisher.finish(timeout_s=1.0, offline=True)
        self.buffer.close()


@pytest.fixture
def broker(fake_mqtt_broker: FakeBroker) -> FakeBroker:
    return fake_mqtt_broker


@pytest.fixture(autouse=True)
def _log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO, logger="sensord")
    yield


def configs(broker: FakeBroker) -> list[dict[str, Any]]:
    return [json.loads(p) if p else {} for p in broker.payloads(CONFIG_TOPIC)]


def states(broker: FakeBroker) -> list[dict[str, Any]]:
    return [json.loads(p) for p in broker.payloads(STATE) if p]


def key(node: Node, sensor: str, quantity: str) -> str:
    return next(e.key for e in ha.entities("n1", node.channels) if e.channel == (sensor, quantity))


def test_discovery_once_then_state_after_each_delivery(tmp_path: Path, broker: FakeBroker) -> None:
    now = [1000.0]

    async def main() -> None:
        node = Node(tmp_path, broker, monotonic=lambda: now[0]).start()
        node.seal({("c0", "temperature"): 21.5, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 1)
        now[0] += DISCOVERY_GRACE_S  # Home Assistant has long processed the device message
        node.seal({("c0", "temperature"): 21.6, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 2)
        await node.stop()
        (config,) = configs(broker)
        assert set(config["cmps"]) == {"c0_temperature", "c1_humidity", "sensord_backlog", "sensord_readings_dropped",
                                       "sensord_last_delivery", "sensord_uptime"}
        message = next(m for m in broker.published if m.topic == CONFIG_TOPIC)
        assert (message.qos, message.retain) == (1, True)
        assert broker.retained[STATE].retain
        t, h = key(node, "c0", "temperature"), key(node, "c1", "humidity")
        first, second = states(broker)
        assert (first[t], first[h], first["_b"], first["_x"]) == (21.5, 40.0, 0, 0)
        assert isinstance(first["_d"], int) and isinstance(first["_u"], int)
        assert second[t] == 21.6 and h not in second  # humidity did not change
        order = [m.topic for m in broker.published]
        assert order.index(CONFIG_TOPIC) < order.index(STATE)

    run(main())


def test_state_messages_are_whole_for_a_while_after_a_device_message(tmp_path: Path, broker: FakeBroker) -> None:
    # Home Assistant subscribes to the state topic once it has processed the device message and
    # then gets only the retained state message: a value that does not change must be in it.
    now = [1000.0]

    async def main() -> None:
        node = Node(tmp_path, broker, monotonic=lambda: now[0]).start()
        node.seal({("c0", "temperature"): 21.5, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 1)
        now[0] += DISCOVERY_GRACE_S - 1
        node.seal({("c0", "temperature"): 21.6, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 2)
        now[0] += 2  # past the grace: only what changed
        node.seal({("c0", "temperature"): 21.7, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 3)
        await node.stop()
        t, h = key(node, "c0", "temperature"), key(node, "c1", "humidity")
        _, second, third = states(broker)
        assert (second[t], second[h]) == (21.6, 40.0)  # whole: humidity too, unchanged
        assert json.loads(broker.retained[STATE].payload)[t] == 21.7
        assert third[t] == 21.7 and h not in third

    run(main())


def test_a_restart_with_the_same_channels_publishes_no_discovery(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        for run_number in range(2):
            node = Node(tmp_path, broker).start()
            node.seal({("c0", "temperature"): 21.5})
            await broker.wait_for(lambda n=run_number: len(states(broker)) == n + 1)
            await node.stop()
        assert len(configs(broker)) == 1
        assert json.loads((tmp_path / "homeassistant.json").read_text())["topic"] == CONFIG_TOPIC

    run(main())


def test_a_removed_channel_is_removed_from_home_assistant(tmp_path: Path, broker: FakeBroker,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker).start()
        node.seal({("c0", "temperature"): 21.5})
        await broker.wait_for(lambda: len(states(broker)) == 1)
        await node.stop()
        node = Node(tmp_path, broker, channels=[("c0", Channel("temperature", "°C", 0.01))]).start()
        node.seal({("c0", "temperature"): 21.5})
        await broker.wait_for(lambda: len(configs(broker)) == 2 and len(states(broker)) == 2)
        node.seal({("c0", "temperature"): 21.7})
        await broker.wait_for(lambda: len(states(broker)) == 3)
        await node.stop()
        assert configs(broker)[1]["cmps"]["c1_humidity"] == {"p": "sensor"}
        assert "c1_humidity" not in json.loads((tmp_path / "homeassistant.json").read_text())["message"]["cmps"]
        assert len(configs(broker)) == 2  # the removal went out once
        assert "Home Assistant discovery: removed c1_humidity" in caplog.text

    run(main())


def test_home_assistant_announcing_itself_gets_discovery_and_every_value_again(tmp_path: Path,
                                                                               broker: FakeBroker) -> None:
    async def main() -> None:
        broker.publish("homeassistant/status", b"online", retain=True)  # retained: no reason to publish again
        node = Node(tmp_path, broker).start()
        node.seal({("c0", "temperature"): 21.5, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 1)
        node.seal({("c0", "temperature"): 21.6, ("c1", "humidity"): 40.0})
        await broker.wait_for(lambda: len(states(broker)) == 2)
        assert len(configs(broker)) == 1
        broker.publish("homeassistant/status", b"online")  # Home Assistant (re)started
        await broker.wait_for(lambda: len(configs(broker)) == 2 and len(states(broker)) == 3)
        await node.stop()
        assert configs(broker)[1] == configs(broker)[0]
        assert {key(node, "c0", "temperature"), key(node, "c1", "humidity")} <= set(states(broker)[2])

    run(main())


def test_discovery_switched_off_clears_what_was_announced(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker).start()
        node.seal({("c0", "temperature"): 21.5})
        await broker.wait_for(lambda: len(states(broker)) == 1)
        await node.stop()
        assert CONFIG_TOPIC in broker.retained
        node = Node(tmp_path, broker, discovery=False).start()
        node.seal({("c0", "temperature"): 21.6})
        await broker.wait_for(lambda: CONFIG_TOPIC not in broker.retained and STATE not in broker.retained)
        node.seal({("c0", "temperature"): 21.7})
        await broker.wait_for(lambda: len(broker.payloads("sensord/n1/data")) == 3)
        await node.stop()
        assert broker.payloads(CONFIG_TOPIC)[-1] == b"" and len(broker.payloads(CONFIG_TOPIC)) == 2  # cleared once
        assert not (tmp_path / "homeassistant.json").exists()
        assert "homeassistant/status" not in [t for c in broker.connections for t in c._subscriptions]

    run(main())


def test_a_broker_refusing_the_discovery_topic_costs_one_line_and_no_data(tmp_path: Path, broker: FakeBroker,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        broker.refuse_topic("homeassistant/", 0x87)  # not authorized
        node = Node(tmp_path, broker).start()
        for i in range(3):
            node.seal({("c0", "temperature"): 21.0 + i})
        await broker.wait_for(lambda: len(broker.payloads("sensord/n1/data")) == 3)
        node.seal({("c0", "temperature"): 25.0})
        await broker.wait_for(lambda: len(broker.payloads("sensord/n1/data")) == 4)
        await node.stop()
        warned = [r.getMessage() for r in caplog.records if r.name == "sensord.mqtt.discovery"
                  and r.levelno == logging.WARNING]
        assert len(warned) == 1 and "set [homeassistant] discovery = false" in warned[0], warned
        assert node.buffer.stats  # the buffer was emptied: every batch delivered

    run(main())


def test_duty_cycle_publishes_discovery_only_when_it_changed(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker, mode="duty_cycle").start()
        for i in range(3):  # three wake-ups
            node.seal({("c0", "temperature"): 21.0 + i})
            await broker.wait_for(lambda n=i: len(states(broker)) == n + 1)
            await broker.wait_for(lambda n=i: len(broker.disconnects) == n + 1)
        await node.stop()
        assert len(broker.connects) >= 3 and len(configs(broker)) == 1
        assert all(not c._subscriptions for c in broker.connections)  # asleep between wake-ups: no birth to hear

    run(main())


# -- hostile: a broker that never answers, a damaged or unwritable state file ---------------------

def test_a_broker_that_never_acknowledges_discovery_keeps_the_link_and_the_batches(
        tmp_path: Path, broker: FakeBroker, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        broker.lose_pubacks("homeassistant/")  # the PUBACK never comes: the publish times out

        def warned() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "sensord.mqtt.discovery"]

        node = Node(tmp_path, broker).start()
        node.seal({("c0", "temperature"): 21.0})
        for _ in range(500):  # the publish times out after 30 ms (the link's 30 s, scaled)
            if warned():
                break
            await asyncio.sleep(0.01)
        for i in range(1, 4):
            node.seal({("c0", "temperature"): 21.0 + i})
            await broker.wait_for(lambda n=i: len(broker.payloads("sensord/n1/data")) == n + 1)
        await node.stop()
        assert len(broker.connects) == 1  # discovery never took the batches' link down
        assert [m.topic for m in broker.attempts].count(CONFIG_TOPIC) == 1  # nor tried again on this connection
        assert len(warned()) == 1 and "tried again on the next connection" in warned()[0], warned()
        assert not (tmp_path / "homeassistant.json").exists()  # not published: announced again next time

    run(main())


def test_a_damaged_state_file_means_one_warning_and_discovery_once_more(
        tmp_path: Path, broker: FakeBroker, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        (tmp_path / "homeassistant.json").write_bytes(b'{"topic": "homeassistant/dev\x00\xff')  # cut short
        node = Node(tmp_path, broker).start()
        node.seal({("c0", "temperature"): 21.5})
        await broker.wait_for(lambda: len(states(broker)) == 1)
        await node.stop()
        assert len(configs(broker)) == 1
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and f"cannot read {tmp_path / 'homeassistant.json'}" in warned[0], warned
        assert json.loads((tmp_path / "homeassistant.json").read_text())["topic"] == CONFIG_TOPIC  # rewritten

    run(main())


def test_a_state_file_that_cannot_be_written_costs_one_warning(
        tmp_path: Path, broker: FakeBroker, caplog: pytest.LogCaptureFixture) -> None:
    """As on a full disk: discovery goes out, the batches go on, and it is published again at the
    next start (nothing records that it went out)."""
    async def main() -> None:
        unwritable = tmp_path / "gone" / "homeassistant.json"
        node = Node(tmp_path, broker, state_file=unwritable).start()
        for i in range(3):
            node.seal({("c0", "temperature"): 21.0 + i})
            await broker.wait_for(lambda n=i: len(states(broker)) == n + 1)
        await node.stop()
        assert len(configs(broker)) == 1 and len(broker.payloads("sensord/n1/data")) == 3
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and f"cannot write {unwritable}" in warned[0], warned

    run(main())


def test_a_stop_while_discovery_is_in_flight_still_delivers_the_last_batch(
        tmp_path: Path, broker: FakeBroker, caplog: pytest.LogCaptureFixture) -> None:
    """The stop's final batch is sealed while the loop waits for the discovery PUBACK: the loop
    must drain once more before it parks, or the batch waits out the stop timeout (a race seen
    once in a fresh-clone run of test_daemon's SIGHUP test)."""
    async def main() -> None:
        broker.hold_pubacks("homeassistant/")
        node = Node(tmp_path, broker).start()
        node.seal({("c0", "temperature"): 21.0})
        await broker.wait_for(lambda: CONFIG_TOPIC in [m.topic for m in broker.attempts])
        node.seal({("c0", "temperature"): 22.0})  # the stop's final seal
        stopping = asyncio.create_task(node.publisher.finish(timeout_s=1.0, offline=True))
        await asyncio.sleep(0)
        broker.release()
        await stopping
        node.buffer.close()
        assert len(broker.payloads("sensord/n1/data")) == 2
        assert "undelivered" not in caplog.text

    run(main())
