"""The `hwmon` driver on a fake `/sys/class/hwmon` tree, with values in the units of
Documentation/hwmon/sysfs-interface.rst and the errors hwmon drivers return."""

from __future__ import annotations

import errno

import pytest
from driver_kit import example_config

import sensord_plugins.hwmon as module
from sensord import ConfigError, Reading, SensorError
from sensord.config import parse_config
from sensord.hardware import Hardware
from sensord.testing.sysfs import FakeSysfs, cpu_thermal_attributes, ina219_attributes, lm75_attributes
from sensord_plugins.hwmon import Hwmon, HwmonConfig, channel_spec, parse_channel


def make(sysfs: FakeSysfs, sleeps: list[float] | None = None, **options: object) -> Hwmon:
    hardware = Hardware(sysfs=sysfs, sleep=(sleeps.append if sleeps is not None else lambda _s: None))
    return Hwmon(HwmonConfig(**options), name="case", hardware=hardware)  # type: ignore[arg-type]


def opened(sysfs: FakeSysfs, sleeps: list[float] | None = None, **options: object) -> Hwmon:
    sensor = make(sysfs, sleeps, **options)
    sensor.open()
    return sensor


def test_docstring_example_parses() -> None:
    (spec,) = example_config(module, Hwmon).sensors
    assert spec.options == HwmonConfig(device="lm75", channels=["temp1"])
    assert spec.options.retry_delay_s == 0.1


@pytest.mark.parametrize(("keys", "message"), [
    ({"device": "pwmfan", "channels": ["pwm1"]}, 'channels: "pwm1" is not a hwmon channel sensord reads; expected '
                                                 "one of temp<n>, in<n>, curr<n>, power<n>, energy<n>, humidity<n>, "
                                                 "fan<n>, e.g. temp1"),
    ({"device": "lm75", "channels": ["temp"]}, 'channels: "temp" is not a hwmon channel'),
    ({"device": "ina219", "channels": ["in0", "in1=voltage"]}, '"in1=voltage" and "in0" would both be "voltage"'),
    ({"path": "hwmon0", "index": 0}, "of_node: expected with device, not with path"),
])
def test_config_errors(keys: dict[str, object], message: str) -> None:
    table = {"name": "t", "type": "hwmon", "interval_s": 30, **keys}
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.") as excinfo:
        parse_config({"sensor": [table]}, "x.toml", {"hwmon": Hwmon})
    assert message in str(excinfo.value)


@pytest.mark.parametrize(("name", "quantity", "unit", "resolution", "kind"), [
    ("temp1", "temperature", "°C", 0.001, "measurement"), ("temp2", "temperature_2", "°C", 0.001, "measurement"),
    ("in0", "voltage", "V", 0.001, "measurement"), ("in1", "voltage_1", "V", 0.001, "measurement"),
    ("curr1", "current", "A", 0.001, "measurement"), ("power1", "power", "W", 1e-6, "measurement"),
    ("energy1", "energy", "Wh", None, "total"), ("humidity1", "humidity", "%", 0.001, "measurement"),
    ("fan1", "fan_speed", "rpm", 1.0, "measurement"),
])
def test_quantities_and_units(name: str, quantity: str, unit: str, resolution: float | None, kind: str) -> None:
    spec = channel_spec(name)
    assert (spec.quantity, spec.unit, spec.resolution, spec.kind) == (quantity, unit, resolution, kind)


@pytest.mark.parametrize("name", ["pwm1", "temp", "in", "intrusion0", "Temp1", "temp1_input"])
def test_not_channels(name: str) -> None:
    assert parse_channel(name) is None


