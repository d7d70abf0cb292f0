"""The `tmp102` driver: the datasheet's data-format tables, byte order, and the whole driver
on a fake TMP102."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.tmp102 as tmp102
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.i2c import signed, swap16
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.tmp102 import LM75Model, TMP102Model
from sensord_plugins.tmp102 import (
    TMP102,
    TMP102Config,
    decode_temperature,
    tmp102_celsius,
)

# TMP102 datasheet Table 5 (12-bit) and Table 6 (13-bit, extended mode).
TABLE_5 = [(0x7FF, 127.9375), (0x640, 100), (0x500, 80), (0x4B0, 75), (0x320, 50), (0x190, 25),
           (0x004, 0.25), (0x000, 0), (0xFFC, -0.25), (0xE70, -25), (0xC90, -55)]
TABLE_6 = [(0x0960, 150), (0x0800, 128), (0x07FF, 127.9375), (0x0640, 100), (0x0500, 80),
           (0x04B0, 75), (0x0320, 50), (0x0190, 25), (0x0004, 0.25), (0x0000, 0), (0x1FFC, -0.25),
           (0x1E70, -25), (0x1C90, -55)]


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> TMP102:
    return on_bus(TMP102, bus, clock, name="radiator", **options)


def rig(chip: TMP102Model, clock: FakeClock, **options: object) -> tuple[TMP102, FakeI2CBus]:
    return opened(TMP102, chip, clock, name="radiator", **options)


def celsius(sensor: TMP102) -> float:
    (reading,) = sensor.read()
    assert (reading.quantity, reading.unit) == ("temperature", "°C")
    return float(reading.value)


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), TABLE_5)
def test_table_5_12_bit(raw: int, expected: float) -> None:
    assert tmp102_celsius(raw) == pytest.approx(expected)
    assert decode_temperature(raw << 4) == pytest.approx(expected)


@pytest.mark.parametrize(("raw", "expected"), TABLE_6)
def test_table_6_13_bit(raw: int, expected: float) -> None:
    assert tmp102_celsius(raw, extended=True) == pytest.approx(expected)
    assert decode_temperature(raw << 3 | 1) == pytest.approx(expected)  # D0 flags extended mode


def test_signed() -> None:
    assert signed(0x7FF, 12) == 2047
    assert signed(0x800, 12) == -2048
    assert signed(0xFFF, 12) == -1
    assert signed(0x1FFF, 13) == -1


def test_swap16() -> None:
    # smbus2's read_word_data returns the first byte on the wire in the low half.
    assert swap16(0x0019) == 0x1900
    assert swap16(0x1900) == 0x0019
    assert swap16(swap16(0xE700)) == 0xE700


def test_unused_bits_must_be_zero() -> None:
    with pytest.raises(ValueError, match=r"^temperature register 0x1907: unused bits 0x0006 should read 0$"):
        decode_temperature(0x1907)
    with pytest.raises(ValueError, match=r"^temperature register 0x1908: unused bits 0x000f should read 0$"):
        decode_temperature(0x1908)


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize("temperature", [25.0, -25.0, 127.9375, -55.0, 0.0625])
def test_reads_temperature(clock: FakeClock, temperature: float) -> None:
    sensor, _ = rig(TMP102Model(temperature_c=temperature), clock)
    assert celsius(sensor) == pytest.approx(temperature)


def test_byte_order_on_the_wire(clock: FakeClock) -> None:
    sensor, bus = rig(TMP102Model(temperature_c=25.0), clock)
    assert celsius(sensor) == 25.0  # 0x1900: unswapped it would read 0x0019 -> 0.0625 °C
    assert bus.log[-1].op == "read_word_data" and bus.log[-1].data == b"\x19\x00"


def test_open_leaves_a_fresh_chip_alone(clock: FakeClock) -> None:
    model = TMP102Model()
    _, bus = rig(model, clock)
    assert bus.writes(0x48) == []
    assert model.config == 0x60A0


def test_extended_mode_is_set_at_open(clock: FakeClock) -> None:
    model = TMP102Model(temperature_c=150.0)
    sensor, bus = rig(model, clock, extended=True)
    assert model.extended
    assert bus.writes(0x48) == [b"\x01\x60\xb0"]  # 0x60A0 | EM, high byte first
    assert celsius(sensor) == 150.0


def test_without_extended_mode_the_reading_saturates(clock: FakeClock) -> None:
    sensor, _ = rig(TMP102Model(temperature_c=150.0), clock)
    assert celsius(sensor) == 127.9375  # Table 5: 128 °C and above read 0x7FF


def test_extended_mode_set_by_someone_else_is_cleared(clock: FakeClock) -> None:
    model = TMP102Model()
    model.config |= 0x0010
    rig(model, clock, extended=False)
    assert not model.extended


def test_shutdown_is_left_and_a_conversion_awaited(clock: FakeClock) -> None:
    model = TMP102Model(temperature_c=10.0)
    model.write_raw(b"\x01\x61\xa0")  # SD: the register keeps 10 °C
    model.temperature_c = 30.0
    sensor, bus = rig(model, clock)
    assert bus.writes(0x48) == [b"\x01\x60\xa0"]
    assert clock.now == pytest.approx(0.035)
    assert celsius(sensor) == 30.0


def test_an_lm75_is_refused_with_a_hint(clock: FakeClock) -> None:
    bus = FakeI2CBus([LM75Model()])
    with pytest.raises(SensorError) as excinfo:
        make(bus, clock).open()
    assert str(excinfo.value) == ('sensor "radiator" (tmp102 @ 0x48 on bus 1): configuration register '
                                  '0x0000: read-only resolution bits R1,R0 are 00, expected 11 '
                                  '(an LM75 at this address is type lm75)')


def test_garbage_in_unused_bits_is_an_error(clock: FakeClock) -> None:
    class Noisy(TMP102Model):
        """Sets bit 3 of the temperature register, which a TMP102 in 12-bit mode keeps at 0."""

        def _register(self, pointer: int) -> bytes:
            word = super()._register(pointer)
            return word[:1] + bytes([word[1] | 0x08]) if pointer == 0 else word

    sensor, _ = rig(Noisy(temperature_c=25.0), clock)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "radiator" (tmp102 @ 0x48 on bus 1): temperature register '
                                  '0x1908: unused bits 0x000f should read 0')


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(TMP102Model(temperature_c=-25.0), clock)
    bus.fail_next(0x48)
    assert celsius(sensor) == -25.0
    assert [t.error for t in bus.log].count(121) == 1






@pytest.mark.parametrize("address", [0x48, 0x49, 0x4A, 0x4B])
def test_every_address(clock: FakeClock, address: int) -> None:
    sensor, _ = rig(TMP102Model(address=address, temperature_c=-0.25), clock, address=address)
    assert celsius(sensor) == -0.25


def test_channel(clock: FakeClock) -> None:
    (channel,) = make(FakeI2CBus(), clock).channels()
    assert (channel.quantity, channel.unit, channel.resolution) == ("temperature", "°C", 0.0625)


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(TMP102Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.extended) == (1, 0x48, False)


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x4C}, "f.toml: sensor[0].address: expected an address from 0x48 to 0x4b, found 0x4c"),
    ({"extended": 1}, "f.toml: sensor[0].extended: expected true or false, found 1"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(TMP102Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(tmp102, TMP102).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("radiator", "tmp102", 15)
    assert spec.options == TMP102Config(address=0x49)


def test_identify_is_never_sure() -> None:
    bus = FakeI2CBus([TMP102Model()])
    assert TMP102.identify(bus, 0x48) is None
    assert bus.log == []  # not even a pointer write


def test_hookimpl_registers_the_sensor() -> None:
    assert tmp102.sensord_register_sensors() == [TMP102]
    assert TMP102.i2c_addresses == (0x48, 0x49, 0x4A, 0x4B) and TMP102Model.DEFAULT_ADDRESS == 0x48
