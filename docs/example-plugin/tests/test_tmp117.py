"""The `tmp117` plugin: the datasheet's register format, the driver on a fake TMP117, and the
sensor end to end through sensord's scheduler, filters and encoder.

Only sensord's published test fixtures are used (`fake_i2c_bus`, `fake_hardware`,
`sensor_harness`), as in any plugin's own repository.
"""

from __future__ import annotations

import textwrap
import tomllib

import pytest
from sensord import ConfigError, Hardware, SensorError
from sensord.testing import FakeI2CBus
from sensord.testing.pytest_plugin import SensorHarness

import sensord_tmp117
from sensord_tmp117 import TMP117, TMP117Config, TMP117Model, tmp117_celsius

NACK = 'sensor "fridge" (tmp117 @ 0x48 on bus 1): no answer (NACK): is it wired, powered, at this address?'

# Temp_Result words (16-bit two's complement, 7.8125 m°C per LSB) and what they mean.
RESULTS = [
    (0x0C80, 25.0), (0x0000, 0.0), (0x0001, 0.0078125), (0x7FFF, 255.9921875), (0x3E80, 125.0),
    (0xFFFF, -0.0078125), (0xF380, -25.0), (0xEC00, -40.0), (0x8001, -255.9921875),
]


def make(hardware: Hardware, **options: object) -> TMP117:
    return TMP117(TMP117Config(**options), name="fridge", hardware=hardware)  # type: ignore[arg-type]


def rig(bus: FakeI2CBus, hardware: Hardware, chip: TMP117Model, **options: object) -> TMP117:
    """An opened driver on `bus`, which holds `chip`."""
    bus.attach(chip)
    sensor = make(hardware, **options)
    sensor.open()
    return sensor


def celsius(sensor: TMP117) -> float:
    (reading,) = sensor.read()
    assert (reading.quantity, reading.unit) == ("temperature", "°C")
    return float(reading.value)


# -- pure functions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "expected"), RESULTS)
def test_result_register_format(word: int, expected: float) -> None:
    assert tmp117_celsius(word) == pytest.approx(expected)


# -- the driver on a fake chip ------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [21.0, 25.0, -25.0, -40.0, 125.0, 0.0078125, -0.0078125])
def test_reads_temperature(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware, temperature: float) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, TMP117Model(temperature_c=temperature))
    assert celsius(sensor) == temperature


def test_register_on_the_wire(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, TMP117Model(temperature_c=25.0))
    assert celsius(sensor) == 25.0
    last = fake_i2c_bus.log[-1]
    assert (last.op, last.register, last.data) == ("read_i2c_block_data", 0x00, b"\x0c\x80")


