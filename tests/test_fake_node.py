"""The fake node as a user meets it: `sensord detect --fake` prints a configuration that
`sensord check` accepts and `sensord read --fake` reads, with every value in its chip's physical
range. `tests/test_example_plugin.py` runs the same round trip with a plugin's chip model added."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (quantity pattern, unit) -> (low, high): what the built-in chips can physically report.
PHYSICAL_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("temperature", "°C"): (-40.0, 125.0),  # the operating range of every chip here
    ("humidity", "%"): (0.0, 100.0),
    ("pressure", "hPa"): (300.0, 1100.0),  # BMP280/BME280 operating range
    ("illuminance", "lx"): (0.0, math.inf),
    ("carbon_dioxide", "ppm"): (0.0, 40000.0),  # SCD4x output range
    ("voc_raw", ""): (0.0, 65535.0),  # SGP40: 16-bit SRAW ticks
    ("gas_resistance", "Ω"): (0.0, 1e9),  # BME680: a positive resistance, MΩ at most in clean air
    ("voc_index", ""): (1.0, 500.0),  # Sensirion's VOC index scale
    ("voltage", "V"): (0.0, 36.0),  # bus voltage: INA219 26 V, INA226 and INA260 36 V
    ("current", "A"): (-20.0, 20.0),  # INA219 ±3.2 A (0.1 Ω), INA226 ±20 A (its defaults), INA260 ±15 A
    ("power", "W"): (0.0, 36.0 * 20.0),
    (r"voltage_a[0-3](-a[0-3])?", "V"): (-6.144, 6.144),  # ADS1115: the widest full-scale range
    ("voltage_1", "V"): (0.0, 26.0),  # INA219 on the kernel's ina2xx driver (hwmon): in1, the bus voltage
    ("full_spectrum|infrared", ""): (0.0, 65535.0),  # TSL2591: 16-bit ADC counts
    ("pm1|pm10", "µg/m³"): (0.0, 1000.0),  # PMS5003: effective range 0-500, maximum 1000 µg/m³
    ("pm2_5", "µg/m³"): (0.0, 1000.0),  # PMS5003; SDS011: 0.0-999.9
    (r"particles_\w+", "/dL"): (0.0, 65535.0),  # PMS5003 counts per 0.1 L, 16-bit
}


def built_in_models() -> list[type[Any]]:
    """The chip models the built-in drivers register, in load order."""
    from sensord.plugins import collect_device_models, get_plugin_manager

    return collect_device_models(get_plugin_manager(entry_points=False))


def sensord_cmd(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m sensord ARGS` as a user runs it, without $SENSORD_CONFIG, plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if k != "SENSORD_CONFIG"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "sensord", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def physical_range(quantity: str, unit: str) -> tuple[float, float]:
    """The range a reading of `quantity` in `unit` must lie in; AssertionError for one with none."""
    for (pattern, range_unit), bounds in PHYSICAL_RANGES.items():
        if unit == range_unit and re.fullmatch(pattern, quantity):
            return bounds
    raise AssertionError(f"no physical range for {quantity!r} in {unit!r}: add one to PHYSICAL_RANGES")


def detect_check_read(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]],
                                                                                   list[dict[str, Any]]]:
    """Detect on the fake node, write the config, check it, read it. Returns the `[[sensor]]`
    tables and the readings (JSON rows), after asserting every command succeeded, every sensor
    was read and every value is in its physical range."""
    (tmp_path / "plugins.toml").write_text("[plugins]\ndirs = []\n")  # no drop-ins from /etc
    detected = sensord_cmd("detect", "--fake", "-c", str(tmp_path / "plugins.toml"), env=env, cwd=tmp_path)
    assert detected.returncode == 0, detected.stderr
    config = tmp_path / "detected.toml"
    config.write_text('[node]\nid = "fake"\n\n[plugins]\ndirs = []\n\n' + detected.stdout)
    sensors = tomllib.loads(config.read_text())["sensor"]

    checked = sensord_cmd("check", "-c", str(config), env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"sensors: {len(sensors)} ({len(sensors)} enabled)" in checked.stdout

    read = sensord_cmd("read", "--fake", "--json", "-c", str(config), env=env, cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    rows = [json.loads(line) for line in read.stdout.splitlines()]
    assert {r["sensor"] for r in rows} == {s["name"] for s in sensors}
    for row in rows:
        low, high = physical_range(row["quantity"], row["unit"])
        assert low <= row["value"] <= high, row
    return sensors, rows


def test_detected_config_checks_and_reads_in_range(tmp_path: Path) -> None:
    sensors, rows = detect_check_read(tmp_path)
    assert {s["type"] for s in sensors} >= {"bme280", "bmp280", "sht3x", "sht4x", "aht20", "htu21d", "ina219",
                                            "veml7700", "tsl2591", "bme680", "bmp388", "bmp390", "mcp9808", "hdc1080",
                                            "ina226", "ina260", "ads1115", "scd4x", "scd30", "sgp40", "ds18b20", "iio",
                                            "hwmon"}
    # Both fixed at 0x40: the HDC1080 (loaded first) on bus 1, the HTU21D on the second bus.
    assert {(s["type"], s["bus"], s["address"]) for s in sensors if s["type"] in ("hdc1080", "htu21d")} == \
        {("hdc1080", 1, 0x40), ("htu21d", 3, 0x40)}
    # The INA226 and INA260 have address pins: the next free addresses after the INA219's.
    assert {(s["type"], s["bus"], s["address"]) for s in sensors if s["type"] in ("ina226", "ina260")} == \
        {("ina226", 1, 0x42), ("ina260", 1, 0x43)}
    assert {s["device"] for s in sensors if s["type"] in ("iio", "hwmon")} == {"dht11", "si7020", "cpu_thermal",
                                                                             "ina219"}
    assert {r["quantity"] for r in rows} >= {"temperature", "humidity", "pressure", "carbon_dioxide", "voltage",
                                             "current", "power"}


# -- plugins' chip models (the sensord_register_device_models hook) --------------------------------

MODEL_PLUGIN = '''
import sensord
from sensord.testing import RegisterMapDevice

class {name}(RegisterMapDevice):
    DEFAULT_ADDRESS = {address}

    def __init__(self, *, address=None):
        super().__init__(address=address, registers={{0x00: 0xA1}})

@sensord.hookimpl
def sensord_register_device_models():
    return [{name}]
'''


def test_plugin_models_are_collected_in_load_order(tmp_path: Path) -> None:
    from sensord.plugins import get_plugin_manager

    (tmp_path / "a_chip.py").write_text(MODEL_PLUGIN.format(name="AModel", address="0x10"))
    (tmp_path / "b_chip.py").write_text(MODEL_PLUGIN.format(name="BModel", address="0x76"))
    host = get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert host.device_models is not None  # collected at start-up: a plugin's bad model fails there
    plugin_models = [m for m in host.device_models if host.device_model_plugin[m] in ("a_chip", "b_chip")]
    assert [m.__name__ for m in plugin_models] == ["AModel", "BModel"]
    assert host.device_models[-2:] == plugin_models  # after the built-in drivers' models
    assert {m.__name__: host.device_model_plugin[m] for m in plugin_models} == {"AModel": "a_chip",
                                                                               "BModel": "b_chip"}
    assert get_plugin_manager(entry_points=False).device_models is None  # built-in only: not at start-up


@pytest.mark.parametrize(("body", "message"), [
    ("return 3", "sensord_register_device_models must return a list of I2CDeviceModel classes, returned int"),
    ("return [int]", "sensord_register_device_models returned <class 'int'>, expected a subclass of "
                     "sensord.testing.I2CDeviceModel"),
    ("raise KeyError('x')", "sensord_register_device_models raised KeyError: 'x'"),
    ("return [NoAddress]", "sensord_register_device_models: NoAddress.DEFAULT_ADDRESS must be an I2C address "
                           "from 0x03 to 0x77, found None"),
    ("return [Reserved]", "sensord_register_device_models: Reserved.DEFAULT_ADDRESS must be an I2C address "
                          "from 0x03 to 0x77, found 120"),
    ("return [NeedsMore]", "sensord_register_device_models: NeedsMore must build with only address=: "
                           "missing a required argument: 'temperature_c'"),
    ("return [Good, Good]", 'sensord_register_device_models: device model Good is already registered by '
                            'plugin "odd"'),
])
def test_bad_device_model_registrations_name_the_plugin(tmp_path: Path, body: str, message: str) -> None:
    from sensord.errors import PluginError
    from sensord.plugins import get_plugin_manager

    (tmp_path / "odd.py").write_text(textwrap.dedent(f"""\
        import sensord
        from sensord.testing import I2CDeviceModel

        class NoAddress(I2CDeviceModel):
            pass

        class Reserved(I2CDeviceModel):
            DEFAULT_ADDRESS = 0x78

        class NeedsMore(I2CDeviceModel):
            DEFAULT_ADDRESS = 0x20

            def __init__(self, *, address=None, temperature_c):
                super().__init__(address=address)

        class Good(I2CDeviceModel):
            DEFAULT_ADDRESS = 0x20

        @sensord.hookimpl
        def sensord_register_device_models():
            {body}
        """))
    with pytest.raises(PluginError) as info:
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert str(info.value) == f'plugin "odd": {message}'


@pytest.mark.parametrize(("default", "taken", "expected"), [
    (0x18, set(), 0x18),
    (0x18, {0x18, 0x19}, 0x1A),
    (0x77, {0x77}, 0x03),  # wraps
    (0x76, {0x76, 0x77, 0x03}, 0x04),
    (0x40, set(range(0x03, 0x78)), None),
])
def test_next_free_address(default: int, taken: set[int], expected: int | None) -> None:
    from sensord.testing.fakenode import next_free_address

    assert next_free_address(default, taken) == expected


def test_plugin_models_join_the_built_in_ones() -> None:
    from sensord.testing import RegisterMapDevice
    from sensord.testing.fakenode import fake_node_bus

    class FreeModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x50  # EEPROMs': no built-in model there

    class ClashModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x76  # a BMP280's, and 0x77 is a BME280's: wraps to 0x03

    built_in = fake_node_bus(built_in_models()).devices
    bus = fake_node_bus([*built_in_models(), FreeModel, ClashModel])
    placed = {addr: type(model).__name__ for addr, model in bus.devices.items() if addr not in built_in}
    assert placed == {0x50: "FreeModel", 0x03: "ClashModel"}
    assert bus.devices[0x03].address == 0x03  # built with address=
    assert {a: type(m) for a, m in bus.devices.items() if a in built_in} == {a: type(m) for a, m in built_in.items()}


def test_fake_hardware_has_the_hosts_models_and_advances_their_clocks() -> None:
    from sensord.config import Config
    from sensord.hardware import Hardware
    from sensord.plugins import PluginHost
    from sensord.startup import make_hardware
    from sensord.testing import FakeI2CBus, I2CDeviceModel

    def fake_bus(hardware: Hardware) -> FakeI2CBus:
        bus = hardware.i2c(1).bus
        assert isinstance(bus, FakeI2CBus)
        return bus

    class Clocked(I2CDeviceModel):
        DEFAULT_ADDRESS = 0x50
        waited = 0.0

        def advance(self, seconds: float) -> None:
            type(self).waited += seconds

    host = PluginHost(pm=None, device_models=[Clocked])  # type: ignore[arg-type]
    hardware = make_hardware(Config("fake.toml"), fake=True, host=host)
    try:
        assert isinstance(fake_bus(hardware).devices[0x50], Clocked)
        hardware.sleep(0.25)
        assert Clocked.waited == 0.25
    finally:
        hardware.close()
    plain = make_hardware(Config("fake.toml"), fake=True)
    try:
        assert 0x50 not in fake_bus(plain).devices
    finally:
        plain.close()


def test_a_model_that_fails_to_import_is_an_error_naming_the_plugin(tmp_path: Path) -> None:
    from sensord.errors import PluginError
    from sensord.plugins import get_plugin_manager

    (tmp_path / "broken_models.py").write_text(textwrap.dedent("""\
        import sensord

        @sensord.hookimpl
        def sensord_register_device_models():
            from fake_node_no_such_model_module import Model  # as a built-in driver imports its model

            return [Model]
        """))
    with pytest.raises(PluginError) as info:
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert str(info.value) == ('plugin "broken_models": sensord_register_device_models raised '
                               "ModuleNotFoundError: No module named 'fake_node_no_such_model_module'")


def test_the_fake_node_has_one_of_each_uart_sensor_on_its_serial_ports() -> None:
    """Serial sensors are not detected (nothing to probe without a command): config/fake.toml
    names them on the fake node's ports, and each reads in its physical range."""
    read = sensord_cmd("read", "--fake", "--json", "-c", str(ROOT / "config" / "fake.toml"))
    assert read.returncode == 0, read.stderr
    rows = [json.loads(line) for line in read.stdout.splitlines()]
    uart_rows = [r for r in rows if r["sensor"] in ("balcony", "street", "living_room_co2")]
    assert {(r["sensor"], r["quantity"]) for r in uart_rows} >= {
        ("balcony", "pm1"), ("balcony", "pm2_5"), ("balcony", "pm10"), ("balcony", "particles_0_3um"),
        ("street", "pm2_5"), ("street", "pm10"), ("living_room_co2", "carbon_dioxide")}
    for row in uart_rows:
        low, high = physical_range(row["quantity"], row["unit"])
        assert low <= row["value"] <= high, row
