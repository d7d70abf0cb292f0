"""The `bme280` and `bmp280` drivers: the datasheets' formulas and example, then the whole
driver on a fake bus with a modelled chip, and what goes wrong (wrong chip, NACK, config)."""

from __future__ import annotations

import doctest
import re
import struct

import pluggy
import pytest
from driver_kit import example_config

from sensord import hookspecs
from sensord.config import build_options
from sensord.errors import ConfigError, SensorError
from sensord.hardware import Hardware
from sensord.testing.i2c import EREMOTEIO, FakeI2CBus
from sensord.testing.models import bme280 as models
from sensord.testing.models.bme280 import (
    DATASHEET_ADC_P,
    DATASHEET_ADC_T,
    DATASHEET_P,
    DATASHEET_T,
    TYPICAL_H,
    BME280Model,
    BMP280Model,
    humidity_pct_float,
    pressure_pa_float,
    t_fine_float,
)
from sensord.testing.pins import fake_hardware
from sensord_plugins import bme280 as plugin
from sensord_plugins.bme280 import (
    BME280,
    BMP280,
    BME280Config,
    BMP280Config,
    Calibration,
    compensate_humidity,
    compensate_pressure,
    compensate_temperature,
    measurement_time_s,
    parse_calibration,
)

# BMP280 datasheet §3.12, the compensation example.
EXAMPLE = Calibration(*DATASHEET_T, *DATASHEET_P)
WITH_H = Calibration(*DATASHEET_T, *DATASHEET_P, *TYPICAL_H)


def rig(*chips: BMP280Model) -> tuple[FakeI2CBus, Hardware, list[float]]:
    """A fake bus with `chips`, a Hardware on it whose sleep only records what it was asked."""
    bus = FakeI2CBus(list(chips))
    hardware = fake_hardware(bus)
    sleeps: list[float] = []
    hardware.sleep = sleeps.append
    return bus, hardware, sleeps


def opened(cls: type[BMP280], hardware: Hardware, name: str = "attic", **options: object) -> BMP280:
    sensor = cls(cls.Config(**options), name=name, hardware=hardware)
    sensor.open()
    return sensor


def values(sensor: BMP280) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- the datasheets' formulas -------------------------------------------------------------------


def test_datasheet_example_temperature() -> None:
    centi_c, t_fine = compensate_temperature(DATASHEET_ADC_T, EXAMPLE)
    assert t_fine == 128422  # the example's t_fine
    assert centi_c / 100 == pytest.approx(25.08)


def test_datasheet_example_pressure() -> None:
    _, t_fine = compensate_temperature(DATASHEET_ADC_T, EXAMPLE)
    q24_8 = compensate_pressure(DATASHEET_ADC_P, t_fine, EXAMPLE)
    assert q24_8 / 256 == pytest.approx(100653.27, abs=0.05)  # the example: 100653.27 Pa
    assert q24_8 // 256 == 100653


@pytest.mark.parametrize("adc_t", [300000, 450000, DATASHEET_ADC_T, 600000, 700000])
@pytest.mark.parametrize("adc_p", [250000, DATASHEET_ADC_P, 550000])
def test_integer_formulas_agree_with_the_double_ones(adc_t: int, adc_p: int) -> None:
    """§4.2.3 (integer) against §8.1 (double precision): two independent codings agree."""
    centi_c, t_fine = compensate_temperature(adc_t, EXAMPLE)
    assert centi_c / 100 == pytest.approx(t_fine_float(adc_t, DATASHEET_T) / 5120, abs=0.01)
    pa = compensate_pressure(adc_p, t_fine, EXAMPLE) / 256
    assert pa == pytest.approx(pressure_pa_float(adc_p, t_fine, DATASHEET_P), abs=1.0)


@pytest.mark.parametrize("adc_h", [22000, 26000, 30000, 34000, 38000])
def test_humidity_formula_agrees_with_the_double_one(adc_h: int) -> None:
    _, t_fine = compensate_temperature(DATASHEET_ADC_T, WITH_H)
    pct = compensate_humidity(adc_h, t_fine, WITH_H) / 1024
    assert pct == pytest.approx(humidity_pct_float(adc_h, t_fine, TYPICAL_H), abs=0.05)
    assert 0 < pct < 100


