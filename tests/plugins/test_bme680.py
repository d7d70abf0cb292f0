"""The `bme680` driver: the compensation formulas on a real chip's trimming, the heater
profile encodings of the datasheet, then the whole driver on a fake BME680, and what goes
wrong (wrong chip, heater not stable, no gas conversion, NACK, timeout, config)."""

from __future__ import annotations

import doctest
import logging
from typing import Any

import pytest
from driver_kit import example_config, on_bus, opened

from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models import bme680 as models
from sensord.testing.models.bme680 import (
    EXAMPLE,
    REAL_CALIBRATION,
    BME680Model,
    gas_ohm_float,
    gas_raw,
    humidity_pct_float,
    pressure_pa_float,
    t_fine_float,
)
from sensord_plugins import bme680 as plugin
from sensord_plugins.bme680 import (
    BME680,
    BME680Config,
    Calibration,
    compensate_humidity,
    compensate_pressure,
    compensate_temperature,
    gas_resistance_ohm,
    gas_wait_code,
    gas_wait_ms,
    heater_resistance_code,
    measurement_time_s,
    parse_calibration,
)


def calibration_of(model: BME680Model) -> Calibration:
    """What the driver parses from the model's calibration registers."""
    return parse_calibration(model.peek(0x8A, 23), model.peek(0xE1, 14), model.peek(0x00, 5))


CAL = calibration_of(BME680Model())


def rig(chip: BME680Model, clock: FakeClock, **options: Any) -> tuple[BME680, FakeI2CBus]:
    return opened(BME680, chip, clock, name="lounge", **options)


def values(sensor: BME680) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- the formulas -----------------------------------------------------------------------------

def test_calibration_layout() -> None:
    assert (CAL.par_t1, CAL.par_t2, CAL.par_t3) == REAL_CALIBRATION.t
    assert (CAL.par_p1, CAL.par_p2, CAL.par_p3, CAL.par_p4, CAL.par_p5, CAL.par_p6, CAL.par_p7, CAL.par_p8,
            CAL.par_p9, CAL.par_p10) == REAL_CALIBRATION.p
    assert (CAL.par_h1, CAL.par_h2, CAL.par_h3, CAL.par_h4, CAL.par_h5, CAL.par_h6, CAL.par_h7) == REAL_CALIBRATION.h
    assert (CAL.par_g1, CAL.par_g2, CAL.par_g3) == REAL_CALIBRATION.g


def test_calibration_shared_nibbles_and_signed_fields() -> None:
    # par_h1 = 0xE3 << 4 | 0xE2<3:0>, par_h2 = 0xE1 << 4 | 0xE2<7:4>; res_heat_val signed,
    # res_heat_range 0x02<5:4>, range_switching_error 0x04<7:4> signed 4 bits.
    block2 = bytes([0x3F, 0xDA, 0x2C]) + bytes(11)
    cal = parse_calibration(bytes(23), block2, bytes([0xD6, 0, 0b0010_0000, 0, 0xF0]))
    assert (cal.par_h1, cal.par_h2) == (0x2CA, 0x3FD)
    assert (cal.res_heat_val, cal.res_heat_range, cal.range_switching_error) == (-42, 2, -1)


def test_worked_example_with_a_real_chip() -> None:
    """A real BME680's trimming and raw values with their float results (EXAMPLE): the model's
    float formulas give them, the driver's integer ones agree within their resolution."""
    t_fine = t_fine_float(EXAMPLE["adc_t"], REAL_CALIBRATION)
    assert t_fine / 5120 == pytest.approx(EXAMPLE["temperature_c"], abs=1e-4)
    assert pressure_pa_float(EXAMPLE["adc_p"], t_fine, REAL_CALIBRATION) == pytest.approx(EXAMPLE["pressure_pa"],
                                                                                           abs=0.01)
    assert humidity_pct_float(EXAMPLE["adc_h"], t_fine, REAL_CALIBRATION) == pytest.approx(25.2, abs=0.01)
    centi_c, t_fine_int = compensate_temperature(int(EXAMPLE["adc_t"]), CAL)
    assert centi_c == 1931
    assert compensate_pressure(int(EXAMPLE["adc_p"]), t_fine_int, CAL) == pytest.approx(100977.5, abs=5)
    assert compensate_humidity(int(EXAMPLE["adc_h"]), t_fine_int, CAL) == pytest.approx(25200, abs=10)


