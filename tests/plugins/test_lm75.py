"""The `lm75` driver: the datasheets' data-format tables (9-bit LM75, 11-bit LM75B), byte
order, and the whole driver on a fake LM75."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.lm75 as lm75
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.i2c import swap16
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.tmp102 import LM75Model, TMP102Model
from sensord_plugins.lm75 import LM75, LM75Config, decode_temperature, lm75_celsius

# LM75 temperature data format (9-bit; the same table is ST STLM75 Table 3).
TABLE_9_BIT = [(0x0FA, 125.0), (0x032, 25.0), (0x001, 0.5), (0x000, 0.0), (0x1FF, -0.5),
               (0x1CE, -25.0), (0x1B0, -40.0), (0x192, -55.0)]
# NXP LM75B Table 10 (11-bit).
TABLE_11_BIT = [(0x3F8, 127.0), (0x3F7, 126.875), (0x3F1, 126.125), (0x3E8, 125.0), (0x0C8, 25.0),
                (0x001, 0.125), (0x000, 0.0), (0x7FF, -0.125), (0x738, -25.0), (0x649, -54.875),
                (0x648, -55.0)]


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> LM75:
    return on_bus(LM75, bus, clock, name="enclosure", **options)


def rig(chip: LM75Model, clock: FakeClock, **options: object) -> tuple[LM75, FakeI2CBus]:
    return opened(LM75, chip, clock, name="enclosure", **options)


def celsius(sensor: LM75) -> float:
    (reading,) = sensor.read()
    assert (reading.quantity, reading.unit) == ("temperature", "°C")
    return float(reading.value)


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), TABLE_9_BIT)
def test_9_bit_table(raw: int, expected: float) -> None:
    assert lm75_celsius(raw) == pytest.approx(expected)
    assert decode_temperature(raw << 7 | 0x7F) == pytest.approx(expected)  # D6-D0 undefined


@pytest.mark.parametrize(("raw", "expected"), TABLE_11_BIT)
def test_11_bit_table(raw: int, expected: float) -> None:
    assert lm75_celsius(raw, bits=11) == pytest.approx(expected)
    assert decode_temperature(raw << 5, bits=11) == pytest.approx(expected)
    # A 9-bit reading of the same register loses the two lowest bits (rounds toward -inf).
    assert decode_temperature(raw << 5, bits=9) == pytest.approx((raw >> 2) * 0.5 - (256 if raw & 0x400 else 0))


def test_swap16() -> None:
    assert swap16(0x0019) == 0x1900  # what read_word_data returns for 19 00 on the wire


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize("temperature", [125.0, 25.0, 0.5, 0.0, -0.5, -25.0, -55.0])
def test_reads_9_bit_temperature_masking_undefined_bits(clock: FakeClock, temperature: float) -> None:
    sensor, bus = rig(LM75Model(temperature_c=temperature, undefined_bits=0x7F), clock)
    assert celsius(sensor) == temperature
    assert bus.log[-1].data[1] & 0x7F == 0x7F  # the undefined bits really were set


@pytest.mark.parametrize("temperature", [127.0, 126.875, 25.0, 0.125, -0.125, -54.875])
def test_reads_11_bit_temperature(clock: FakeClock, temperature: float) -> None:
    sensor, _ = rig(LM75Model(temperature_c=temperature, resolution_bits=11), clock, resolution_bits=11)
    assert celsius(sensor) == temperature


def test_byte_order_on_the_wire(clock: FakeClock) -> None:
    sensor, bus = rig(LM75Model(temperature_c=25.0, resolution_bits=11), clock, resolution_bits=11)
    assert celsius(sensor) == 25.0  # unswapped, 0x0019 would read as 0.0 °C
    assert bus.log[-1].op == "read_word_data" and bus.log[-1].data == b"\x19\x00"


def test_open_reads_the_configuration_and_writes_nothing(clock: FakeClock) -> None:
    _, bus = rig(LM75Model(), clock)
    assert [(t.op, t.register) for t in bus.log] == [("read_byte_data", 0x01)]
    assert bus.writes(0x48) == []


def test_shutdown_is_left_and_a_conversion_awaited(clock: FakeClock) -> None:
    model = LM75Model(temperature_c=10.0)
    model.write_raw(b"\x01\x03")  # shutdown, interrupt mode; the register keeps 10 °C
    model.temperature_c = 30.0
    sensor, bus = rig(model, clock)
    assert bus.writes(0x48) == [b"\x01\x02"]  # only the shutdown bit cleared
    assert clock.now == pytest.approx(0.3)
    assert celsius(sensor) == 30.0


def test_a_tmp102_is_refused_with_a_hint(clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(FakeI2CBus([TMP102Model()]), clock).open()
    assert str(excinfo.value) == ('sensor "enclosure" (lm75 @ 0x48 on bus 1): configuration register 0x60: '
                                  'reserved bits 7-5 are 011, expected 000 (a TMP102 at this address is type tmp102)')


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(LM75Model(temperature_c=-25.0), clock)
    bus.fail_next(0x48)
    assert celsius(sensor) == -25.0
    assert [t.error for t in bus.log].count(121) == 1






def test_every_address(clock: FakeClock) -> None:
    bus = FakeI2CBus([LM75Model(address=a, temperature_c=a - 0x40) for a in range(0x48, 0x50)])
    for address in range(0x48, 0x50):
        sensor = make(bus, clock, address=address)
        sensor.open()
        assert celsius(sensor) == address - 0x40


@pytest.mark.parametrize(("bits", "resolution"), [(9, 0.5), (11, 0.125)])
def test_channel(clock: FakeClock, bits: int, resolution: float) -> None:
    (channel,) = make(FakeI2CBus(), clock, resolution_bits=bits).channels()
    assert (channel.quantity, channel.unit, channel.resolution) == ("temperature", "°C", resolution)


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(LM75Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.resolution_bits) == (1, 0x48, 9)


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x50}, "f.toml: sensor[0].address: expected an address from 0x48 to 0x4f, found 0x50"),
    ({"resolution_bits": 12}, "f.toml: sensor[0].resolution_bits: expected one of 9, 11, found 12"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(LM75Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(lm75, LM75).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("enclosure", "lm75", 30)
    assert spec.options == LM75Config(resolution_bits=11)


def test_identify_is_never_sure() -> None:
    bus = FakeI2CBus([LM75Model()])
    assert LM75.identify(bus, 0x48) is None
    assert bus.log == []  # not even a pointer write


def test_hookimpl_registers_the_sensor() -> None:
    assert lm75.sensord_register_sensors() == [LM75]
    assert LM75.i2c_addresses == tuple(range(0x48, 0x50)) and LM75Model.DEFAULT_ADDRESS == 0x48