def test_humidity_is_clamped_to_0_100() -> None:
    _, t_fine = compensate_temperature(DATASHEET_ADC_T, WITH_H)
    assert compensate_humidity(0, t_fine, WITH_H) == 0
    assert compensate_humidity(0xFFFF, t_fine, WITH_H) == 100 * 1024


def test_pressure_is_0_when_dig_p1_is_0() -> None:
    assert compensate_pressure(DATASHEET_ADC_P, 128422, Calibration(*DATASHEET_T, 0, *DATASHEET_P[1:])) == 0


def test_parse_calibration_splits_h4_and_h5() -> None:
    tp = struct.pack("<HhhHhhhhhhhh", *DATASHEET_T, *DATASHEET_P) + bytes([0, 75])
    assert tp[:2] == b"\x70\x6b"  # dig_T1 = 27504, LSB first at 0x88 (Table 16)
    cal = parse_calibration(tp, bytes([0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E]))
    assert cal == WITH_H  # H2=362, H3=0, H4=0x13:9 = 313, H5=0x03:2 = 50, H6=30
    negative = parse_calibration(tp, bytes([0xFF, 0xFF, 0x00, 0xFF, 0xEF, 0x80, 0xFF]))
    assert (negative.dig_H2, negative.dig_H4, negative.dig_H5, negative.dig_H6) == (-1, -1, -2034, -1)
    assert parse_calibration(tp) == EXAMPLE  # a BMP280: no humidity trimming


def test_measurement_time_is_the_datasheet_maximum() -> None:
    # BME280 §9.1: 1.25 + 2.3·T + (2.3·P + 0.575) + (2.3·H + 0.575) ms.
    assert measurement_time_s(1, 1, 1) == pytest.approx(0.0093)
    assert measurement_time_s(16, 16, 16) == pytest.approx(0.1128)
    assert measurement_time_s(1, 1) == pytest.approx(0.006425)  # BMP280 ×1: 6.4 ms in its Table 13


# -- the whole driver on a fake bus -------------------------------------------------------------


def test_bme280_reads_what_the_chip_measures() -> None:
    bus, hardware, _ = rig(BME280Model(temperature_c=21.5, pressure_pa=101325.0, humidity_pct=55.0))
    sensor = opened(BME280, hardware)
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [(c.quantity, c.unit) for c in sensor.channels()]
    got = {r.quantity: r.value for r in readings}
    assert got["temperature"] == pytest.approx(21.5, abs=0.01)
    assert got["pressure"] == pytest.approx(1013.25, abs=0.01)
    assert got["humidity"] == pytest.approx(55.0, abs=0.05)
    assert [c.resolution for c in sensor.channels()] == [0.01, 0.01, 0.01]


def test_bmp280_reads_the_datasheet_example_raw_values() -> None:
    chip = BMP280Model()
    chip.raw_temperature, chip.raw_pressure = DATASHEET_ADC_T, DATASHEET_ADC_P
    _, hardware, _ = rig(chip)
    sensor = opened(BMP280, hardware)
    assert values(sensor) == {"temperature": pytest.approx(25.08), "pressure": pytest.approx(1006.53)}
    assert [c.quantity for c in sensor.channels()] == ["temperature", "pressure"]


def test_follows_a_changing_temperature() -> None:
    chip = BME280Model()
    _, hardware, _ = rig(chip)
    sensor = opened(BME280, hardware)
    for celsius in (-20.0, 0.0, 42.42):
        chip.temperature_c = celsius
        assert values(sensor)["temperature"] == pytest.approx(celsius, abs=0.01)
    assert chip.conversions == 3


