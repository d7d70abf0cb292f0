"""The `iio` driver on a fake sysfs tree laid out as the kernel's, with values in the units of
Documentation/ABI/testing/sysfs-bus-iio and the errors IIO drivers return."""

from __future__ import annotations

import errno
import logging

import pytest
from driver_kit import example_config

import sensord_plugins.iio as module
from sensord import ConfigError, Reading, SensorError
from sensord.config import parse_config
from sensord.hardware import Hardware
from sensord.sysfs import convert, parse_number
from sensord.testing.sysfs import FakeSysfs, dht22_attributes, si7020_attributes
from sensord_plugins.iio import Iio, IioConfig, channel_spec, parse_channel, scaled


def make(sysfs: FakeSysfs, sleeps: list[float] | None = None, **options: object) -> Iio:
    hardware = Hardware(sysfs=sysfs, sleep=(sleeps.append if sleeps is not None else lambda _s: None))
    return Iio(IioConfig(**options), name="porch", hardware=hardware)  # type: ignore[arg-type]


def opened(sysfs: FakeSysfs, sleeps: list[float] | None = None, **options: object) -> Iio:
    sensor = make(sysfs, sleeps, **options)
    sensor.open()
    return sensor


def values(sensor: Iio) -> dict[str, tuple[float | None, str]]:
    return {r.quantity: (r.value, r.unit) for r in sensor.read()}


def test_docstring_example_parses() -> None:
    (spec,) = example_config(module, Iio).sensors
    assert spec.options == IioConfig(device="dht11", channels=["temp", "humidityrelative"])


@pytest.mark.parametrize(("keys", "message"), [
    ({}, "device: expected a device name (or a path instead), found neither"),
    ({"device": "dht11", "path": "iio:device0"}, "device: expected a device name (or a path instead), found both"),
    ({"path": "iio:device0", "of_node": "dht11@4"}, "of_node: expected with device, not with path"),
    ({"path": "/dev/iio:device0"}, 'path: expected a directory under /sys ("/sys/bus/iio/devices/iio:device0") or '
                                   'a device\'s directory name ("iio:device0"), found "/dev/iio:device0"'),
    ({"device": "dht11", "of_node": "dht11@4", "index": 1}, "index: expected of_node or index, not both"),
    ({"device": "dht11", "index": -1}, "index: expected an integer >= 0, found -1"),
    ({"device": "mpu6050", "channels": ["accel_x"]}, 'channels: "accel_x" is not an IIO channel sensord reads'),
    ({"device": "dht11", "channels": ["temp_peak"]}, 'channels: "temp_peak" is not an IIO channel'),
    ({"device": "ads1015", "channels": ["voltage0=Battery"]}, 'channels: "voltage0=Battery": expected a quantity'),
    ({"device": "ads1015", "channels": ["voltage0=v", "voltage1=v"]},
     'channels: "voltage1=v" and "voltage0=v" would both be "v"'),
    ({"device": "dht11", "retries": 11}, "retries: expected an integer >= 0 and <= 10, found 11"),
])
def test_config_errors(keys: dict[str, object], message: str) -> None:
    table = {"name": "t", "type": "iio", "interval_s": 30, **keys}
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"sensor": [table]}, "x.toml", {"iio": Iio})
    assert message in str(excinfo.value)
    assert "sensor[0]." in str(excinfo.value)


@pytest.mark.parametrize(("name", "parts"), [
    ("temp", ("temp", None, None, "")),
    ("humidityrelative", ("humidityrelative", None, None, "")),
    ("voltage0", ("voltage", 0, None, "")),
    ("voltage0-voltage1", ("voltage", 0, 1, "")),
    ("temp_ambient", ("temp", None, None, "ambient")),
    ("concentration_co2", ("concentration", None, None, "co2")),
    ("massconcentration_pm2p5", ("massconcentration", None, None, "pm2p5")),
    ("voltage3_supply", ("voltage", 3, None, "supply")),
])
def test_channel_names(name: str, parts: tuple[object, ...]) -> None:
    parsed = parse_channel(name)
    assert parsed is not None
    assert (parsed.type, parsed.index, parsed.index2, parsed.modifier) == parts


@pytest.mark.parametrize("name", ["accel_x", "anglvel_z", "temp_peak", "humidityrelative_trough", "illuminance0_mean",
                                  "voltage0-current1", "timestamp", "", "Temp"])
def test_not_channels(name: str) -> None:
    assert parse_channel(name) is None


