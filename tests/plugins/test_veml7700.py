"""The `veml7700` driver: the datasheet's resolution table, register layout, and the whole driver
on a fake VEML7700."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.veml7700 as veml7700
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.veml7700 import VEML7700Model
from sensord_plugins.veml7700 import (
    VEML7700,
    VEML7700Config,
    config_word,
    illuminance_lux,
    resolution_lux,
    settle_s,
)

# Datasheet resolution table: lx per count and the range (count 0xFFFF) by gain and time.
RESOLUTION = [("2", 800, 0.0042, 275.2), ("1", 800, 0.0084, 550.5), ("1/4", 800, 0.0336, 2202),
              ("1/8", 800, 0.0672, 4404), ("2", 100, 0.0336, 2202), ("1/4", 100, 0.2688, 17616),
              ("1/8", 25, 2.1504, 140926), ("2", 25, 0.1344, 8808)]


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> VEML7700:
    return on_bus(VEML7700, bus, clock, name="desk", **options)


def rig(chip: VEML7700Model, clock: FakeClock, **options: object) -> tuple[VEML7700, FakeI2CBus]:
    return opened(VEML7700, chip, clock, name="desk", **options)


def lux(sensor: VEML7700) -> float:
    (reading,) = sensor.read()
    assert (reading.quantity, reading.unit) == ("illuminance", "lx")
    return float(reading.value)


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("gain", "integration_ms", "resolution", "maximum"), RESOLUTION)
def test_resolution_table(gain: str, integration_ms: int, resolution: float, maximum: float) -> None:
    assert resolution_lux(gain, integration_ms) == pytest.approx(resolution)
    assert illuminance_lux(0xFFFF, gain=gain, integration_ms=integration_ms) == pytest.approx(maximum, rel=1e-3)


def test_conversion() -> None:
    assert illuminance_lux(0, gain="1/4", integration_ms=100) == 0.0
    assert illuminance_lux(1000, gain="1/4", integration_ms=100) == pytest.approx(268.8)
    assert illuminance_lux(1000, gain="2", integration_ms=800) == pytest.approx(4.2)


@pytest.mark.parametrize(("gain", "integration_ms", "word"), [
    ("1", 100, 0x0000), ("2", 100, 0x0800), ("1/8", 100, 0x1000), ("1/4", 100, 0x1800),
    ("1", 25, 0x0300), ("1", 50, 0x0200), ("1", 200, 0x0040), ("1", 400, 0x0080), ("1", 800, 0x00C0),
    ("1/8", 25, 0x1300),
])
def test_config_word(gain: str, integration_ms: int, word: int) -> None:
    # ALS_GAIN in bits 12:11, ALS_IT in bits 9:6, ALS_SD (bit 0) clear: powered on.
    assert config_word(gain, integration_ms) == word


def test_settle_time() -> None:
    assert settle_s(100) == pytest.approx(0.110)
    assert settle_s(800) == pytest.approx(0.880)


def test_resolution_range_checks() -> None:
    with pytest.raises(ValueError, match=r"^gain '3': expected one of 1, 2, 1/8, 1/4$"):
        resolution_lux("3", 100)
    with pytest.raises(ValueError, match=r"^integration time 75 ms: expected one of 25, 50, 100, 200, 400, 800$"):
        resolution_lux("1", 75)


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize("light", [0.0, 12.5, 320.0, 5000.0, 17000.0])
def test_reads_illuminance(clock: FakeClock, light: float) -> None:
    sensor, _ = rig(VEML7700Model(lux=light, clock=clock.monotonic), clock)
    assert lux(sensor) == pytest.approx(light, abs=0.2688 / 2)


def test_open_configures_and_waits_one_integration_time(clock: FakeClock) -> None:
    model = VEML7700Model(lux=100.0, clock=clock.monotonic)
    sensor, bus = rig(model, clock, gain="1/8", integration_ms=400)
    # Power saving off, then ALS_CONF_0 (LSB first): gain 1/8, 400 ms, powered on.
    assert bus.writes(0x10) == [b"\x03\x00\x00", b"\x00\x80\x10"]
    assert model.powered and (model.gain, model.integration_ms) == (0.125, 400)
    assert clock.now == pytest.approx(0.440)
    assert lux(sensor) == pytest.approx(100.0, abs=0.1344 / 2)


def test_without_the_wait_the_register_would_still_be_zero(clock: FakeClock) -> None:
    model = VEML7700Model(lux=100.0, clock=clock.monotonic)
    model.write(0x00, b"\x00\x18")  # powered on at gain 1/4, 100 ms: the first result is due at 0.1 s
    assert model.read(0x04, 2) == b"\x00\x00"
    clock.advance(0.1)
    assert model.read(0x04, 2) != b"\x00\x00"


def test_byte_order_is_low_byte_first(clock: FakeClock) -> None:
    sensor, bus = rig(VEML7700Model(lux=0x0102 * 0.2688), clock)
    assert lux(sensor) == pytest.approx(0x0102 * 0.2688)
    assert bus.log[-1].op == "read_word_data" and bus.log[-1].data == b"\x02\x01"


def test_gain_and_integration_time_scale_the_count(clock: FakeClock) -> None:
    model = VEML7700Model(lux=42.0)
    sensor, _ = rig(model, clock, gain="2", integration_ms=800)
    assert model.registers[0x04] == 10000  # 42 lx / 0.0042 lx
    assert lux(sensor) == pytest.approx(42.0)


def test_saturation_is_an_error(clock: FakeClock) -> None:
    sensor, _ = rig(VEML7700Model(lux=1000.0), clock, gain="2", integration_ms=800)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "desk" (veml7700 @ 0x10 on bus 1): ALS count 0xffff: saturated '
                                  'above 275 lx (use a lower gain or a shorter integration_ms)')


def test_wrong_device_id(clock: FakeClock) -> None:
    bus = FakeI2CBus([VEML7700Model(device_id=0xC455)])
    with pytest.raises(SensorError) as excinfo:
        make(bus, clock).open()
    assert str(excinfo.value) == ('sensor "desk" (veml7700 @ 0x10 on bus 1): id register 0xc455: '
                                  'device id 0x55, expected 0x81 (is this a VEML7700?)')
    assert bus.writes(0x10) == []  # nothing configured on a chip that is not ours


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(VEML7700Model(lux=320.0), clock)
    bus.fail_next(0x10)
    assert lux(sensor) == pytest.approx(320.0, abs=0.2688 / 2)
    assert [t.error for t in bus.log].count(121) == 1


def test_nack_after_nack_is_an_error(clock: FakeClock) -> None:
    sensor, bus = rig(VEML7700Model(), clock)
    bus.fail_next(0x10, count=3)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value).startswith('sensor "desk" (veml7700 @ 0x10 on bus 1): no answer (NACK)')


def test_no_chip(clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(FakeI2CBus(), clock).open()
    assert str(excinfo.value).startswith('sensor "desk" (veml7700 @ 0x10 on bus 1): no answer (NACK)')


def test_channel(clock: FakeClock) -> None:
    (channel,) = make(FakeI2CBus(), clock, gain="2", integration_ms=800).channels()
    assert (channel.quantity, channel.unit, channel.resolution) == ("illuminance", "lx", pytest.approx(0.0042))


# -- the model --------------------------------------------------------------------------------


def test_model_starts_shut_down_and_ignores_read_only_writes() -> None:
    model = VEML7700Model(lux=500.0)
    assert not model.powered
    assert model.read(0x04, 2) == b"\x00\x00"
    model.write(0x07, b"\x00\x00")
    assert model.read(0x07, 2) == b"\x81\xc4"


@pytest.mark.parametrize(("register", "data", "reason"), [
    (0x08, b"\x00\x00", "command code 0x08 does not exist"),
    (0x00, b"\x00", "registers take a 16-bit word, got 00"),
    (0x00, b"\x40\x01", "ALS_CONF_0 0x0140: undefined ALS_IT code"),
])
def test_model_nacks_driver_bugs(register: int, data: bytes, reason: str) -> None:
    with pytest.raises(OSError, match=reason):
        VEML7700Model().write(register, data)


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(VEML7700Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.gain, cfg.integration_ms) == (1, 0x10, "1/4", 100)


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x11}, "f.toml: sensor[0].address: expected 0x10, found 0x11"),
    ({"gain": "1/2"}, 'f.toml: sensor[0].gain: expected one of "1/8", "1/4", "1", "2", found "1/2"'),
    ({"gain": 2}, 'f.toml: sensor[0].gain: expected one of "1/8", "1/4", "1", "2", found 2'),
    ({"integration_ms": 150}, "f.toml: sensor[0].integration_ms: expected one of 25, 50, 100, 200, 400, 800, "
                              "found 150"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(VEML7700Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(veml7700, VEML7700).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("desk", "veml7700", 30)
    assert spec.options == VEML7700Config(gain="1/4", integration_ms=100)


def test_identify_by_the_id_register() -> None:
    bus = FakeI2CBus([VEML7700Model()])
    assert VEML7700.identify(bus, 0x10) == {"type": "veml7700", "address": 0x10}
    assert bus.writes(0x10) == []  # one word read, nothing written
    assert VEML7700.identify(FakeI2CBus([VEML7700Model(device_id=0xC400)]), 0x10) is None
    assert VEML7700.identify(FakeI2CBus(), 0x10) is None


def test_hookimpl_registers_the_sensor() -> None:
    assert veml7700.sensord_register_sensors() == [VEML7700]
    assert veml7700.sensord_register_device_models() == [VEML7700Model]
    assert VEML7700.i2c_addresses == (0x10,) and VEML7700Model.DEFAULT_ADDRESS == 0x10