def test_resets_then_measures_in_forced_mode_with_the_configured_oversampling() -> None:
    chip = BME280Model()
    bus, hardware, sleeps = rig(chip)
    sensor = opened(BME280, hardware, oversampling_temperature=2, oversampling_pressure=16,
                    oversampling_humidity=4)
    assert bus.writes(0x76) == [b"\xe0\xb6"]  # soft reset (§5.4.2)
    assert chip.resets == 1
    sleeps.clear()
    sensor.read()
    # ctrl_hum first (effective with the ctrl_meas write), then osrs_t=×2, osrs_p=×16, forced.
    assert bus.writes(0x76)[1:] == [b"\xf2\x03", bytes([0xF4, 2 << 5 | 5 << 2 | 1])]
    assert sleeps[0] == pytest.approx(measurement_time_s(2, 16, 4))
    assert chip.peek(0xF4)[0] & 0x03 == 0  # the chip went back to sleep


def test_polls_status_until_the_measurement_is_done() -> None:
    chip = BME280Model(busy_reads=3)
    bus, hardware, sleeps = rig(chip)
    sensor = opened(BME280, hardware)
    bus.log.clear()
    sleeps.clear()
    assert values(sensor)["temperature"] == pytest.approx(25.08, abs=0.01)
    status_reads = [t for t in bus.log if t.op == "read_byte_data" and t.register == 0xF3]
    assert len(status_reads) == 4  # three busy, one done
    assert len(sleeps) == 4  # the measurement time, then one pause per busy poll


def test_a_measurement_that_never_ends_is_an_error() -> None:
    _, hardware, _ = rig(BME280Model(busy_reads=10_000))
    sensor = BME280(BME280Config(), name="attic", hardware=hardware)
    with pytest.raises(SensorError, match=r'"attic" .*: measurement not finished: status 0x08'):
        sensor.open()
        sensor.read()


def test_wrong_chip_id_bmp280_configured_as_bme280() -> None:
    _, hardware, _ = rig(BMP280Model())
    sensor = BME280(BME280Config(), name="attic", hardware=hardware)
    with pytest.raises(SensorError) as info:
        sensor.open()
    assert str(info.value).startswith('sensor "attic" (bme280 @ 0x76 on bus 1): chip id 0x58, expected 0x60')
    assert 'use type = "bmp280"' in str(info.value)


def test_wrong_chip_id_bme280_configured_as_bmp280() -> None:
    _, hardware, _ = rig(BME280Model(address=0x77))
    sensor = BMP280(BMP280Config(address=0x77), name="cellar", hardware=hardware)
    with pytest.raises(SensorError, match=re.escape(
            'sensor "cellar" (bmp280 @ 0x77 on bus 1): chip id 0x60, expected 0x56, 0x57 or 0x58 '
            '(a BME280: use type = "bme280"')):
        sensor.open()


def test_unknown_chip_id() -> None:
    _, hardware, _ = rig(BME280Model(chip_id=0x61))
    with pytest.raises(SensorError, match=r"chip id 0x61, expected 0x60$"):
        opened(BME280, hardware)


def test_blank_calibration_is_an_error() -> None:
    _, hardware, _ = rig(BME280Model(dig_t=(0, 0, 0)))
    with pytest.raises(SensorError, match=r"calibration NVM invalid \(dig_T1=0"):
        opened(BME280, hardware)


def test_one_nack_is_retried() -> None:
    bus, hardware, _ = rig(BME280Model())
    sensor = opened(BME280, hardware)
    bus.fail_next(0x76)
    assert values(sensor)["temperature"] == pytest.approx(25.08, abs=0.01)
    assert [t.error for t in bus.log].count(EREMOTEIO) == 1


def test_persistent_nack_is_a_sensor_error() -> None:
    bus, hardware, _ = rig(BME280Model())
    sensor = opened(BME280, hardware)
    bus.fail_next(0x76, count=10)
    with pytest.raises(SensorError, match=r'^sensor "attic" \(bme280 @ 0x76 on bus 1\): no answer \(NACK\)'):
        sensor.read()