@pytest.mark.parametrize(("name", "quantity", "unit"), [
    ("temp", "temperature", "°C"), ("temp_object", "temperature_object", "°C"),
    ("humidityrelative", "humidity", "%"), ("pressure", "pressure", "hPa"), ("pressure1", "pressure_1", "hPa"),
    ("voltage0", "voltage_0", "V"), ("voltage0-voltage1", "voltage_0_1", "V"), ("current2", "current_2", "A"),
    ("power0", "power_0", "W"), ("illuminance", "illuminance", "lx"), ("illuminance0", "illuminance_0", "lx"),
    ("concentration_co2", "carbon_dioxide", "ppm"), ("concentration_voc", "voc", "ppm"),
    ("concentration_o2", "oxygen", "%"), ("concentration", "concentration", "ppm"),
    ("massconcentration_pm2p5", "pm2_5", "µg/m³"), ("massconcentration_pm10", "pm10", "µg/m³"),
    ("resistance", "resistance", "Ω"), ("electricalconductivity", "conductivity", "S/m"),
    ("uvindex", "uv_index", ""), ("intensity_ir", "intensity_ir", ""), ("distance", "distance", "m"),
])
def test_quantities_and_units(name: str, quantity: str, unit: str) -> None:
    parsed = parse_channel(name)
    assert parsed is not None
    spec = channel_spec(parsed)
    assert (spec.quantity, spec.unit) == (quantity, unit)


# What each ABI unit becomes: (attributes, expected quantity, value, unit).
ABI_EXAMPLES = [
    ({"in_temp_input": "21500"}, "temperature", 21.5, "°C"),  # milli degrees Celsius
    ({"in_temp_input": "-5300"}, "temperature", -5.3, "°C"),
    ({"in_humidityrelative_input": "45600"}, "humidity", 45.6, "%"),  # milli percent
    ({"in_pressure_input": "100.923828125"}, "pressure", 1009.23828125, "hPa"),  # kPa, a fraction as IIO prints it
    ({"in_voltage0_raw": "1650", "in_voltage0_scale": "2.000000000"}, "voltage_0", 3.3, "V"),  # mV
    ({"in_current0_raw": "-120", "in_current0_scale": "0.250000"}, "current_0", -0.03, "A"),  # mA
    ({"in_power0_raw": "250", "in_power0_scale": "10"}, "power_0", 2.5, "W"),  # mW
    ({"in_illuminance_raw": "1000", "in_illuminance_scale": "0.833333"}, "illuminance", 833.333, "lx"),
    ({"in_concentration_co2_raw": "415", "in_concentration_co2_scale": "0.0001"}, "carbon_dioxide", 415, "ppm"),
    ({"in_concentration_o2_input": "20.9"}, "oxygen", 20.9, "%"),  # percent
    ({"in_massconcentration_pm2p5_input": "12.50"}, "pm2_5", 12.5, "µg/m³"),
    ({"in_resistance_raw": "4700", "in_resistance_scale": "10"}, "resistance", 47000, "Ω"),
    ({"in_electricalconductivity_raw": "1413", "in_electricalconductivity_scale": "0.001"}, "conductivity",
     1.413, "S/m"),
    ({"in_uvindex_input": "3"}, "uv_index", 3, ""),
    ({"in_temp_raw": "100", "in_temp_offset": "-50", "in_temp_scale": "500"}, "temperature", 25.0, "°C"),
]


@pytest.mark.parametrize(("attributes", "quantity", "value", "unit"), ABI_EXAMPLES)
def test_abi_units_are_converted(fake_sysfs: FakeSysfs, attributes: dict[str, str], quantity: str, value: float,
                                 unit: str) -> None:
    fake_sysfs.add_iio("chip", attributes)
    assert values(opened(fake_sysfs, device="chip")) == {quantity: (pytest.approx(value), unit)}


def test_raw_scale_offset_arithmetic() -> None:
    assert scaled(6606, scale=10.725097656, offset=-4368) == pytest.approx(24002.77, abs=0.01)
    assert scaled(7) == 7
    assert parse_number("100.923828125") == 100.923828125 and parse_number("-0.500000") == -0.5
    assert parse_number("21500") == 21500 and isinstance(parse_number("21500"), int)
    assert convert(150240, 1e-6) == 0.15024 and convert(5008, 1e-3) == 5.008 and convert(100, 10.0) == 1000


