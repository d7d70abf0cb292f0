"""The `bmp388` and `bmp390` drivers: the §9 floating-point compensation against a real chip's
calibration and readings, the measurement-time formula, and the whole driver on a fake chip,
with the error register, the status bits and a power-on reset behind its back."""

from __future__ import annotations

import struct

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.bmp3xx as bmp3xx
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.bme280 import BME280Model
from sensord.testing.models.bmp3xx import (
    REAL_NVM,
    REAL_RAW_PRESSURE,
    REAL_RAW_TEMPERATURE,
    BMP388Model,
    BMP390Model,
    pressure_float,
    quantized,
    temperature_float,
)
from sensord_plugins.bmp3xx import (
    BMP388,
    BMP390,
    BMP3Config,
    compensate_pressure,
    compensate_temperature,
    error_names,
    measurement_time_s,
    nvm_parameters,
    osr_code,
    parse_calibration,
)

# The 21 NVM bytes at 0x31..0x45 of a real BMP388, and the data registers 0x04..0x09 of one of
# its measurements (raw pressure 7184279, temperature 8771699): 100876.006 Pa, 30.4993 °C.
REAL_NVM_BYTES = bytes.fromhex("236b5849f65cffcef42300ea636e79f3f6aa4312c4")
REAL_DATA = bytes([151, 159, 109, 115, 216, 133])


def make(cls: type[BMP388], bus: FakeI2CBus, clock: FakeClock, **options: object) -> BMP388:
    return on_bus(cls, bus, clock, name="barometer", **options)


def rig(chip: BMP388Model, clock: FakeClock, cls: type[BMP388] = BMP388,
        **options: object) -> tuple[BMP388, FakeI2CBus]:
    return opened(cls, chip, clock, name="barometer", **options)


def values(sensor: BMP388) -> dict[str, float]:
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [("temperature", "°C"), ("pressure", "hPa")]
    return {r.quantity: float(r.value) for r in readings}


def prefix(type_name: str = "bmp388", address: int = 0x77) -> str:
    return f'sensor "barometer" ({type_name} @ 0x{address:02x} on bus 1): '


# -- pure functions ---------------------------------------------------------------------------


def test_nvm_layout() -> None:
    assert nvm_parameters(REAL_NVM_BYTES) == REAL_NVM
    assert struct.pack("<HHbhhbbHHbbhbb", *REAL_NVM) == REAL_NVM_BYTES


def test_calibration_scaling_by_powers_of_two() -> None:
    cal = parse_calibration(REAL_NVM_BYTES)
    # §9.1: PAR_T1 = NVM_PAR_T1 / 2^-8, PAR_P1 = (NVM_PAR_P1 - 2^14) / 2^20, PAR_P5 = NVM_PAR_P5 / 2^-3 ...
    assert cal.par_t1 == 27427 * 256
    assert cal.par_t2 == 18776 / 2**30 and cal.par_t3 == -10 / 2**48
    assert cal.par_p1 == (-164 - 16384) / 2**20 and cal.par_p2 == (-2866 - 16384) / 2**29
    assert cal.par_p3 == 35 / 2**32 and cal.par_p4 == 0.0 and cal.par_p5 == 25578 * 8
    assert cal.par_p6 == 31086 / 64 and cal.par_p7 == -13 / 256 and cal.par_p8 == -10 / 2**15
    assert cal.par_p9 == 17322 / 2**48 and cal.par_p10 == 18 / 2**48 and cal.par_p11 == -60 / 2**65
    # The model's independent table of the same section agrees.
    assert tuple(vars(cal).values()) == quantized(REAL_NVM)


def test_compensation_of_a_real_chips_measurement() -> None:
    cal = parse_calibration(REAL_NVM_BYTES)
    uncomp_press = int.from_bytes(REAL_DATA[:3], "little")
    uncomp_temp = int.from_bytes(REAL_DATA[3:], "little")
    assert (uncomp_press, uncomp_temp) == (REAL_RAW_PRESSURE, REAL_RAW_TEMPERATURE)
    t_lin = compensate_temperature(uncomp_temp, cal)
    assert t_lin == pytest.approx(30.499314453874284, abs=1e-9)
    assert compensate_pressure(uncomp_press, t_lin, cal) == pytest.approx(100876.00634692199, abs=1e-6)
    # The model's formulas (written separately) give the same.
    par = quantized(REAL_NVM)
    assert temperature_float(uncomp_temp, par) == pytest.approx(t_lin, abs=1e-12)
    assert pressure_float(uncomp_press, t_lin, par) == pytest.approx(100876.00634692199, abs=1e-6)