def test_no_chip_at_the_address() -> None:
    _, hardware, _ = rig(BME280Model(address=0x77))
    with pytest.raises(SensorError, match=r"@ 0x76 on bus 1\): no answer \(NACK\)"):
        opened(BME280, hardware)


def test_missing_bus_is_a_sensor_error() -> None:
    _, hardware, _ = rig(BME280Model())
    with pytest.raises(SensorError, match=r"on bus 3\): cannot open /dev/i2c-3"):
        opened(BME280, hardware, bus=3)


def test_skipped_measurement_is_an_error() -> None:
    chip = BME280Model()
    _, hardware, _ = rig(chip)
    sensor = opened(BME280, hardware)
    chip.raw_temperature = 0x80000
    with pytest.raises(SensorError, match=r"no measurement in the data registers \(raw temperature 0x80000"):
        sensor.read()


def test_read_before_open() -> None:
    _, hardware, _ = rig(BME280Model())
    with pytest.raises(SensorError, match="read\\(\\) before open\\(\\)"):
        BME280(BME280Config(), name="attic", hardware=hardware).read()


# -- config, detection, registration ------------------------------------------------------------


@pytest.mark.parametrize(("cls", "table", "message"), [
    (BME280Config, {"address": 0x40},
     "f.toml: sensor[0].address: expected an address from 0x76 to 0x77, found 0x40"),
    (BME280Config, {"oversampling_humidity": 3},
     "f.toml: sensor[0].oversampling_humidity: expected one of 1, 2, 4, 8, 16, found 3"),
    (BMP280Config, {"oversampling_humidity": 1},
     'f.toml: sensor[0].oversampling_humidity: unknown key'),
])
def test_config_out_of_range(cls: type, table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(cls, table, "sensor[0]", "f.toml")
    assert str(info.value).startswith(message)


def test_config_defaults() -> None:
    cfg = build_options(BME280Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.oversampling_humidity) == (1, 0x76, 1)


def test_identify() -> None:
    bus = FakeI2CBus([BME280Model(), BMP280Model(address=0x77)])
    assert BME280.identify(bus, 0x76) == {"type": "bme280", "address": 0x76}
    assert BMP280.identify(bus, 0x77) == {"type": "bmp280", "address": 0x77}
    assert BME280.identify(bus, 0x77) is None
    assert BMP280.identify(bus, 0x76) is None
    assert BME280.identify(FakeI2CBus(), 0x76) is None  # nothing there
    assert bus.writes(0x76) == bus.writes(0x77) == []  # read only the id register
    assert BME280.i2c_addresses == BMP280.i2c_addresses == (0x76, 0x77)


def test_docstring_example_parses() -> None:
    config = example_config(plugin, BME280, BMP280)
    attic, cellar = config.sensors
    assert (attic.type, attic.options) == ("bme280", BME280Config(address=0x76))
    assert (cellar.type, cellar.options) == ("bmp280", BMP280Config(address=0x77, oversampling_pressure=4))


def test_hookimpl_registers_both_types() -> None:
    pm = pluggy.PluginManager("sensord")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    assert pm.hook.sensord_register_sensors() == [[BME280, BMP280]]
    assert (BME280.type_name, BMP280.type_name) == ("bme280", "bmp280")


def test_model_soft_reset_and_doctest() -> None:
    chip = BME280Model()
    bus = FakeI2CBus([chip])
    bus.write_byte_data(0x76, 0xF5, 0xA0)
    bus.write_byte_data(0x76, 0xE0, 0x01)  # only 0xB6 resets (§5.4.2)
    assert bus.read_byte_data(0x76, 0xF5) == 0xA0
    bus.write_byte_data(0x76, 0xE0, 0xB6)
    assert bus.read_byte_data(0x76, 0xF5) == 0
    assert bus.read_byte_data(0x76, 0xE0) == 0  # reads 0 (§5.4.2)
    assert bus.read_i2c_block_data(0x76, 0xF7, 8) == [0x80, 0, 0, 0x80, 0, 0, 0x80, 0]  # skipped
    assert doctest.testmod(models).failed == 0