def test_lm75(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("lm75", lm75_attributes(23.5), of_node="/soc/i2c@7e804000/lm75@48")
    sensor = opened(fake_sysfs, device="lm75")
    assert sensor.read() == [Reading("temperature", 23.5, "°C")]  # the limits temp1_max... are not channels
    assert sensor.describe() == 'sensor "case" (hwmon lm75 hwmon0)'


def test_ina219_units_and_a_renamed_channel(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("ina219", ina219_attributes(bus_v=12.016, current_a=-0.25))
    sensor = opened(fake_sysfs, device="ina219")
    assert sensor.read() == [Reading("voltage", -0.025, "V"), Reading("voltage_1", 12.016, "V"),
                             Reading("current", -0.25, "A"), Reading("power", 3.004, "W")]
    renamed = opened(fake_sysfs, device="ina219", channels=["in1=voltage", "curr1", "power1"])
    assert [(c.quantity, c.unit, c.resolution) for c in renamed.channels()] == [
        ("voltage", "V", 0.001), ("current", "A", 0.001), ("power", "W", 1e-6)]
    assert renamed.read() == [Reading("voltage", 12.016, "V"), Reading("current", -0.25, "A"),
                              Reading("power", 3.004, "W")]


def test_every_type(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("chip", {"temp1_input": "-12500", "temp2_input": "85000", "humidity1_input": "45500",
                                  "fan1_input": "1830", "energy1_input": "7200000000", "power1_average": "1500000",
                                  "pwm1": "128"})
    assert opened(fake_sysfs, device="chip").read() == [
        Reading("temperature", -12.5, "°C"), Reading("temperature_2", 85.0, "°C"),
        Reading("power", 1.5, "W"), Reading("energy", 2.0, "Wh"), Reading("humidity", 45.5, "%"),
        Reading("fan_speed", 1830, "rpm")]


def test_input_wins_over_average(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("chip", {"power1_input": "2000000", "power1_average": "1000000"})
    assert opened(fake_sysfs, device="chip").read() == [Reading("power", 2.0, "W")]


def test_attributes_on_the_parent_device(fake_sysfs: FakeSysfs) -> None:
    """Drivers from before hwmon_device_register_with_info() keep name and values on the parent."""
    dev = fake_sysfs.add_hwmon("x", {})
    fake_sysfs.delete(f"{dev}/name")
    fake_sysfs.set(f"{dev}/device/name", "lm75")
    fake_sysfs.set(f"{dev}/device/temp1_input", "31000")
    assert opened(fake_sysfs, device="lm75").read() == [Reading("temperature", 31.0, "°C")]


def test_a_fault_or_a_disabled_channel_has_no_value(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_hwmon("chip", {"temp1_input": "40000", "temp1_fault": "0", "fan1_input": "0"})
    sensor = opened(fake_sysfs, device="chip")
    assert sensor.read() == [Reading("temperature", 40.0, "°C"), Reading("fan_speed", 0, "rpm")]
    fake_sysfs.set(f"{dev}/temp1_fault", "1")  # an open diode
    fake_sysfs.fail(f"{dev}/fan1_input", errno.ENODATA)  # fan1_enable = 0
    assert sensor.read() == [Reading("temperature", None, "°C"), Reading("fan_speed", None, "rpm")]


def test_a_nack_is_retried_soon(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_hwmon("lm75", lm75_attributes(23.5))
    sleeps: list[float] = []
    sensor = opened(fake_sysfs, sleeps, device="lm75")
    fake_sysfs.fail(f"{dev}/temp1_input", errno.EREMOTEIO)
    fake_sysfs.fail(f"{dev}/temp1_input", errno.EIO)
    assert sensor.read() == [Reading("temperature", 23.5, "°C")]
    assert sleeps == [0.1, 0.1] and sensor.retries == 2
    fake_sysfs.fail(f"{dev}/temp1_input", errno.ENXIO, times=3)
    with pytest.raises(SensorError, match=r"temp1_input: No such device or address \(tried 3 times\)"):
        sensor.read()


def test_two_of_a_name_and_the_path(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("cpu_thermal", cpu_thermal_attributes(48.312), parent="virtual/thermal/thermal_zone0")
    fake_sysfs.add_hwmon("lm75", lm75_attributes(20.0), parent="i2c-1/1-0048", of_node="/soc/i2c@7e804000/lm75@48")
    fake_sysfs.add_hwmon("lm75", lm75_attributes(30.0), parent="i2c-1/1-0049", of_node="/soc/i2c@7e804000/lm75@49")
    with pytest.raises(SensorError, match=r'2 hwmon devices are named "lm75" \(hwmon1 \(lm75, /soc/i2c@7e804000/'
                                          r"lm75@48\), hwmon2 .*set of_node or index"):
        opened(fake_sysfs, device="lm75")
    assert opened(fake_sysfs, device="lm75", of_node="lm75@49").read() == [Reading("temperature", 30.0, "°C")]
    assert opened(fake_sysfs, device="lm75", of_node="/soc/i2c@7e804000/lm75@48").read()[0].value == 20.0
    assert opened(fake_sysfs, path="/sys/class/hwmon/hwmon0").read() == [Reading("temperature", 48.312, "°C")]
    with pytest.raises(SensorError, match=r'no hwmon device named "ina219" in .*/class/hwmon; present: hwmon0 '
                                          r"\(cpu_thermal\), hwmon1 \(lm75, /soc/i2c@7e804000/lm75@48\), hwmon2"):
        opened(fake_sysfs, device="ina219")


def test_unplugged_and_bound_again(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_hwmon("lm75", lm75_attributes(23.5))
    sensor = opened(fake_sysfs, device="lm75")
    fake_sysfs.remove(dev)
    with pytest.raises(SensorError, match=r"\(hwmon lm75 hwmon0\): gone from"):
        sensor.read()
    fake_sysfs.add_hwmon("cpu_thermal", cpu_thermal_attributes())
    fake_sysfs.add_hwmon("lm75", lm75_attributes(24.0), parent="again")  # now hwmon1
    assert sensor.read() == [Reading("temperature", 24.0, "°C")]
    assert sensor.describe() == 'sensor "case" (hwmon lm75 hwmon1)'


def test_garbage(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_hwmon("lm75", lm75_attributes())
    sensor = opened(fake_sysfs, device="lm75")
    fake_sysfs.set(f"{dev}/temp1_input", "")
    with pytest.raises(SensorError, match=r"temp1_input: expected a number, found ''"):
        sensor.read()


def test_same_quantity_twice_needs_names(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("odd", {"temp1_input": "1000", "temp01_input": "2000"})
    with pytest.raises(SensorError, match=r"channels temp01 and temp1 would have the same quantity"):
        opened(fake_sysfs, device="odd")
    sensor = opened(fake_sysfs, device="odd", channels=["temp1", "temp01=board"])
    assert sensor.read() == [Reading("temperature", 1.0, "°C"), Reading("board", 2.0, "°C")]


def test_detect(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_hwmon("cpu_thermal", cpu_thermal_attributes())
    fake_sysfs.add_hwmon("rpi_volt", {"in0_lcrit_alarm": "0"})  # an alarm only: nothing to read
    fake_sysfs.add_hwmon("ina219", ina219_attributes())
    assert Hwmon.detect(Hardware(sysfs=fake_sysfs)) == [
        ("cpu_thermal_0", {"device": "cpu_thermal", "channels": ["temp1"]}),
        ("ina219_2", {"device": "ina219", "channels": ["in0", "in1", "curr1", "power1"]})]