def test_pressure_falls_and_temperature_rises_with_the_raw_values() -> None:
    cal = parse_calibration(REAL_NVM_BYTES)
    t = [compensate_temperature(raw, cal) for raw in (8_000_000, 8_771_699, 9_000_000)]
    assert t == sorted(t)
    p = [compensate_pressure(raw, 25.0, cal) for raw in (6_000_000, 7_184_279, 8_000_000)]
    assert p == sorted(p, reverse=True)


@pytest.mark.parametrize(("osr_p", "osr_t", "seconds"), [
    (1, 1, 0.004829), (8, 1, 0.018969), (32, 2, 0.069469), (32, 32, 0.130069)])
def test_measurement_time(osr_p: int, osr_t: int, seconds: float) -> None:
    # The datasheet's measurement time: 234 µs + (392 µs + 2^osr_p x 2020 µs) + (163 µs + 2^osr_t x 2020 µs).
    assert measurement_time_s(osr_p, osr_t) == pytest.approx(seconds)


def test_osr_codes_and_error_names() -> None:
    assert [osr_code(n) for n in (1, 2, 4, 8, 16, 32)] == [0, 1, 2, 3, 4, 5]
    assert error_names(0x07) == ["fatal_err", "cmd_err", "conf_err"] and error_names(0x04) == ["conf_err"]


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize("cls_model", [(BMP388, BMP388Model), (BMP390, BMP390Model)])
def test_reads_the_real_chips_measurement(clock: FakeClock, cls_model: tuple[type[BMP388], type[BMP388Model]]) -> None:
    cls, model_cls = cls_model
    model = model_cls(clock=clock.monotonic)
    model.raw_pressure, model.raw_temperature = REAL_RAW_PRESSURE, REAL_RAW_TEMPERATURE
    sensor, _ = rig(model, clock, cls)
    assert values(sensor) == {"temperature": 30.5, "pressure": 1008.76}


@pytest.mark.parametrize(("celsius", "pascal"), [(-20.0, 95000.0), (0.0, 101325.0), (21.37, 98765.4),
                                                 (45.0, 110000.0)])
def test_reads_what_the_model_measures(clock: FakeClock, celsius: float, pascal: float) -> None:
    sensor, _ = rig(BMP390Model(temperature_c=celsius, pressure_pa=pascal), clock, BMP390)
    got = values(sensor)
    assert got["temperature"] == pytest.approx(celsius, abs=0.01)
    assert got["pressure"] == pytest.approx(pascal / 100, abs=0.01)


def test_open_resets_loads_calibration_and_writes_the_settings(clock: FakeClock) -> None:
    model = BMP388Model(clock=clock.monotonic)
    sensor, bus = rig(model, clock, oversampling_pressure=8, oversampling_temperature=2, iir_filter=3)
    # Soft reset (0xB6 to CMD 0x7E); OSR 0x1C: osr_t x2 (1) in bits 5:3, osr_p x8 (3) in bits 2:0;
    # CONFIG 0x1F: iir_filter coefficient 3 (code 2) in bits 3:1.
    assert bus.writes(0x77) == [b"\x7e\xb6", b"\x1c\x0b", b"\x1f\x04"]
    assert model.resets == 1 and model.peek(0x10) == b"\x00"  # por_detected read (cleared) after the reset


def test_a_read_is_one_forced_measurement_waited_for(clock: FakeClock) -> None:
    model = BMP388Model(clock=clock.monotonic)
    sensor, bus = rig(model, clock, oversampling_pressure=32, oversampling_temperature=2)
    bus.log.clear()
    before = clock.now
    values(sensor)
    assert clock.now - before == pytest.approx(measurement_time_s(32, 2))
    assert bus.writes(0x77) == [b"\x1b\x13"]  # PWR_CTRL: press_en, temp_en, mode forced
    assert [(t.op, t.register) for t in bus.log] == [
        ("read_byte_data", 0x10), ("write_byte_data", 0x1B), ("read_byte_data", 0x03), ("read_byte_data", 0x02),
        ("read_i2c_block_data", 0x04)]
    assert model.measurements == 1 and model.peek(0x1B)[0] >> 4 == 0  # back to sleep


def test_without_the_wait_drdy_is_still_clear(clock: FakeClock) -> None:
    model = BMP388Model(clock=clock.monotonic)
    model.write(0x1B, b"\x13")
    assert model.read(0x03, 1)[0] & 0x60 == 0
    clock.advance(measurement_time_s(4, 1) - 1e-6)  # the reset value of OSR: x4 pressure, x1 temperature
    assert model.read(0x03, 1)[0] & 0x60 == 0
    clock.advance(2e-6)
    assert model.read(0x03, 1)[0] & 0x60 == 0x60