@pytest.mark.parametrize(("gas_adc", "gas_range"), [(195, 9), (0, 0), (1023, 15), (512, 5), (300, 7), (800, 13)])
def test_gas_integer_formula_agrees_with_the_float_one(gas_adc: int, gas_range: int) -> None:
    assert gas_resistance_ohm(gas_adc, gas_range, CAL) == pytest.approx(
        gas_ohm_float(gas_adc, gas_range, REAL_CALIBRATION), rel=2e-3)


def test_gas_example() -> None:
    assert gas_resistance_ohm(195, 9, CAL) == 20467
    assert gas_ohm_float(195, 9, REAL_CALIBRATION) == pytest.approx(EXAMPLE["gas_ohm"], abs=1)
    assert gas_raw(20467.0, REAL_CALIBRATION) == (195, 9)


def test_humidity_is_clamped() -> None:
    _, t_fine = compensate_temperature(int(EXAMPLE["adc_t"]), CAL)
    assert compensate_humidity(0, t_fine, CAL) == 0
    assert compensate_humidity(0xFFFF, t_fine, CAL) == 100000


@pytest.mark.parametrize(("ms", "code"), [(100, 0x59), (1, 0x01), (63, 0x3F), (64, 0x50), (150, 0x65),
                                          (4032, 0xFF)])
def test_gas_wait_encoding_of_section_5_3_3_3(ms: int, code: int) -> None:
    assert gas_wait_code(ms) == code  # 100 ms = 0x59: the quick start's example (§3.2.1)
    assert gas_wait_ms(code) <= ms


def test_heater_code_rises_with_the_target_and_falls_with_the_ambient() -> None:
    codes = [heater_resistance_code(t, 25.0, CAL) for t in (200, 250, 300, 350, 400)]
    assert codes == sorted(codes) and len(set(codes)) == 5
    assert heater_resistance_code(320, 25.0, CAL) == 0xC0
    assert heater_resistance_code(320, 40.0, CAL) >= heater_resistance_code(320, 0.0, CAL)


def test_measurement_time() -> None:
    assert measurement_time_s(2, 16, 1, 150) == pytest.approx((19 * 1.963 + 4.293 + 0.5 + 150) / 1000)


# -- the driver on a fake chip ----------------------------------------------------------------

def test_reads_the_worked_example(clock: FakeClock) -> None:
    sensor, _ = rig(BME680Model(), clock)
    assert sensor.read() == [
        plugin.Reading("temperature", 19.31, "°C"), plugin.Reading("humidity", 25.2, "%"),
        plugin.Reading("pressure", 1009.73, "hPa"), plugin.Reading("gas_resistance", 20467, "Ω")]
    assert [(c.quantity, c.unit) for c in sensor.channels()] == [
        ("temperature", "°C"), ("humidity", "%"), ("pressure", "hPa"), ("gas_resistance", "Ω")]


def test_reads_what_the_chip_measures(clock: FakeClock) -> None:
    sensor, _ = rig(BME680Model(temperature_c=23.4, pressure_pa=98765.0, humidity_pct=61.5, gas_ohm=85000.0),
                    clock)
    got = values(sensor)
    assert got["temperature"] == pytest.approx(23.4, abs=0.011)
    assert got["pressure"] == pytest.approx(987.65, abs=0.06)
    assert got["humidity"] == pytest.approx(61.5, abs=0.03)  # the integer formula reads ~0.015 % low here
    assert got["gas_resistance"] == pytest.approx(85000, rel=2e-3)


