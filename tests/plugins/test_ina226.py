"""The `ina226` and `ina260` drivers against the datasheets' equations and register formats, and
against fake chips with conversion timing on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.ina226 as plugin
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.hdc1080 import HDC1080Model
from sensord.testing.models.htu21d import HTU21DModel
from sensord.testing.models.ina219 import INA219Model
from sensord.testing.models.ina226 import INA226Model, INA260Model
from sensord_plugins.ina226 import (
    INA226,
    INA260,
    INA226Config,
    INA260Config,
    bus_voltage_v,
    calibration_value,
    config_word,
    conversion_period_s,
    current_lsb_a,
)


def values(sensor: INA226) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- pure functions ---------------------------------------------------------------------------


def test_equations_1_and_2() -> None:
    # 32.768 A full scale: Current_LSB = 32.768 / 2^15 = 1 mA; CAL = 0.00512 / (1 mA × 2 mΩ) = 2560.
    assert calibration_value(32.768, 0.002) == 2560
    assert current_lsb_a(2560, 0.002) == pytest.approx(0.001)
    # 20 A through 2 mΩ: Current_LSB 610.35 µA, CAL trunc(4194.3) = 4194.
    assert calibration_value(20.0, 0.002) == 4194
    assert current_lsb_a(4194, 0.002) == pytest.approx(20.0 / 32768, rel=1e-4)
    # A 0.1 Ω shunt and 0.8 A: CAL = 0.00512 / (0.8 / 32768 × 0.1) = 2097.
    assert calibration_value(0.8, 0.1) == 2097


def test_register_helpers() -> None:
    assert bus_voltage_v(9600) == pytest.approx(12.0)  # 1.25 mV steps
    assert bus_voltage_v(0x7FFF) == pytest.approx(40.95875)
    assert config_word(1) == 0x0127  # AVG 1, 1.1 ms conversions, continuous: the reset value but bit 14
    assert config_word(16) == 0x0527 and config_word(1024) == 0x0F27
    assert conversion_period_s(16) == pytest.approx(0.0352)


# -- INA226 on the fake chip --------------------------------------------------------------------


def test_reads_voltage_current_and_power(clock: FakeClock) -> None:
    chip = INA226Model(bus_voltage_v=12.0, current_a=10.0, shunt_ohms=0.002, clock=clock.monotonic)
    sensor, _ = opened(INA226, chip, clock, name="battery", shunt_ohms=0.002, max_current_a=32.768)
    # Shunt 20 mV = 8000 steps of 2.5 µV; current = 8000 × 2560 / 2048 = 10000 steps of 1 mA;
    # bus 12 V = 9600 steps of 1.25 mV; power = 10000 × 9600 / 20000 = 4800 steps of 25 mW.
    assert [chip.registers()[r] for r in (0x01, 0x02, 0x03, 0x04)] == [8000, 9600, 4800, 10000]
    got = values(sensor)
    assert got == {"voltage": pytest.approx(12.0), "current": pytest.approx(10.0), "power": pytest.approx(120.0)}


def test_current_and_power_follow_the_shunt(clock: FakeClock) -> None:
    chip = INA226Model(bus_voltage_v=5.0, current_a=1.234, shunt_ohms=0.1)
    sensor, _ = opened(INA226, chip, clock, name="battery", shunt_ohms=0.1, max_current_a=0.8)
    lsb = current_lsb_a(calibration_value(0.8, 0.1), 0.1)
    # 1.234 A drops 123.4 mV: beyond the 81.92 mV range the shunt register clips, and the current
    # it gives is beyond the register's range: OVF.
    with pytest.raises(SensorError, match="OVF"):
        sensor.read()
    chip.current_a = 0.5
    assert values(sensor)["current"] == pytest.approx(0.5, abs=lsb)
    chip.current_a = -0.25
    got = values(sensor)
    assert got["current"] == pytest.approx(-0.25, abs=lsb) and got["power"] == pytest.approx(1.25, rel=0.01)


def test_probe_checks_ids_resets_and_programs(clock: FakeClock) -> None:
    chip = INA226Model()
    sensor, bus = opened(INA226, chip, clock, name="battery", samples=64)
    calibration = calibration_value(20.0, 0.002)
    assert bus.writes(0x40) == [b"\x00\x80\x00", b"\x05" + calibration.to_bytes(2, "big"),
                                b"\x00" + config_word(64).to_bytes(2, "big")]
    assert chip.resets == 1 and chip.samples == 64 and chip.calibration == calibration
    assert chip.config == config_word(64) | 0x4000  # bits 14:12 read 100b


def test_waits_for_conversion_ready(clock: FakeClock) -> None:
    chip = INA226Model(clock=clock.monotonic)
    sensor, _ = opened(INA226, chip, clock, name="battery", samples=16)
    start = clock.now
    values(sensor)
    # The configuration write restarted the conversions: one period of 16 × 2.2 ms.
    assert clock.now - start == pytest.approx(conversion_period_s(16))
    start = clock.now
    values(sensor)  # the flag was cleared by the last read: wait for the next period again
    assert clock.now - start == pytest.approx(conversion_period_s(16))
    clock.advance(10.0)
    start = clock.now
    values(sensor)  # a result finished long ago: no wait
    assert clock.now == start


def test_no_conversion_is_an_error(clock: FakeClock) -> None:
    sensor, _ = opened(INA226, INA226Model(stalled=True), clock, name="battery", samples=1)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "battery" (ina226 @ 0x40 on bus 1): no conversion ready (CVRF still 0) '
                                  'after 3 conversion periods of 2.2 ms')


def test_overflow_is_an_error(clock: FakeClock) -> None:
    # 40 A through 2 mΩ is 80 mV: in the shunt range, but beyond max_current_a = 10 A in the current register.
    chip = INA226Model(current_a=40.0, shunt_ohms=0.002)
    sensor, _ = opened(INA226, chip, clock, name="battery", shunt_ohms=0.002, max_current_a=10.0)
    with pytest.raises(SensorError, match=r"math overflow \(OVF\): current or power out of range; is the current "
                                          r"above 10 A\?$"):
        sensor.read()


def test_lost_calibration_is_programmed_again(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    chip = INA226Model(bus_voltage_v=12.0, current_a=10.0)
    sensor, _ = opened(INA226, chip, clock, name="battery", shunt_ohms=0.002, max_current_a=32.768)
    chip.power_cycle()
    assert values(sensor)["current"] == pytest.approx(10.0, abs=0.001)
    assert "calibration lost (chip reset?), programming it again" in caplog.text
    assert chip.calibration == 2560


@pytest.mark.parametrize(("model", "message"), [
    (INA226Model(manufacturer_id=0x1234), "manufacturer id 0x1234, expected 0x5449 (Texas Instruments)"),
    (INA226Model(die_id=0x2270), "die id 0x2270, expected 0x226x (INA226)"),
])
def test_wrong_ids(clock: FakeClock, model: INA226Model, message: str) -> None:
    bus = FakeI2CBus([model])
    with pytest.raises(SensorError) as excinfo:
        on_bus(INA226, bus, clock, name="battery").open()
    assert str(excinfo.value) == f'sensor "battery" (ina226 @ 0x40 on bus 1): {message}'
    assert bus.writes(0x40) == []  # not reset: it is not ours


def test_another_die_revision_is_fine(clock: FakeClock) -> None:
    sensor, _ = opened(INA226, INA226Model(die_id=0x2261), clock, name="battery")
    assert values(sensor)["voltage"] == pytest.approx(12.0)


def test_a_nack_is_retried_and_nacks_name_the_chip(clock: FakeClock) -> None:
    sensor, bus = opened(INA226, INA226Model(), clock, name="battery")
    bus.fail_next(0x40)
    assert values(sensor)["voltage"] == pytest.approx(12.0)
    bus.fail_next(0x40, count=3)
    with pytest.raises(SensorError, match=r'^sensor "battery" \(ina226 @ 0x40 on bus 1\): no answer \(NACK\)'):
        sensor.read()


def test_no_chip(clock: FakeClock) -> None:
    with pytest.raises(SensorError, match=r'^sensor "battery" \(ina226 @ 0x40 on bus 1\): no answer \(NACK\)'):
        on_bus(INA226, FakeI2CBus(), clock, name="battery").open()


def test_channels() -> None:
    sensor = INA226(INA226Config(shunt_ohms=0.002, max_current_a=32.768), name="b", hardware=None)  # type: ignore[arg-type]
    assert [(c.quantity, c.unit, c.resolution) for c in sensor.channels()] == [
        ("voltage", "V", 0.00125), ("current", "A", pytest.approx(0.001)), ("power", "W", pytest.approx(0.025))]


# -- INA260 -----------------------------------------------------------------------------------


def test_ina260_reads_with_fixed_steps(clock: FakeClock) -> None:
    chip = INA260Model(bus_voltage_v=12.0, current_a=2.5, clock=clock.monotonic)
    sensor, bus = opened(INA260, chip, clock, name="charger")
    # Current 2.5 A = 2000 steps of 1.25 mA; power = 2000 × 9600 / 6400 = 3000 steps of 10 mW.
    assert chip.registers()[0x01] == 2000 and chip.registers()[0x03] == 3000
    assert values(sensor) == {"voltage": pytest.approx(12.0), "current": pytest.approx(2.5),
                              "power": pytest.approx(30.0)}
    assert bus.writes(0x40) == [b"\x00\x80\x00", b"\x00" + config_word(16).to_bytes(2, "big")]
    chip.current_a = -1.0
    assert values(sensor)["current"] == pytest.approx(-1.0)


def test_ina260_reset_is_noticed(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    chip = INA260Model()
    sensor, _ = opened(INA260, chip, clock, name="charger", samples=64)
    chip.power_cycle()
    values(sensor)
    assert chip.samples == 64 and "programming it again" in caplog.text


def test_ina260_model_has_no_calibration_registers() -> None:
    with pytest.raises(OSError, match="no register 0x05"):
        INA260Model().write_raw(b"\x05")
    with pytest.raises(OSError, match="no register 0x04"):
        INA260Model().write_raw(b"\x04")


def test_ina260_wrong_die(clock: FakeClock) -> None:
    with pytest.raises(SensorError, match=r"die id 0x2260, expected 0x227x \(INA260\)$"):
        on_bus(INA260, FakeI2CBus([INA226Model()]), clock, name="charger").open()


def test_ina260_channels() -> None:
    sensor = INA260(INA260Config(), name="c", hardware=None)  # type: ignore[arg-type]
    assert [(c.quantity, c.unit, c.resolution) for c in sensor.channels()] == [
        ("voltage", "V", 0.00125), ("current", "A", 0.00125), ("power", "W", 0.01)]


# -- the models ---------------------------------------------------------------------------------


def test_model_nacks_driver_bugs() -> None:
    with pytest.raises(OSError, match="no register 0x08"):
        INA226Model().write_raw(b"\x08")
    with pytest.raises(OSError, match="expected a pointer byte and a 16-bit value, got 2 bytes"):
        INA226Model().write_raw(b"\x00\x01")


def test_model_reading_mask_enable_clears_cvrf() -> None:
    clock = FakeClock(start=0.0)
    chip = INA226Model(clock=clock.monotonic)
    assert chip.read(0x06, 2) == b"\x00\x00"
    clock.advance(chip.conversion_period_s())
    assert chip.read(0x06, 2) == b"\x00\x08"
    assert chip.read(0x06, 2) == b"\x00\x00"


# -- config, detection, registration -----------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"shunt_ohms": 0.01, "max_current_a": 10.0}, "max_current_a: 10 A drops 100 mV across shunt_ohms = 0.01, "
                                                  "expected at most 81.92 mV (the shunt range)"),
    ({"shunt_ohms": 0.1, "max_current_a": 0.01}, "max_current_a: 0.01 A with shunt_ohms = 0.1 needs calibration "
                                                 "167772, expected at most 32767: raise max_current_a"),
    ({"samples": 8}, "samples: expected one of 1, 4, 16, 64, 128, 256, 512, 1024, found 8"),
    ({"address": 0x50}, "address: expected an address from 0x40 to 0x4f, found 0x50"),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(INA226Config, options, "sensor[0]", "f.toml")
    assert str(excinfo.value) == f"f.toml: sensor[0].{message}"


def test_defaults() -> None:
    cfg = build_options(INA226Config, {}, "sensor[0]", "f.toml")
    assert (cfg.address, cfg.shunt_ohms, cfg.max_current_a, cfg.samples) == (0x40, 0.002, 20.0, 16)
    assert build_options(INA260Config, {}, "sensor[0]", "f.toml").samples == 16


def test_docstring_example_parses() -> None:
    battery, charger = example_config(plugin, INA226, INA260).sensors
    assert (battery.name, battery.type, battery.options) == ("battery", "ina226",
                                                             INA226Config(shunt_ohms=0.002, max_current_a=20.0))
    assert (charger.name, charger.type, charger.options) == ("charger", "ina260", INA260Config(address=0x41))


def test_identify() -> None:
    bus = FakeI2CBus([INA226Model(), INA260Model(address=0x41), INA219Model(address=0x42)])
    assert INA226.identify(bus, 0x40) == {"type": "ina226", "address": 0x40}
    assert INA260.identify(bus, 0x41) == {"type": "ina260", "address": 0x41}
    assert INA226.identify(bus, 0x41) is None and INA260.identify(bus, 0x40) is None
    assert INA226.identify(bus, 0x42) is None  # an INA219: no register 0xFE
    assert INA226.identify(bus, 0x43) is None  # nobody there
    assert bus.writes(0x40) == bus.writes(0x41) == []


def test_identify_leaves_other_chips_at_0x40_alone() -> None:
    htu = HTU21DModel()
    assert INA226.identify(FakeI2CBus([htu]), 0x40) is None
    assert htu.resets == 0  # 0xFE is the HTU21D's soft reset: never sent
    assert INA226.identify(FakeI2CBus([HDC1080Model()]), 0x40) is None  # TI too, but die id 0x1050


def test_hookimpl_registers_both() -> None:
    assert plugin.sensord_register_sensors() == [INA226, INA260]
    assert plugin.sensord_register_device_models() == [INA226Model, INA260Model]
    assert INA226Model.ADDRESSES == INA226.i2c_addresses == tuple(range(0x40, 0x50))