def test_dht22_on_the_dht11_driver(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("dht11", dht22_attributes(21.3, 45.6), of_node="/dht11@4")
    sensor = opened(fake_sysfs, device="dht11")
    assert sensor.read() == [Reading("temperature", 21.3, "°C"), Reading("humidity", 45.6, "%")]
    assert sensor.describe() == 'sensor "porch" (iio dht11 iio:device0)'


def test_si7020_raw_scale_offset_gives_the_datasheet_formula(fake_sysfs: FakeSysfs) -> None:
    """Si7021 datasheet §5.1.1 and §5.1.2: RH = 125 * code / 65536 - 6, T = 175.72 * code / 65536 - 46.85,
    on the 14-bit code; the kernel's scale and offset give the same to within one step."""
    fake_sysfs.add_iio("si7020", si7020_attributes(24.0, 45.0))
    got = values(opened(fake_sysfs, device="si7020"))
    assert got["temperature"] == (pytest.approx(24.0, abs=175.72 / 16384), "°C")
    assert got["humidity"] == (pytest.approx(45.0, abs=125 / 16384), "%")
    code = 6606 << 2  # what the driver shifted
    # The driver's integer offset (-4368 for -4368.26 steps) puts it 2.8 m°C above the formula.
    assert got["temperature"][0] - (175.72 * code / 65536 - 46.85) == pytest.approx(0.0028, abs=0.0001)


def test_scale_shared_by_type_and_separate(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("ads1015", {"in_voltage0_raw": "1000", "in_voltage1_raw": "500", "in_voltage1_scale": "1",
                                   "in_voltage_scale": "3.0", "in_voltage0-voltage1_raw": "100",
                                   "in_voltage-voltage_scale": "0.5"})
    assert values(opened(fake_sysfs, device="ads1015")) == {"voltage_0": (3.0, "V"), "voltage_1": (0.5, "V"),
                                                            "voltage_0_1": (0.05, "V")}


def test_scale_is_read_with_every_value(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_iio("ads1015", {"in_voltage0_raw": "1000", "in_voltage0_scale": "3"})
    sensor = opened(fake_sysfs, device="ads1015")
    assert values(sensor) == {"voltage_0": (3.0, "V")}
    fake_sysfs.set(f"{dev}/in_voltage0_scale", "0.125")  # someone changed the gain
    assert values(sensor) == {"voltage_0": (0.125, "V")}


def test_processed_input_wins_over_raw(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("chip", {"in_temp_raw": "99", "in_temp_input": "21000", "in_temp_scale": "7"})
    assert values(opened(fake_sysfs, device="chip")) == {"temperature": (21.0, "°C")}


def test_channels_not_read_are_left_out(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("mpu6050", {"in_accel_x_raw": "12", "in_accel_scale": "0.0006", "in_temp_raw": "-1000",
                                   "in_temp_scale": "2.941176", "in_temp_offset": "12420.588235",
                                   "in_temp_peak_raw": "5"})
    sensor = opened(fake_sysfs, device="mpu6050")
    assert [c.quantity for c in sensor.channels()] == ["temperature"]
    assert values(sensor)["temperature"][0] == pytest.approx(33.59, abs=0.01)


def test_configured_channels_are_declared_before_open_and_renamed(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("ads1015", {"in_voltage0_raw": "1650", "in_voltage0_scale": "2", "in_voltage1_raw": "1"})
    sensor = make(fake_sysfs, device="ads1015", channels=["voltage0=battery"])
    assert [(c.quantity, c.unit) for c in sensor.channels()] == [("battery", "V")]
    assert make(fake_sysfs, device="ads1015").channels() == []  # found at open only
    sensor.open()
    assert sensor.read() == [Reading("battery", 3.3, "V")]


def test_a_configured_channel_the_device_lacks(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("dht11", dht22_attributes())
    with pytest.raises(SensorError, match=r"no channel pressure; it has: temp, humidityrelative"):
        opened(fake_sysfs, device="dht11", channels=["temp", "pressure"])


def test_a_device_with_nothing_to_read(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("mpu6050", {"in_accel_x_raw": "1"})
    with pytest.raises(SensorError, match="no channel this driver reads"):
        opened(fake_sysfs, device="mpu6050")


def test_missing_device_names_the_devices_present(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("si7020", si7020_attributes(), of_node="/soc/i2c@7e804000/si7020@40")
    with pytest.raises(SensorError) as excinfo:
        opened(fake_sysfs, device="dht11")
    assert str(excinfo.value) == (f'sensor "porch" (iio dht11): no IIO device named "dht11" in '
                                  f"{fake_sysfs.root}/bus/iio/devices; present: iio:device0 "
                                  f"(si7020, /soc/i2c@7e804000/si7020@40)")
    with pytest.raises(SensorError, match="present: none"):
        opened(FakeSysfs(fake_sysfs.root + "-empty"), device="dht11")


def test_two_devices_of_one_name(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("dht11", dht22_attributes(20.0, 40.0), parent="platform/dht11@4", of_node="/dht11@4")
    fake_sysfs.add_iio("dht11", dht22_attributes(10.0, 80.0), parent="platform/dht11@11", of_node="/dht11@11")
    with pytest.raises(SensorError, match=r'2 IIO devices are named "dht11" \(iio:device0 \(dht11, /dht11@4\), '
                                          r"iio:device1 \(dht11, /dht11@11\)\); set of_node or index"):
        opened(fake_sysfs, device="dht11")
    assert values(opened(fake_sysfs, device="dht11", of_node="dht11@11"))["temperature"] == (10.0, "°C")
    assert values(opened(fake_sysfs, device="dht11", of_node="/dht11@4"))["temperature"] == (20.0, "°C")
    assert values(opened(fake_sysfs, device="dht11", index=1))["temperature"] == (10.0, "°C")
    with pytest.raises(SensorError, match=r"index 2, but there are only 2 devices"):
        opened(fake_sysfs, device="dht11", index=2)
    with pytest.raises(SensorError, match=r'no IIO device named "dht11" with of_node dht11@17'):
        opened(fake_sysfs, device="dht11", of_node="dht11@17")


@pytest.mark.parametrize("path", ["/sys/bus/iio/devices/iio:device1", "iio:device1", "bus/iio/devices/iio:device1",
                                  "/sys/devices/b/iio:device1"])
def test_by_path(fake_sysfs: FakeSysfs, path: str) -> None:
    fake_sysfs.add_iio("dht11", dht22_attributes(20.0, 40.0), parent="a")
    fake_sysfs.add_iio("dht11", dht22_attributes(10.0, 80.0), parent="b")
    assert values(opened(fake_sysfs, path=path))["temperature"] == (10.0, "°C")


def test_no_device_at_the_path(fake_sysfs: FakeSysfs) -> None:
    with pytest.raises(SensorError, match=r"no IIO device at .*/bus/iio/devices/iio:device7"):
        opened(fake_sysfs, path="iio:device7")


def test_bad_frames_are_retried_counted_and_logged_once(fake_sysfs: FakeSysfs,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    dev = fake_sysfs.add_iio("dht11", dht22_attributes(21.3, 45.6))
    sleeps: list[float] = []
    sensor = opened(fake_sysfs, sleeps, device="dht11")
    fake_sysfs.fail(f"{dev}/in_temp_input", errno.EIO, times=2)  # checksum errors
    with caplog.at_level(logging.INFO, logger="sensord.sysfs"):
        assert values(sensor)["temperature"] == (21.3, "°C")
        fake_sysfs.fail(f"{dev}/in_humidityrelative_input", errno.ETIMEDOUT)  # missed edges
        assert values(sensor)["humidity"] == (45.6, "%")
        assert values(sensor)["humidity"] == (45.6, "%")
    assert sleeps == [2.0, 2.0, 2.0]  # the DHT needs 2 s between measurements
    assert (sensor.retries, sensor.retried_reads) == (3, 2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "in_temp_input: Input/output error; such errors are retried" in lines[0]
    with caplog.at_level(logging.INFO, logger="sensord.sysfs"):
        sensor.close()
    assert "2 reads needed a retry (3 retries in all)" in caplog.records[-1].getMessage()


def test_retries_run_out(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_iio("dht11", dht22_attributes())
    sleeps: list[float] = []
    sensor = opened(fake_sysfs, sleeps, device="dht11", retries=1, retry_delay_s=2.5)
    fake_sysfs.fail(f"{dev}/in_temp_input", errno.ETIMEDOUT, times=None)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "porch" (iio dht11 iio:device0): in_temp_input: Connection timed out '
                                  "(tried 2 times)")
    assert sleeps == [2.5]
    fake_sysfs.clear()
    assert values(sensor)["temperature"] == (21.3, "°C")


def test_other_errors_are_not_retried_and_enodata_is_no_value(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_iio("dht11", dht22_attributes())
    sleeps: list[float] = []
    sensor = opened(fake_sysfs, sleeps, device="dht11")
    fake_sysfs.fail(f"{dev}/in_temp_input", errno.EBUSY)  # buffered capture running
    with pytest.raises(SensorError, match=r"in_temp_input: Device or resource busy$"):
        sensor.read()
    fake_sysfs.fail(f"{dev}/in_temp_input", errno.ENODATA)
    assert sensor.read()[0] == Reading("temperature", None, "°C")
    assert sleeps == []


def test_unplugged_device_is_found_again(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_iio("dht11", dht22_attributes(21.3, 45.6))
    sensor = opened(fake_sysfs, device="dht11")
    fake_sysfs.remove(dev)
    with pytest.raises(SensorError, match=r"iio:device0\): gone from .*bus/iio/devices \(unplugged, or its driver "
                                          r"unbound\?\); looking for it again"):
        sensor.read()
    with pytest.raises(SensorError, match='no IIO device named "dht11"'):
        sensor.read()
    # Bound again (as iio:device0), by a driver version that gives temp raw: its attributes are found anew.
    fake_sysfs.add_iio("dht11", {"in_temp_raw": "2200", "in_temp_scale": "10", "in_humidityrelative_input": "50000"},
                       parent="platform/again")
    assert values(sensor) == {"temperature": (22.0, "°C"), "humidity": (50.0, "%")}
    fake_sysfs.remove("bus/iio/devices/iio:device0")
    with pytest.raises(SensorError, match="gone from"):
        sensor.read()
    fake_sysfs.add_iio("dht11", {"in_temp_input": "1000"})  # another device of that name
    with pytest.raises(SensorError, match=r"\(iio dht11 iio:device0\): back, but without channel humidityrelative$"):
        sensor.read()


def test_a_channel_that_disappears_and_garbage(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_iio("si7020", si7020_attributes())
    sensor = opened(fake_sysfs, device="si7020")
    fake_sysfs.set(f"{dev}/in_temp_scale", "ten")
    with pytest.raises(SensorError, match=r"\): in_temp_scale: expected a number, found 'ten'$"):
        sensor.read()
    fake_sysfs.set(f"{dev}/in_temp_scale", "nan")
    with pytest.raises(SensorError, match="expected a number, found 'nan'"):
        sensor.read()
    fake_sysfs.delete(f"{dev}/in_humidityrelative_raw")
    fake_sysfs.set(f"{dev}/in_temp_scale", "10.725097656")
    with pytest.raises(SensorError, match=r"\): in_humidityrelative_raw disappeared$"):
        sensor.read()


def test_read_before_open(fake_sysfs: FakeSysfs) -> None:
    with pytest.raises(SensorError, match="not open"):
        make(fake_sysfs, device="dht11").read()


def test_detect_lists_devices_with_keys_that_select_them(fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("dht11", dht22_attributes(), parent="platform/dht11@4", of_node="/dht11@4")
    fake_sysfs.add_iio("dht11", dht22_attributes(), parent="platform/dht11@11", of_node="/dht11@11")
    fake_sysfs.add_iio("ads1015", {"in_voltage0_raw": "1", "in_voltage1_raw": "2"})
    fake_sysfs.add_iio("dht11", dht22_attributes(), parent="platform/x")  # no device-tree node
    fake_sysfs.add_iio("mpu6050", {"in_accel_x_raw": "1"})  # nothing sensord reads
    found = Iio.detect(Hardware(sysfs=fake_sysfs))
    assert found == [
        ("dht11_0", {"device": "dht11", "of_node": "dht11@4", "channels": ["temp", "humidityrelative"]}),
        ("dht11_1", {"device": "dht11", "of_node": "dht11@11", "channels": ["temp", "humidityrelative"]}),
        ("ads1015_2", {"device": "ads1015", "channels": ["voltage0", "voltage1"]}),
        ("dht11_3", {"device": "dht11", "index": 2, "channels": ["temp", "humidityrelative"]}),
    ]
    for _, keys in found:  # each block opens the device it was made for
        sensor = Iio(IioConfig(**keys), name="x", hardware=Hardware(sysfs=fake_sysfs))
        sensor.open()


def test_through_the_harness(sensor_harness: object, fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.add_iio("dht11", dht22_attributes(21.3, 45.6))
    result = sensor_harness(Iio, {"device": "dht11", "channels": ["temp", "humidityrelative"]},  # type: ignore[operator]
                            reads=3, interval_s=5)
    assert result.values("temperature", "decoded") == [21.3, 21.3, 21.3]
    assert result.values("humidity", "decoded") == [45.6, 45.6, 45.6]