def test_forced_cycle_with_the_heater_profile(clock: FakeClock) -> None:
    chip = BME680Model()
    sensor, bus = rig(chip, clock, heater_temperature_c=300, heater_duration_ms=100)
    assert chip.resets == 1
    assert chip.peek(0x64)[0] == 0x59  # gas_wait_0: 100 ms
    sensor.read()
    assert chip.cycles == 1
    assert chip.last_res_heat == heater_resistance_code(300, 25.0, CAL)  # no reading yet: 25 °C ambient
    assert chip.peek(0x71)[0] == 0x10  # run_gas, set-point 0
    assert chip.peek(0x72)[0] == 0b001  # osrs_h ×1
    assert chip.peek(0x74)[0] == 0b010_101_00  # osrs_t ×2, osrs_p ×16, back to sleep
    assert clock.monotonic() >= measurement_time_s(2, 16, 1, 100)
    sensor.read()
    assert chip.last_res_heat == heater_resistance_code(300, 19.31, CAL)  # the chip's own temperature
    # Every write is one register and its value (the chip takes longer writes as pairs).
    assert all(len(w) == 2 for w in bus.writes(0x77))


def test_polls_until_new_data(clock: FakeClock) -> None:
    sensor, bus = rig(BME680Model(busy_reads=3), clock)
    values(sensor)
    assert sum(1 for t in bus.log if t.register == 0x1D) == 4


def test_a_cycle_that_never_ends_is_an_error(clock: FakeClock) -> None:
    sensor, _ = rig(BME680Model(busy_reads=1000), clock)
    with pytest.raises(SensorError, match=r'^sensor "lounge" \(bme680 @ 0x77 on bus 1\): measurement not finished: '
                                          r"meas_status_0 0x60 after 20 polls"):
        sensor.read()


