"""The `mcp9808` driver: the datasheet's register format, the driver on a fake MCP9808, and the
sensor end to end through sensord's scheduler, filters and encoder."""

from __future__ import annotations

import pytest
from driver_kit import example_config, opened

import sensord_plugins.mcp9808 as mcp9808
from sensord import ConfigError, Hardware, SensorError
from sensord.testing import FakeI2CBus
from sensord.testing.clock import FakeClock
from sensord.testing.models.mcp9808 import MCP9808Model
from sensord.testing.pytest_plugin import SensorHarness
from sensord_plugins.mcp9808 import MCP9808, MCP9808Config, mcp9808_celsius

NACK = 'sensor "fridge" (mcp9808 @ 0x18 on bus 1): no answer (NACK): is it wired, powered, at this address?'

# T_A register words (Register 5-4: flags in bits 15-13, sign in bit 12, then 2^7 .. 2^-4 °C) and
# what they mean. 0x1E70 is Equation 5-1's negative branch: UpperByte 0x1E, LowerByte 0x70.
AMBIENT = [
    (0x0194, 25.25), (0x0000, 0.0), (0x0001, 0.0625), (0x07D0, 125.0), (0x0FFF, 255.9375),
    (0x1FFF, -0.0625), (0x1E70, -25.0), (0x1D80, -40.0), (0x1000, -256.0),
    (0xC194, 25.25), (0x2000 | 0x1D80, -40.0), (0xE000 | 0x0001, 0.0625),  # alert flags set
]


def make(hardware: Hardware, **options: object) -> MCP9808:
    return MCP9808(MCP9808Config(**options), name="fridge", hardware=hardware)  # type: ignore[arg-type]


def rig(bus: FakeI2CBus, hardware: Hardware, chip: MCP9808Model, **options: object) -> MCP9808:
    """An opened driver on `bus`, which holds `chip`."""
    bus.attach(chip)
    sensor = make(hardware, **options)
    sensor.open()
    return sensor


def celsius(sensor: MCP9808) -> float:
    (reading,) = sensor.read()
    assert (reading.quantity, reading.unit) == ("temperature", "°C")
    return float(reading.value)


# -- pure functions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "expected"), AMBIENT)
def test_ambient_register_format(word: int, expected: float) -> None:
    assert mcp9808_celsius(word) == pytest.approx(expected)


def test_equation_5_1_negative_branch_gives_the_magnitude() -> None:
    upper, lower = 0x1E, 0x70
    magnitude = 256 - ((upper & 0x0F) * 16 + lower / 16)  # as printed in the datasheet
    assert mcp9808_celsius(upper << 8 | lower) == -magnitude == -25.0


# -- the driver on a fake chip ------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [21.0, 25.25, -25.0, -40.0, 125.0, 0.0625, -0.0625])
def test_reads_temperature(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware, temperature: float) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, MCP9808Model(temperature_c=temperature))
    assert celsius(sensor) == temperature