def test_open_leaves_a_fresh_chip_alone(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    rig(fake_i2c_bus, fake_hardware, TMP117Model())
    assert fake_i2c_bus.writes(0x48) == []  # power-on: continuous, 8 averages, as configured


@pytest.mark.parametrize(("averages", "config"), [(1, 0x0200), (8, None), (32, 0x0240), (64, 0x0260)])
def test_averaging_is_set_at_open(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware, averages: int,
                                  config: int | None) -> None:
    chip = TMP117Model(temperature_c=21.3)
    sensor = rig(fake_i2c_bus, fake_hardware, chip, averages=averages)
    assert chip.averages == averages
    assert fake_i2c_bus.writes(0x48) == ([] if config is None else [bytes([0x01]) + config.to_bytes(2, "big")])
    assert celsius(sensor) == pytest.approx(21.3, abs=0.0078125 / 2)
    (channel,) = sensor.channels()
    assert (channel.quantity, channel.unit, channel.resolution) == ("temperature", "°C", 0.0078125)


def test_shutdown_is_left(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    chip = TMP117Model(temperature_c=10.0)
    chip.write_raw(b"\x01\x06\x28")  # MOD 01 (shutdown) with POL set: Temp_Result keeps 10 °C
    chip.temperature_c = 30.0
    assert chip.shut_down and tmp117_celsius(chip.result()) == 10.0
    sensor = rig(fake_i2c_bus, fake_hardware, chip)
    assert fake_i2c_bus.writes(0x48) == [b"\x01\x02\x28"]  # continuous, the other bits kept
    assert not chip.shut_down
    assert celsius(sensor) == 30.0


def test_no_conversion_yet_is_an_error(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    chip = TMP117Model(converted=False)
    sensor = rig(fake_i2c_bus, fake_hardware, chip)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "fridge" (tmp117 @ 0x48 on bus 1): no conversion yet '
                                  '(Temp_Result 0x8000, its value after reset)')
    chip.converted = True
    assert celsius(sensor) == 21.0


def test_wrong_device_id(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    with pytest.raises(SensorError) as excinfo:
        rig(fake_i2c_bus, fake_hardware, TMP117Model(device_id=0x0116))
    assert str(excinfo.value) == 'sensor "fridge" (tmp117 @ 0x48 on bus 1): device id 0x116, expected 0x117 (TMP117)'


def test_another_revision_is_fine(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, TMP117Model(device_id=0x1117, temperature_c=-10.5))
    assert celsius(sensor) == -10.5


def test_one_nack_is_retried(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, TMP117Model(temperature_c=-25.0))
    fake_i2c_bus.fail_next(0x48)
    assert celsius(sensor) == -25.0


def test_nack_after_nack_is_an_error_naming_the_chip(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, TMP117Model())
    fake_i2c_bus.fail_next(0x48, count=3)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == NACK


def test_missing_chip_fails_open(fake_hardware: Hardware) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(fake_hardware).open()
    assert str(excinfo.value) == NACK


@pytest.mark.parametrize("address", [0x48, 0x4A, 0x4B])
def test_every_address(fake_i2c_bus: FakeI2CBus, fake_hardware: Hardware, address: int) -> None:
    sensor = rig(fake_i2c_bus, fake_hardware, TMP117Model(address=address, temperature_c=4.0), address=address)
    assert celsius(sensor) == 4.0


def test_model_nacks_reserved_pointers() -> None:
    with pytest.raises(OSError, match="pointer 0x09 is reserved"):
        TMP117Model().write_raw(b"\x09")


# -- detection ----------------------------------------------------------------------------------


def test_identify(fake_i2c_bus: FakeI2CBus) -> None:
    fake_i2c_bus.attach(TMP117Model(address=0x4A))
    fake_i2c_bus.attach(TMP117Model(device_id=0x0000))  # at 0x48: some other chip
    assert TMP117.identify(fake_i2c_bus, 0x4A) == {"type": "tmp117", "address": 0x4A}
    assert TMP117.identify(fake_i2c_bus, 0x48) is None
    assert TMP117.identify(fake_i2c_bus, 0x49) is None  # nobody there: NACK
    assert fake_i2c_bus.writes(0x4A) == []  # reads only


# -- end to end, config, registration -----------------------------------------------------------


def test_through_scheduler_filters_and_encoder(fake_i2c_bus: FakeI2CBus, sensor_harness: SensorHarness) -> None:
    chip = fake_i2c_bus.attach(TMP117Model(temperature_c=4.0))

    def warm_up() -> None:
        chip.temperature_c = 4.5

    def unplug() -> None:
        fake_i2c_bus.fail_next(0x48, count=3)

    result = sensor_harness(TMP117, {"averages": 32}, name="fridge", interval_s=30, reads=6,
                            filters=[{"delta": 0.25}], at={60: warm_up, 120: unplug})
    assert result.values("temperature", "raw") == [4.0, 4.0, 4.5, 4.5, 4.5]
    assert result.values("temperature") == [4.0, 4.5]
    assert (result.failures, result.errors) == (1, [NACK])
    assert result.lossless and result.channels["temperature"].resolution == 0.0078125


def test_bad_options_are_config_errors(sensor_harness: SensorHarness) -> None:
    with pytest.raises(ConfigError) as excinfo:
        sensor_harness(TMP117, {"averages": 16}, reads=1)
    assert str(excinfo.value) == "<harness>: sensor[0].averages: expected one of 1, 8, 32, 64, found 16"
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.address: expected an address from 0x48 to 0x4b, found 0x18"):
        sensor_harness(TMP117, {"address": 0x18}, reads=1)


def test_docstring_example_runs(fake_i2c_bus: FakeI2CBus, sensor_harness: SensorHarness) -> None:
    assert sensord_tmp117.__doc__ is not None
    (table,) = tomllib.loads(textwrap.dedent(sensord_tmp117.__doc__.split("Example::", 1)[1]))["sensor"]
    assert (table.pop("name"), table.pop("type"), table.pop("interval_s")) == ("fridge", "tmp117", 30)
    fake_i2c_bus.attach(TMP117Model(address=table["address"], temperature_c=5.0))
    assert sensor_harness(TMP117, table, reads=1).values("temperature") == [5.0]


def test_hookimpls_register_the_sensor_and_its_model() -> None:
    assert sensord_tmp117.sensord_register_sensors() == [TMP117]
    assert sensord_tmp117.sensord_register_device_models() == [TMP117Model]
    assert TMP117Model.DEFAULT_ADDRESS == TMP117Config().address == 0x48
