"""The `hdc1080` driver: the datasheet's conversion formulas and register layout, and the whole
driver on a fake HDC1080 with conversion times on a fake clock."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.hdc1080 as hdc1080
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.hdc1080 import HDC1080Model, encode_humidity, encode_temperature
from sensord.testing.models.htu21d import HTU21DModel
from sensord_plugins.hdc1080 import (
    HDC1080,
    HDC1080Config,
    config_word,
    conversion_s,
    humidity_percent,
    temperature_celsius,
)


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> HDC1080:
    return on_bus(HDC1080, bus, clock, name="pantry", **options)


def rig(chip: HDC1080Model, clock: FakeClock, **options: object) -> tuple[HDC1080, FakeI2CBus]:
    return opened(HDC1080, chip, clock, name="pantry", **options)


def values(sensor: HDC1080) -> tuple[float, float]:
    temperature, humidity = sensor.read()
    assert (temperature.quantity, temperature.unit, humidity.quantity, humidity.unit) == \
        ("temperature", "°C", "humidity", "%")
    return float(temperature.value), float(humidity.value)


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "celsius"), [(0x0000, -40.0), (0x6000, 21.875), (0x8000, 42.5),
                                              (0xFFFC, 124.98992919921875)])
def test_temperature_formula(raw: int, celsius: float) -> None:
    # §8.6.1: Temperature(°C) = TEMPERATURE[15:00] / 2^16 × 165 °C - 40 °C
    assert temperature_celsius(raw) == pytest.approx(celsius)


@pytest.mark.parametrize(("raw", "percent"), [(0x0000, 0.0), (0x4000, 25.0), (0x8000, 50.0), (0xFFFC, 99.993896)])
def test_humidity_formula(raw: int, percent: float) -> None:
    # §8.6.2: Relative Humidity (%RH) = HUMIDITY[15:00] / 2^16 × 100 %RH
    assert humidity_percent(raw) == pytest.approx(percent)


@pytest.mark.parametrize(("t_bits", "h_bits", "word"), [(14, 14, 0x1000), (11, 14, 0x1400), (14, 11, 0x1100),
                                                        (14, 8, 0x1200), (11, 8, 0x1600)])
def test_config_word(t_bits: int, h_bits: int, word: int) -> None:
    # MODE (bit 12) set, TRES bit 10, HRES bits 9:8, heater (bit 13) and reset (bit 15) clear.
    assert config_word(t_bits, h_bits) == word


def test_conversion_wait() -> None:
    assert conversion_s(14, 14) == pytest.approx((0.00635 + 0.0065) * 1.25)
    assert conversion_s(11, 8) == pytest.approx((0.00365 + 0.0025) * 1.25)


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize(("temperature", "humidity"), [(21.0, 45.0), (-40.0, 0.0), (85.0, 100.0), (0.0, 12.3)])
def test_reads_temperature_and_humidity(clock: FakeClock, temperature: float, humidity: float) -> None:
    sensor, _ = rig(HDC1080Model(temperature_c=temperature, humidity_pct=humidity, clock=clock.monotonic), clock)
    t, h = values(sensor)
    assert t == pytest.approx(temperature, abs=165 / 2**14)
    assert h == pytest.approx(humidity, abs=100 / 2**14)


def test_open_checks_ids_and_writes_the_configuration(clock: FakeClock) -> None:
    model = HDC1080Model()
    model.config = 0x3000  # heater left on by someone else
    _, bus = rig(model, clock, temperature_bits=11, humidity_bits=8)
    assert bus.writes(0x40) == [b"\x02\x16\x00"]  # MODE, TRES 11 bit, HRES 8 bit, heater off
    assert (model.temperature_bits, model.humidity_bits) == (11, 8)


def test_a_read_starts_a_sequence_and_waits_for_it(clock: FakeClock) -> None:
    model = HDC1080Model(temperature_c=21.875, humidity_pct=50.0, clock=clock.monotonic)
    sensor, bus = rig(model, clock)
    before = clock.now
    assert values(sensor) == (pytest.approx(21.875), pytest.approx(50.0))
    assert clock.now - before == pytest.approx(conversion_s(14, 14))
    assert model.conversions == 1
    # Pointer 0x00 written alone, then one 4-byte read: temperature, humidity, MSB first.
    assert bus.writes(0x40)[-1] == b"\x00"
    assert bus.log[-1].data == b"\x60\x00\x80\x00"


def test_the_model_nacks_a_read_before_the_conversion_ends(clock: FakeClock) -> None:
    model = HDC1080Model(clock=clock.monotonic)
    model.write_raw(b"\x00")
    with pytest.raises(OSError, match="converting"):
        model.read_raw(4)
    clock.advance(0.013)
    assert model.read_raw(4) == (encode_temperature(21.0).to_bytes(2, "big") + encode_humidity(45.0).to_bytes(2, "big"))
    with pytest.raises(OSError, match="no measurement started"):
        model.read_raw(4)


def test_nack_after_nack_is_an_error(clock: FakeClock) -> None:
    model = HDC1080Model(clock=clock.monotonic)
    sensor, bus = rig(model, clock)
    bus.fail_next(0x40, count=3)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value).startswith('sensor "pantry" (hdc1080 @ 0x40 on bus 1): no answer (NACK)')


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(HDC1080Model(temperature_c=30.0, clock=clock.monotonic), clock)
    bus.fail_next(0x40)
    assert values(sensor)[0] == pytest.approx(30.0, abs=0.01)


def test_resolution_shows_in_the_values(clock: FakeClock) -> None:
    sensor, _ = rig(HDC1080Model(temperature_c=21.3, humidity_pct=33.3), clock, temperature_bits=11,
                    humidity_bits=8)
    t, h = values(sensor)
    assert t == pytest.approx(21.3, abs=165 / 2**11) and t != pytest.approx(21.3, abs=0.001)
    assert h == pytest.approx(33.3, abs=100 / 2**8)
    assert (t + 40) / 165 * 2**11 == pytest.approx(round((t + 40) / 165 * 2**11))  # on the 11-bit grid


def test_low_supply_is_an_error(clock: FakeClock) -> None:
    sensor, _ = rig(HDC1080Model(low_battery=True), clock)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "pantry" (hdc1080 @ 0x40 on bus 1): supply below 2.8 V (BTST set): '
                                  'readings would be out of specification')


def test_wrong_manufacturer_id(clock: FakeClock) -> None:
    bus = FakeI2CBus([HDC1080Model(manufacturer_id=0x1234)])
    with pytest.raises(SensorError) as excinfo:
        make(bus, clock).open()
    assert str(excinfo.value) == ('sensor "pantry" (hdc1080 @ 0x40 on bus 1): manufacturer id 0x1234, '
                                  'expected 0x5449 (Texas Instruments)')
    assert bus.writes(0x40) == []  # nothing configured on a chip that is not ours


def test_wrong_device_id(clock: FakeClock) -> None:
    # An HDC1010 or HDC2080 has TI's manufacturer id too.
    with pytest.raises(SensorError) as excinfo:
        make(FakeI2CBus([HDC1080Model(device_id=0x07D0)]), clock).open()
    assert str(excinfo.value) == ('sensor "pantry" (hdc1080 @ 0x40 on bus 1): device id 0x07d0, '
                                  'expected 0x1050 (HDC1080)')


def test_no_chip(clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(FakeI2CBus(), clock).open()
    assert str(excinfo.value).startswith('sensor "pantry" (hdc1080 @ 0x40 on bus 1): no answer (NACK)')


def test_channels(clock: FakeClock) -> None:
    temperature, humidity = make(FakeI2CBus(), clock, temperature_bits=11, humidity_bits=8).channels()
    assert (temperature.quantity, temperature.unit, temperature.resolution) == ("temperature", "°C",
                                                                                 pytest.approx(0.0806, abs=1e-4))
    assert (humidity.quantity, humidity.unit, humidity.resolution) == ("humidity", "%", pytest.approx(0.390625))


# -- the model --------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x03", "pointer 0x03 does not exist"),
    (b"\x00\x12\x34", "the result registers are read-only"),
    (b"\x02\x10", "the configuration takes a 16-bit word"),
    (b"\x02\x13\x00", "HRES 11 is reserved"),
])
def test_model_nacks_driver_bugs(data: bytes, reason: str) -> None:
    with pytest.raises(OSError, match=reason):
        HDC1080Model().write_raw(data)


def test_model_reset_and_read_only_bits() -> None:
    model = HDC1080Model(low_battery=True)
    model.write_raw(b"\x02\x36\x00")
    assert model.read(0x02, 2) == b"\x3e\x00"  # BTST reads 1 and cannot be written
    model.write_raw(b"\x02\x80\x00")
    assert model.config == 0x1000
    model.write_raw(b"\xff\x00\x00")
    assert model.read(0xFF, 2) == b"\x10\x50"


def test_model_without_mode_measures_one_quantity() -> None:
    model = HDC1080Model(temperature_c=-40.0, humidity_pct=50.0)
    model.write_raw(b"\x02\x00\x00")
    assert model.read(0x00, 2) == b"\x00\x00"
    assert model.read(0x01, 2) == b"\x80\x00"


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(HDC1080Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.temperature_bits, cfg.humidity_bits) == (1, 0x40, 14, 14)


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x41}, "f.toml: sensor[0].address: expected 0x40, found 0x41"),
    ({"temperature_bits": 8}, "f.toml: sensor[0].temperature_bits: expected one of 14, 11, found 8"),
    ({"humidity_bits": 12}, "f.toml: sensor[0].humidity_bits: expected one of 14, 11, 8, found 12"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(HDC1080Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(hdc1080, HDC1080).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("pantry", "hdc1080", 60)
    assert spec.options == HDC1080Config()


def test_identify_by_the_id_registers() -> None:
    model = HDC1080Model()
    bus = FakeI2CBus([model])
    assert HDC1080.identify(bus, 0x40) == {"type": "hdc1080", "address": 0x40}
    assert model.conversions == 0 and bus.writes(0x40) == []  # register reads only, no measurement
    assert HDC1080.identify(FakeI2CBus([HDC1080Model(device_id=0x1000)]), 0x40) is None
    assert HDC1080.identify(FakeI2CBus(), 0x40) is None
    assert HDC1080.identify(bus, 0x41) is None


def test_identify_leaves_an_htu21d_alone() -> None:
    # 0xFE, the pointer of the manufacturer id, is the HTU21D's soft-reset command: identify
    # reads the configuration (0x02) first, which the HTU21D NACKs.
    htu = HTU21DModel()
    assert HDC1080.identify(FakeI2CBus([htu]), 0x40) is None
    assert htu.resets == 0


def test_hookimpl_registers_the_sensor() -> None:
    assert hdc1080.sensord_register_sensors() == [HDC1080]
    assert hdc1080.sensord_register_device_models() == [HDC1080Model]
    assert HDC1080.i2c_addresses == HDC1080Model.ADDRESSES == (0x40,)
