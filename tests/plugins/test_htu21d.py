"""The `htu21d` driver (HTU21D, Si7021, SHT21): datasheet conversions and CRC, and the whole
driver on a fake chip."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.htu21d as htu21d
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus, RegisterMapDevice
from sensord.testing.models.htu21d import HTU21DModel
from sensord_plugins.htu21d import (
    HTU21D,
    HTU21DConfig,
    htu21d_crc,
    humidity_percent,
    parse_result,
    temperature_celsius,
)

NACK_MESSAGE = ('sensor "cellar" (htu21d @ 0x40 on bus 1): no answer (NACK): '
                'is it wired, powered, at this address?')


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> HTU21D:
    return on_bus(HTU21D, bus, clock, name="cellar", **options)


def rig(chip: HTU21DModel, clock: FakeClock, **options: object) -> tuple[HTU21D, FakeI2CBus]:
    return opened(HTU21D, chip, clock, name="cellar", **options)


def values(sensor: HTU21D) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "crc"), [(b"\xdc", 0x79), (b"\x68\x3a", 0x7C), (b"\x4e\x85", 0x6B)])
def test_crc_datasheet_examples(data: bytes, crc: int) -> None:
    assert htu21d_crc(data) == crc


def test_crc_differs_from_sensirions_init() -> None:
    from sensord.i2c import crc8

    assert htu21d_crc(b"\x68\x3a") != crc8(b"\x68\x3a")  # init 0x00, not 0xFF


def test_datasheet_conversion_examples() -> None:
    # HTU21D datasheet: S_T = 0x683A -> 24.7 °C (status bits masked), S_RH = 0x7C80 -> 54.8 %RH,
    # both given to one decimal.
    assert temperature_celsius(0x683A & 0xFFFC) == pytest.approx(24.7, abs=0.05)
    assert humidity_percent(0x7C80) == pytest.approx(54.8, abs=0.05)
    assert temperature_celsius(0) == pytest.approx(-46.85)
    assert humidity_percent(0) == pytest.approx(-6.0)
    assert humidity_percent(0xFFFF & 0xFFFC) == pytest.approx(118.99, abs=0.01)


def test_parse_result_masks_status_bits() -> None:
    assert parse_result(b"\x68\x38" + bytes([htu21d_crc(b"\x68\x38")]), humidity=False) == 0x6838
    assert parse_result(b"\x7c\x82" + bytes([htu21d_crc(b"\x7c\x82")]), humidity=True) == 0x7C80


def test_parse_result_errors() -> None:
    with pytest.raises(ValueError, match=r"^CRC mismatch: got 0x00, expected 0x7c \(data 68 3a 00\)$"):
        parse_result(b"\x68\x3a\x00", humidity=True)
    with pytest.raises(ValueError, match=r"^status bit 1 says humidity, expected temperature \(data 68 3a 7c\)$"):
        parse_result(b"\x68\x3a\x7c", humidity=False)
    with pytest.raises(ValueError, match=r"^status bit 1 says temperature, expected humidity"):
        parse_result(b"\x68\x38" + bytes([htu21d_crc(b"\x68\x38")]), humidity=True)
    with pytest.raises(ValueError, match="expected 3 bytes, got 2"):
        parse_result(b"\x68\x38", humidity=False)


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["htu21d", "si7021"])
def test_reads_temperature_and_humidity(clock: FakeClock, variant: str) -> None:
    model = HTU21DModel(temperature_c=24.7, humidity_pct=32.3, variant=variant, clock=clock.monotonic)  # type: ignore[arg-type]
    sensor, bus = rig(model, clock)
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [("temperature", "°C"), ("humidity", "%")]
    got = {r.quantity: r.value for r in readings}
    assert got["temperature"] == pytest.approx(24.7, abs=175.72 / 2**14)
    assert got["humidity"] == pytest.approx(32.3, abs=125 / 2**12)
    # Soft reset, user register read at open; then 0xF3 and 0xF5, each read back as 3 bytes.
    assert bus.writes(0x40) == [b"\xfe", b"\xf3", b"\xf5"]
    assert [len(t.data) for t in bus.log if t.op == "i2c_rdwr:read"] == [3, 3]


def test_open_waits_for_the_soft_reset(clock: FakeClock) -> None:
    model = HTU21DModel(clock=clock.monotonic)
    rig(model, clock)
    assert model.resets == 1
    assert clock.now == pytest.approx(0.015)


@pytest.mark.parametrize(("model", "waited_s"), [(None, 0.085 + 0.029), ("htu21d", 0.050 + 0.016),
                                                 ("si7021", 0.0108 + 0.0228)])
def test_waits_the_maximum_conversion_times(clock: FakeClock, model: str | None, waited_s: float) -> None:
    variant = "si7021" if model == "si7021" else "htu21d"
    sensor, _ = rig(HTU21DModel(variant=variant, clock=clock.monotonic), clock, model=model)  # type: ignore[arg-type]
    start = clock.now
    sensor.read()
    assert clock.now - start == pytest.approx(waited_s)


def test_too_short_a_wait_is_nacked_like_the_real_chip(clock: FakeClock) -> None:
    # model = "si7021" on an HTU21D: 10.8 ms is too short for its 44 ms temperature conversion.
    sensor, bus = rig(HTU21DModel(variant="htu21d", clock=clock.monotonic), clock, model="si7021")
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == NACK_MESSAGE
    assert bus.log[-1].op == "i2c_rdwr:read" and bus.log[-1].error == 121


def test_heater_left_on_is_switched_off(clock: FakeClock) -> None:
    model = HTU21DModel()
    model.user_register = 0x06  # heater on; the HTU21D keeps it across a soft reset
    _, bus = rig(model, clock)
    assert not model.heater
    assert bus.writes(0x40) == [b"\xfe", b"\xe6\x02"]


def test_unexpected_user_register_is_an_error(clock: FakeClock) -> None:
    other = RegisterMapDevice(address=0x40, registers={0xE7: 0x81})
    sensor = make(FakeI2CBus([other]), clock)
    with pytest.raises(SensorError) as excinfo:
        sensor.open()
    assert str(excinfo.value) == ('sensor "cellar" (htu21d @ 0x40 on bus 1): user register 0x81 after a '
                                  'soft reset: resolution bits 7,0 are not 00 (is this an HTU21D, Si7021 or SHT21?)')


def test_humidity_is_clamped_to_0_100(clock: FakeClock) -> None:
    model = HTU21DModel(humidity_pct=101.0)
    sensor, _ = rig(model, clock)
    assert values(sensor)["humidity"] == 100.0
    model.humidity_pct = -1.0
    assert values(sensor)["humidity"] == 0.0


def test_bad_crc_is_an_error_and_the_next_read_recovers(clock: FakeClock) -> None:
    model = HTU21DModel(temperature_c=-5.0)
    sensor, _ = rig(model, clock)
    model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r'^sensor "cellar" \(htu21d @ 0x40 on bus 1\): temperature: '
                                          r"CRC mismatch: got 0x[0-9a-f]{2}, expected 0x[0-9a-f]{2} \(data "):
        sensor.read()
    assert values(sensor)["temperature"] == pytest.approx(-5.0, abs=0.011)


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(HTU21DModel(), clock)
    bus.fail_next(0x40)
    assert values(sensor)["temperature"] == pytest.approx(21.0, abs=0.011)
    assert [t.error for t in bus.log].count(121) == 1






def test_channels_declare_units_and_resolution(clock: FakeClock) -> None:
    sensor = make(FakeI2CBus(), clock)
    assert [(c.quantity, c.unit) for c in sensor.channels()] == [("temperature", "°C"), ("humidity", "%")]
    assert [c.resolution for c in sensor.channels()] == [pytest.approx(0.01072, abs=1e-5),
                                                         pytest.approx(0.03052, abs=1e-5)]


# -- config, detection, registration -----------------------------------------------------------


def test_config_keys() -> None:
    cfg = build_options(HTU21DConfig, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.model) == (1, 0x40, None)
    assert build_options(HTU21DConfig, {"model": "si7021"}, "sensor[0]", "f.toml").model == "si7021"


@pytest.mark.parametrize(("table", "message"), [
    ({"model": "sht31"}, 'f.toml: sensor[0].model: expected one of "htu21d", "si7021", found "sht31"'),
    ({"address": 0x41}, "f.toml: sensor[0].address: expected 0x40, found 0x41"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(HTU21DConfig, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(htu21d, HTU21D).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("cellar", "htu21d", 60)
    assert spec.options == HTU21DConfig(model="si7021")


@pytest.mark.parametrize(("variant", "found"), [
    ("htu21d", {"type": "htu21d", "address": 0x40}),
    ("si7021", {"type": "htu21d", "address": 0x40, "model": "si7021"}),
])
def test_identify(variant: str, found: dict[str, object]) -> None:
    model = HTU21DModel(variant=variant)  # type: ignore[arg-type]
    model.user_register |= 0x04  # heater and resolution bits do not matter
    bus = FakeI2CBus([model])
    assert HTU21D.identify(bus, 0x40) == found
    assert bus.writes(0x40) == []  # the 0xE7 is a register phase, not a write to any register
    assert model.resets == 0


def test_identify_rejects_other_chips() -> None:
    assert HTU21D.identify(FakeI2CBus(), 0x40) is None
    pca9685 = RegisterMapDevice(address=0x40, registers={0x00: 0x11})  # reserved 0xE7 reads 0
    assert HTU21D.identify(FakeI2CBus([pca9685]), 0x40) is None
    assert HTU21D.identify(FakeI2CBus([HTU21DModel(address=0x41)]), 0x41) is None


def test_hookimpl_registers_the_sensor() -> None:
    assert htu21d.sensord_register_sensors() == [HTU21D]
    assert HTU21D.i2c_addresses == (0x40,) and HTU21DModel.DEFAULT_ADDRESS == 0x40