def test_register_on_the_wire(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    chip = MCP9808Model(temperature_c=25.25)
    sensor = rig(fake_i2c_bus, fake_hardware, chip)
    assert celsius(sensor) == 25.25
    last = fake_i2c_bus.log[-1]
    # T_CRIT and T_UPPER are 0 °C at power-on, so two alert flags are set: the driver masks them.
    assert (last.op, last.register, last.data) == ("read_i2c_block_data", 0x05, b"\xc1\x94")


def test_open_leaves_a_fresh_chip_alone(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    rig(fake_i2c_bus, fake_hardware, MCP9808Model())
    assert fake_i2c_bus.writes(0x18) == []


@pytest.mark.parametrize(("resolution", "bits", "temperature", "expected"), [
    (0.5, 0x00, 21.3, 21.5), (0.25, 0x01, 21.3, 21.25), (0.125, 0x02, 21.3, 21.25), (0.0625, 0x03, 21.3, 21.3125),
])
def test_resolution_is_set_at_open(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware, resolution: float,
                                   bits: int, temperature: float, expected: float) -> None:
    chip = MCP9808Model(temperature_c=temperature)
    sensor = rig(fake_i2c_bus, fake_hardware, chip, resolution_c=resolution)
    assert chip.resolution == bits
    assert fake_i2c_bus.writes(0x18) == ([] if bits == 0x03 else [bytes([0x08, bits])])
    assert celsius(sensor) == expected
    (channel,) = sensor.channels()
    assert (channel.quantity, channel.unit, channel.resolution) == ("temperature", "°C", resolution)


def test_shutdown_is_left(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    chip = MCP9808Model(temperature_c=10.0)
    chip.write_raw(b"\x01\x01\x80")  # SHDN and Crit. Lock: T_A keeps 10 °C
    chip.temperature_c = 30.0
    sensor = rig(fake_i2c_bus, fake_hardware, chip)
    assert fake_i2c_bus.writes(0x18) == [b"\x01\x00\x80"]  # SHDN cleared, the lock bit kept
    assert not chip.shut_down
    assert celsius(sensor) == 30.0


def test_wrong_manufacturer_id(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    with pytest.raises(SensorError) as excinfo:
        rig(fake_i2c_bus, fake_hardware, MCP9808Model(manufacturer_id=0x1131))
    assert str(excinfo.value) == ('sensor "fridge" (mcp9808 @ 0x18 on bus 1): manufacturer id 0x1131, '
                                  'expected 0x0054 (Microchip)')


def test_wrong_device_id(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    with pytest.raises(SensorError) as excinfo:
        rig(fake_i2c_bus, fake_hardware, MCP9808Model(device_id=0x0201))
    assert str(excinfo.value) == 'sensor "fridge" (mcp9808 @ 0x18 on bus 1): device id 0x02, expected 0x04 (MCP9808)'


def test_another_revision_is_fine(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, MCP9808Model(device_id=0x0401, temperature_c=-10.5))
    assert celsius(sensor) == -10.5


def test_one_nack_is_retried(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, MCP9808Model(temperature_c=-25.0))
    fake_i2c_bus.fail_next(0x18)
    assert celsius(sensor) == -25.0


@pytest.mark.parametrize("address", [0x18, 0x1B, 0x1F])
def test_every_address(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware, address: int) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, MCP9808Model(address=address, temperature_c=4.0), address=address)
    assert celsius(sensor) == 4.0


# -- detection ----------------------------------------------------------------------------------


def test_identify(fake_i2c_bus: FakeI2CBus) -> None:
    fake_i2c_bus.attach(MCP9808Model(address=0x1A))
    fake_i2c_bus.attach(MCP9808Model(manufacturer_id=0x0000))  # at 0x18: some other chip
    assert MCP9808.identify(fake_i2c_bus, 0x1A) == {"type": "mcp9808", "address": 0x1A}
    assert MCP9808.identify(fake_i2c_bus, 0x18) is None
    assert MCP9808.identify(fake_i2c_bus, 0x19) is None  # nobody there: NACK
    assert fake_i2c_bus.writes(0x1A) == []  # reads only


# -- end to end, config, registration -----------------------------------------------------------


def test_through_scheduler_filters_and_encoder(fake_i2c_bus: FakeI2CBus, sensor_harness: SensorHarness) -> None:
    chip = fake_i2c_bus.attach(MCP9808Model(temperature_c=4.0))

    def warm_up() -> None:
        chip.temperature_c = 4.5

    def unplug() -> None:
        fake_i2c_bus.fail_next(0x18, count=3)

    result = sensor_harness(MCP9808, {"resolution_c": 0.25}, name="fridge", interval_s=30, reads=6,
                            filters=[{"delta": 0.25}], at={60: warm_up, 120: unplug})
    assert result.values("temperature", "raw") == [4.0, 4.0, 4.5, 4.5, 4.5]
    assert result.values("temperature") == [4.0, 4.5]
    assert (result.failures, result.errors) == (1, [NACK])
    assert result.lossless and result.channels["temperature"].resolution == 0.25


def test_bad_options_are_config_errors(sensor_harness: SensorHarness) -> None:
    with pytest.raises(ConfigError) as excinfo:
        sensor_harness(MCP9808, {"resolution_c": 0.1}, reads=1)
    assert str(excinfo.value) == ("<harness>: sensor[0].resolution_c: expected one of 0.5, 0.25, 0.125, 0.0625, "
                                  "found 0.1")
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.address: expected an address from 0x18 to 0x1f, found 0x48"):
        sensor_harness(MCP9808, {"address": 0x48}, reads=1)


def test_docstring_example_parses() -> None:
    (spec,) = example_config(mcp9808, MCP9808).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("fridge", "mcp9808", 30)
    assert spec.options == MCP9808Config(address=0x19, resolution_c=0.0625)


def test_hookimpls_register_the_sensor_and_its_model() -> None:
    assert mcp9808.sensord_register_sensors() == [MCP9808]
    assert mcp9808.sensord_register_device_models() == [MCP9808Model]
    assert MCP9808Model.DEFAULT_ADDRESS == MCP9808Config().address == 0x18


# -- conversion timing on a fake clock ----------------------------------------------------------


def test_a_new_resolution_waits_one_conversion(clock: FakeClock) -> None:
    chip = MCP9808Model(temperature_c=21.3, clock=clock.monotonic)
    sensor, _ = opened(MCP9808, chip, clock, name="fridge", resolution_c=0.5)
    assert clock.now == pytest.approx(0.030 * 1.25)  # t_CONV at 0.5 °C, plus a quarter
    (reading,) = sensor.read()
    assert reading.value == 21.5  # at the new resolution


def test_without_the_wait_t_a_keeps_the_value_from_before(clock: FakeClock) -> None:
    chip = MCP9808Model(temperature_c=21.3, clock=clock.monotonic)
    assert chip.read(0x05, 2) == b"\xc1\x55"  # 21.3125 °C at 0.0625, flags T_CRIT and T_UPPER
    chip.write(0x08, b"\x00")
    assert chip.read(0x05, 2) == b"\xc1\x55"
    clock.advance(0.030)
    assert chip.read(0x05, 2) == b"\xc1\x58"  # 21.5 °C at 0.5


def test_leaving_shutdown_waits_one_conversion(clock: FakeClock) -> None:
    chip = MCP9808Model(temperature_c=10.0, clock=clock.monotonic)
    chip.write_raw(b"\x01\x01\x00")  # SHDN: T_A keeps 10 °C
    chip.temperature_c = 30.0
    sensor, _ = opened(MCP9808, chip, clock, name="fridge")
    assert clock.now == pytest.approx(0.250 * 1.25)
    (reading,) = sensor.read()
    assert reading.value == 30.0