def test_a_measurement_that_never_finishes_is_an_error(clock: FakeClock) -> None:
    model = BMP388Model(clock=clock.monotonic)
    sensor, _ = rig(model, clock)
    model.stuck = True
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == prefix() + ("measurement not finished: status 0x10, drdy_press (0x20) and "
                                             "drdy_temp (0x40) not both set after 20 polls")


def test_fatal_error_resets_the_chip_and_the_next_read_works(clock: FakeClock) -> None:
    model = BMP388Model()
    model.raw_pressure, model.raw_temperature = REAL_RAW_PRESSURE, REAL_RAW_TEMPERATURE
    sensor, bus = rig(model, clock, oversampling_pressure=4)
    model.fatal = True
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == prefix() + ("error register 0x01 (fatal_err) after a forced measurement: "
                                             "the chip was soft-reset")
    assert model.resets == 2 and not model.fatal
    assert bus.writes(0x77)[-3:] == [b"\x7e\xb6", b"\x1c\x02", b"\x1f\x00"]  # reset, then the settings again
    assert values(sensor) == {"temperature": 30.5, "pressure": 1008.76}


def test_cmd_err_is_reported_once(clock: FakeClock) -> None:
    model = BMP388Model()
    sensor, _ = rig(model, clock)
    model.write(0x7E, b"\x42")  # not a command: cmd_err
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == prefix() + "error register 0x02 (cmd_err) after a forced measurement"
    assert values(sensor)["pressure"] == pytest.approx(1008.76, abs=0.01)  # cleared when read


def test_a_fatal_error_at_open_is_an_error(clock: FakeClock) -> None:
    model = BMP388Model()
    model.fatal = True  # a soft reset clears it in the model; set it again after that
    original = model.on_write

    def refatal(register: int, value: int) -> None:
        original(register, value)
        if register == 0x7E:
            model.fatal = True

    model.on_write = refatal  # type: ignore[method-assign]
    with pytest.raises(SensorError) as excinfo:
        make(BMP388, FakeI2CBus([model]), clock).open()
    assert str(excinfo.value) == prefix() + ("error register 0x01 (fatal_err) after a soft reset: the chip was "
                                             "soft-reset")


def test_power_on_reset_behind_the_drivers_back_rewrites_the_settings(clock: FakeClock) -> None:
    model = BMP390Model()
    sensor, bus = rig(model, clock, BMP390, oversampling_pressure=16, iir_filter=127)
    model.power_on_reset()
    assert model.peek(0x1C) == b"\x02"  # the reset value: the configured x16 is gone
    bus.log.clear()
    values(sensor)
    assert bus.writes(0x77) == [b"\x1c\x04", b"\x1f\x0e", b"\x1b\x13"]
    assert model.peek(0x1C) == b"\x04"


def test_wrong_chip_id(clock: FakeClock) -> None:
    bus = FakeI2CBus([BMP388Model(chip_id=0x58)])
    with pytest.raises(SensorError) as excinfo:
        make(BMP388, bus, clock).open()
    assert str(excinfo.value) == prefix() + "chip id 0x58, expected 0x50"
    assert bus.writes(0x77) == []  # nothing reset on a chip that is not ours


@pytest.mark.parametrize(("cls", "model", "message"), [
    (BMP388, BMP390Model(), 'chip id 0x60, expected 0x50 (a BMP390: use type = "bmp390")'),
    (BMP390, BMP388Model(), 'chip id 0x50, expected 0x60 (a BMP388: use type = "bmp388")'),
])
def test_the_other_chip_is_named(clock: FakeClock, cls: type[BMP388], model: BMP388Model, message: str) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(cls, FakeI2CBus([model]), clock).open()
    assert str(excinfo.value) == prefix(cls.type_name) + message


def test_blank_calibration_is_an_error(clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(BMP388, FakeI2CBus([BMP388Model(nvm=(0,) * 14)]), clock).open()
    assert str(excinfo.value) == prefix() + "calibration NVM invalid (21 bytes of 0x00)"


def test_read_before_open(clock: FakeClock) -> None:
    with pytest.raises(SensorError, match=r"read\(\) before open\(\)"):
        make(BMP388, FakeI2CBus([BMP388Model()]), clock).read()


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(BMP388Model(), clock)
    bus.fail_next(0x77)
    assert values(sensor)["temperature"] == pytest.approx(30.5, abs=0.01)
    assert [t.error for t in bus.log].count(121) == 1


def test_unplugged_after_open_is_an_error(clock: FakeClock) -> None:
    sensor, bus = rig(BMP388Model(), clock)
    bus.detach(0x77)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value).startswith(prefix() + "no answer (NACK)")