def test_heater_not_stable_leaves_the_gas_reading_out(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    sensor, _ = rig(BME680Model(heat_up_ms=200), clock, heater_duration_ms=50)
    with caplog.at_level(logging.DEBUG, logger="sensord_plugins.bme680"):
        assert set(values(sensor)) == {"temperature", "humidity", "pressure"}
        assert set(values(sensor)) == {"temperature", "humidity", "pressure"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once, not per read
    assert "heat_stab_r clear: the hotplate did not reach 320 °C in 50 ms" in warnings[0].getMessage()


def test_gas_not_valid_leaves_the_gas_reading_out(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    chip = BME680Model()
    sensor, _ = rig(chip, clock)
    chip.read_only = chip.read_only | {0x71}  # a chip that ignores run_gas
    with caplog.at_level(logging.WARNING, logger="sensord_plugins.bme680"):
        assert "gas_resistance" not in values(sensor)
    assert "gas_valid_r clear: no gas conversion ran" in caplog.text


def test_gas_off(clock: FakeClock) -> None:
    chip = BME680Model()
    sensor, _ = rig(chip, clock, gas=False)
    assert set(values(sensor)) == {"temperature", "humidity", "pressure"}
    assert chip.peek(0x71)[0] == 0 and chip.last_res_heat is None
    assert [c.quantity for c in sensor.channels()] == ["temperature", "humidity", "pressure"]


@pytest.mark.parametrize(("chip_id", "hint"), [(0x60, ' \\(a BME280, without the gas sensor: use type = "bme280"\\)'),
                                               (0x58, ' \\(a BMP280: use type = "bmp280"\\)'), (0x12, "")])
def test_wrong_chip_id(clock: FakeClock, chip_id: int, hint: str) -> None:
    sensor = on_bus(BME680, FakeI2CBus([BME680Model(chip_id=chip_id)]), clock, name="lounge")
    with pytest.raises(SensorError, match=rf'^sensor "lounge" \(bme680 @ 0x77 on bus 1\): chip id 0x{chip_id:02x}, '
                                          rf"expected 0x61{hint}$"):
        sensor.open()


def test_a_bme688_is_refused(clock: FakeClock) -> None:
    sensor = on_bus(BME680, FakeI2CBus([BME680Model(variant_id=0x01)]), clock, name="lounge")
    with pytest.raises(SensorError, match=r"\): variant id 0x01, expected 0x00 \(a BME688, whose gas sensor reads "
                                          r"differently: not supported\)$"):
        sensor.open()


def test_blank_calibration_is_an_error(clock: FakeClock) -> None:
    blank = models.Trimming(t=(0, 0, 0), p=(0,) * 10, h=(0,) * 7, g=(0, 0, 0))
    sensor = on_bus(BME680, FakeI2CBus([BME680Model(calibration=blank)]), clock, name="lounge")
    with pytest.raises(SensorError, match=r"calibration NVM invalid \(par_t1=0, par_p1=0, expected non-zero\)"):
        sensor.open()


def test_one_nack_is_retried_and_persistent_ones_fail(clock: FakeClock) -> None:
    sensor, bus = rig(BME680Model(), clock)
    bus.fail_next(0x77)
    assert values(sensor)["temperature"] == 19.31
    bus.fail_next(0x77, count=3)
    with pytest.raises(SensorError, match=r"\(bme680 @ 0x77 on bus 1\): no answer \(NACK\)"):
        sensor.read()


def test_no_chip(clock: FakeClock) -> None:
    sensor = on_bus(BME680, FakeI2CBus([BME680Model(address=0x76)]), clock, name="lounge")
    with pytest.raises(SensorError, match=r"\(bme680 @ 0x77 on bus 1\): no answer \(NACK\)"):
        sensor.open()


def test_a_chip_that_reset_itself(clock: FakeClock) -> None:
    chip = BME680Model()
    sensor, bus = rig(chip, clock)
    chip.read_only = chip.read_only | {0x74}  # ctrl_meas stuck at its reset value: no cycle runs
    chip.poke(0x1D, 0x80)  # a stale new_data_0 over skipped registers
    with pytest.raises(SensorError, match=r"no measurement in the data registers \(raw temperature 0x80000"):
        sensor.read()


def test_read_before_open(clock: FakeClock) -> None:
    sensor = on_bus(BME680, FakeI2CBus([BME680Model()]), clock, name="lounge")
    with pytest.raises(SensorError, match=r"read\(\) before open\(\)"):
        sensor.read()


# -- the model ----------------------------------------------------------------------------

def test_model_takes_writes_as_register_value_pairs() -> None:
    chip = BME680Model()
    bus = FakeI2CBus([chip])
    bus.write_i2c_block_data(0x77, 0x72, [0x01, 0x64, 0x59, 0x5A, 0x80])  # ctrl_hum, gas_wait_0, res_heat_0
    assert (chip.peek(0x72)[0], chip.peek(0x64)[0], chip.peek(0x5A)[0]) == (0x01, 0x59, 0x80)
    assert chip.peek(0x73)[0] == 0  # not auto-incremented into


def test_model_doctest() -> None:
    assert doctest.testmod(models).failed == 0


# -- configuration, detect, registration ------------------------------------------------------

@pytest.mark.parametrize(("table", "message"), [
    ({"heater_temperature_c": 450}, "f.toml: sensor[0].heater_temperature_c: expected an integer >= 200 and "
                                    "<= 400, found 450"),
    ({"heater_duration_ms": 5000}, "f.toml: sensor[0].heater_duration_ms: expected an integer >= 1 and <= 4032, "
                                   "found 5000"),
    ({"oversampling_pressure": 3}, "f.toml: sensor[0].oversampling_pressure: expected one of 1, 2, 4, 8, 16, "
                                   "found 3"),
    ({"address": 0x78}, "f.toml: sensor[0].address: expected an address from 0x76 to 0x77, found 0x78"),
    ({"heater_temp": 300}, 'f.toml: sensor[0].heater_temp: unknown key, did you mean "heater_temperature_c"?'),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(BME680Config, table, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_config_defaults_are_the_quick_start() -> None:
    cfg = BME680Config()
    assert (cfg.oversampling_temperature, cfg.oversampling_pressure, cfg.oversampling_humidity) == (2, 16, 1)
    assert (cfg.heater_temperature_c, cfg.heater_duration_ms, cfg.gas, cfg.address) == (320, 150, True, 0x77)


def test_docstring_example_parses() -> None:
    config = example_config(plugin, BME680)
    options = config.sensors[0].options
    assert isinstance(options, BME680Config)
    assert (options.address, options.heater_temperature_c) == (0x77, 320)


def test_identify() -> None:
    bus = FakeI2CBus([BME680Model(address=0x76), BME680Model(address=0x77, chip_id=0x60)])
    assert BME680.identify(bus, 0x76) == {"type": "bme680", "address": 0x76}
    assert BME680.identify(bus, 0x77) is None
    assert BME680.identify(bus, 0x40) is None


def test_hookimpl_registers_the_driver() -> None:
    assert plugin.sensord_register_sensors() == [BME680]
    assert BME680.i2c_addresses == (0x76, 0x77)