def test_no_chip(clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(BMP390, FakeI2CBus(), clock, address=0x76).open()
    assert str(excinfo.value).startswith(prefix("bmp390", 0x76) + "no answer (NACK)")


def test_channels(clock: FakeClock) -> None:
    channels = make(BMP388, FakeI2CBus(), clock).channels()
    assert [(c.quantity, c.unit, c.resolution) for c in channels] == [("temperature", "°C", 0.01),
                                                                      ("pressure", "hPa", 0.01)]


# -- the model --------------------------------------------------------------------------------


@pytest.mark.parametrize(("register", "data", "reason"), [
    (0x00, b"\x50", "not a writable register"),
    (0x31, b"\x00", "not a writable register"),
    (0x1E, b"\x00", "not a writable register"),
])
def test_model_nacks_writes_to_read_only_or_missing_registers(register: int, data: bytes, reason: str) -> None:
    with pytest.raises(OSError, match=reason):
        BMP388Model().write(register, data)


def test_model_nacks_reads_past_the_map() -> None:
    with pytest.raises(OSError, match="reaches a register the map does not have"):
        BMP388Model().read(0x08, 3)


def test_model_flags_a_bad_osr_and_a_bad_command() -> None:
    model = BMP388Model()
    model.write(0x1C, b"\x06")  # osr_p code 6: above x32
    model.write(0x7E, b"\x00")
    assert model.read(0x02, 1) == bytearray([0x06])
    assert model.read(0x02, 1) == bytearray([0x00])  # cmd_err and conf_err clear on read


def test_model_drdy_clears_when_the_data_are_read() -> None:
    model = BMP388Model()
    model.write(0x1B, b"\x13")
    assert model.read(0x03, 1)[0] & 0x60 == 0x60
    model.read(0x04, 6)
    assert model.read(0x03, 1)[0] & 0x60 == 0


def test_model_measures_only_what_is_enabled() -> None:
    model = BMP388Model()
    model.write(0x1B, b"\x12")  # temp_en only, forced
    assert model.read(0x03, 1)[0] & 0x60 == 0x40
    assert model.read(0x04, 3) == bytearray(3)


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(BMP3Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.oversampling_pressure, cfg.oversampling_temperature, cfg.iir_filter) == \
        (1, 0x77, 1, 1, 0)


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x75}, "f.toml: sensor[0].address: expected an address from 0x76 to 0x77, found 0x75"),
    ({"oversampling_pressure": 64}, "f.toml: sensor[0].oversampling_pressure: expected one of 1, 2, 4, 8, 16, 32, "
                                    "found 64"),
    ({"iir_filter": 2}, "f.toml: sensor[0].iir_filter: expected one of 0, 1, 3, 7, 15, 31, 63, 127, found 2"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(BMP3Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    first, second = example_config(bmp3xx, BMP388, BMP390).sensors
    assert (first.name, first.type, first.interval_s) == ("barometer", "bmp390", 60)
    assert first.options == BMP3Config(address=0x77, oversampling_pressure=8)
    assert (second.type, second.options) == ("bmp388", BMP3Config(address=0x76))


def test_identify_by_the_chip_id() -> None:
    bus = FakeI2CBus([BMP388Model(), BMP390Model(address=0x76)])
    assert BMP388.identify(bus, 0x77) == {"type": "bmp388", "address": 0x77}
    assert BMP390.identify(bus, 0x76) == {"type": "bmp390", "address": 0x76}
    assert BMP388.identify(bus, 0x76) is None and BMP390.identify(bus, 0x77) is None
    assert bus.writes(0x76) == bus.writes(0x77) == []
    assert BMP388.identify(FakeI2CBus([BME280Model()]), 0x76) is None  # its register 0x00 is not an id
    assert BMP388.identify(FakeI2CBus(), 0x77) is None


def test_hookimpl_registers_the_sensors() -> None:
    assert bmp3xx.sensord_register_sensors() == [BMP388, BMP390]
    assert bmp3xx.sensord_register_device_models() == [BMP388Model, BMP390Model]
    assert BMP388.i2c_addresses == BMP390.i2c_addresses == (0x76, 0x77)
