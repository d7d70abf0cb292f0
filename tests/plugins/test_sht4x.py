"""The `sht4x` driver: the datasheet's CRC and conversion, then the whole driver on a fake bus
with a modelled chip, and what goes wrong (bad CRC, NACK, reading too early, config)."""

from __future__ import annotations

import doctest
import re

import pluggy
import pytest
from driver_kit import example_config

from sensord import hookspecs
from sensord.config import build_options
from sensord.errors import ConfigError, SensorError
from sensord.hardware import Hardware
from sensord.i2c import crc8, words_with_crc
from sensord.testing.i2c import EREMOTEIO, FakeI2CBus
from sensord.testing.models import sht as models
from sensord.testing.models.sht import SHT3xModel, SHT4xModel
from sensord.testing.pins import fake_hardware
from sensord_plugins import sht4x as plugin
from sensord_plugins.sht4x import SHT4x, SHT4xConfig, humidity_pct, temperature_c

PREFIX = 'sensor "shed" (sht4x @ 0x44 on bus 1): '


def rig(chip: SHT3xModel | SHT4xModel, *, time_passes: bool = True) -> tuple[FakeI2CBus, Hardware, list[float]]:
    """A fake bus with `chip`; the Hardware's sleep records the wait and (unless told not to)
    lets the chip's virtual time pass, so nothing really sleeps."""
    bus = FakeI2CBus([chip])
    hardware = fake_hardware(bus)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if time_passes:
            chip.advance(seconds)

    hardware.sleep = sleep
    return bus, hardware, sleeps


def opened(hardware: Hardware, **options: object) -> SHT4x:
    sensor = SHT4x(SHT4xConfig(**options), name="shed", hardware=hardware)  # type: ignore[arg-type]
    sensor.open()
    return sensor


def values(sensor: SHT4x) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- the datasheet's formulas -------------------------------------------------------------------


def test_crc_datasheet_example() -> None:
    # The datasheet's CRC example: 0xBEEF gives 0x92.
    assert crc8(bytes([0xBE, 0xEF])) == 0x92
    assert words_with_crc([0xBE, 0xEF, 0x92], "x") == [0xBEEF]
    with pytest.raises(ValueError, match=r"x: CRC mismatch in word 0 \(got 0x93, expected 0x92\)"):
        words_with_crc([0xBE, 0xEF, 0x93], "x")


def test_temperature_conversion() -> None:
    # §4.6: T = -45 + 175 * raw / (2^16 - 1).
    assert temperature_c(0) == pytest.approx(-45.0)
    assert temperature_c(0xFFFF) == pytest.approx(130.0)
    assert temperature_c(0x6666) == pytest.approx(25.0, abs=0.002)


def test_humidity_conversion_is_cropped_to_0_100() -> None:
    # §4.6: RH = -6 + 125 * raw / (2^16 - 1), cropped to 0..100 %.
    assert humidity_pct(0x8000) == pytest.approx(56.5, abs=0.002)
    assert humidity_pct(29360) == pytest.approx(50.0, abs=0.002)
    assert humidity_pct(0) == 0.0  # -6 by the formula
    assert humidity_pct(0xFFFF) == 100.0  # 119 by the formula


# -- the whole driver on a fake bus -------------------------------------------------------------


def test_reads_what_the_chip_measures() -> None:
    chip = SHT4xModel(temperature_c=19.87, humidity_pct=72.3)
    _, hardware, _ = rig(chip)
    sensor = opened(hardware)
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [(c.quantity, c.unit) for c in sensor.channels()]
    assert {r.quantity: r.value for r in readings} == {"temperature": pytest.approx(19.87, abs=0.01),
                                                       "humidity": pytest.approx(72.3, abs=0.01)}
    chip.humidity_pct = 110.0  # condensation: the formula goes past 100 %
    assert values(sensor)["humidity"] == 100.0


def test_commands_and_waits_follow_the_datasheet() -> None:
    chip = SHT4xModel(serial_number=0x12345678)
    bus, hardware, sleeps = rig(chip)
    sensor = opened(hardware)
    assert sensor.serial_number == 0x12345678
    sensor.read()
    assert bus.writes(0x44) == [b"\x89", b"\xfd"]  # serial number, then high precision (§4.5)
    assert sleeps == [pytest.approx(0.010), pytest.approx(0.0083)]
    assert all(t.error is None for t in bus.log)  # never read too early


@pytest.mark.parametrize(("precision", "command", "wait_s"),
                         [("high", b"\xfd", 0.0083), ("medium", b"\xf6", 0.0045), ("low", b"\xe0", 0.0016)])
def test_precision(precision: str, command: bytes, wait_s: float) -> None:
    bus, hardware, sleeps = rig(SHT4xModel())
    sensor = opened(hardware, precision=precision)
    sleeps.clear()
    assert values(sensor)["temperature"] == pytest.approx(22.5, abs=0.01)
    assert bus.writes(0x44)[-1] == command
    assert sleeps == [pytest.approx(wait_s)]


def test_a_driver_that_does_not_wait_gets_the_chips_nack() -> None:
    bus, hardware, _ = rig(SHT4xModel(), time_passes=False)
    sensor = opened(hardware)  # the serial number is ready at once in the model
    bus.log.clear()
    with pytest.raises(SensorError, match="^" + re.escape(PREFIX + "no answer (NACK)")):
        sensor.read()
    assert [t.error for t in bus.log if t.op == "i2c_rdwr:read"] == [EREMOTEIO] * 3  # retried


def test_bad_crc_in_a_measurement() -> None:
    chip = SHT4xModel()
    _, hardware, _ = rig(chip)
    sensor = opened(hardware)
    chip.corrupt_crc_next()
    with pytest.raises(SensorError) as info:
        sensor.read()
    crc = crc8(round((22.5 + 45) * 65535 / 175).to_bytes(2, "big"))
    assert str(info.value) == (PREFIX + "measurement (command 0xfd): CRC mismatch in word 0 "
                               f"(got 0x{crc ^ 0xFF:02x}, expected 0x{crc:02x})")
    assert values(sensor)["temperature"] == pytest.approx(22.5, abs=0.01)  # the next one is fine


def test_bad_crc_in_the_serial_number_fails_open() -> None:
    chip = SHT4xModel()
    chip.corrupt_crc_next()
    _, hardware, _ = rig(chip)
    with pytest.raises(SensorError, match="^" + re.escape(PREFIX + "serial number (command 0x89): CRC mismatch")):
        opened(hardware)


def test_one_nack_is_retried() -> None:
    bus, hardware, _ = rig(SHT4xModel())
    sensor = opened(hardware)
    bus.fail_next(0x44)
    assert values(sensor)["temperature"] == pytest.approx(22.5, abs=0.01)
    assert [t.error for t in bus.log].count(EREMOTEIO) == 1


def test_persistent_nack_is_a_sensor_error() -> None:
    bus, hardware, _ = rig(SHT4xModel())
    sensor = opened(hardware)
    bus.fail_next(0x44, count=10)
    with pytest.raises(SensorError, match="^" + re.escape(PREFIX + "no answer (NACK)")):
        sensor.read()


def test_an_sht3x_is_not_an_sht4x() -> None:
    _, hardware, _ = rig(SHT3xModel())  # 16-bit commands: it NACKs the 8-bit serial command
    with pytest.raises(SensorError, match=re.escape("(sht4x @ 0x44 on bus 1): no answer (NACK)")):
        opened(hardware)


# -- the model ----------------------------------------------------------------------------------


def test_model_soft_reset_and_unknown_commands() -> None:
    chip = SHT4xModel()
    bus = FakeI2CBus([chip])
    with pytest.raises(OSError, match="unknown command 0x39"):  # the heater is not modelled
        bus.write_byte(0x44, 0x39)
    bus.write_byte(0x44, 0x94)
    with pytest.raises(OSError, match="resetting"):
        bus.write_byte(0x44, 0xFD)
    chip.advance(0.001)
    bus.write_byte(0x44, 0xFD)
    assert chip.commands == [0x94, 0xFD]
    assert doctest.testmod(models).failed == 0


# -- config, detection, registration ------------------------------------------------------------


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x47}, "f.toml: sensor[0].address: expected an address from 0x44 to 0x46, found 0x47"),
    ({"precision": "best"},
     'f.toml: sensor[0].precision: expected one of "high", "medium", "low", found "best"'),
])
def test_config_out_of_range(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(SHT4xConfig, table, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_identify() -> None:
    chip = SHT4xModel()
    bus = FakeI2CBus([chip, SHT3xModel(address=0x45)])
    assert SHT4x.identify(bus, 0x44) == {"type": "sht4x", "address": 0x44}
    assert SHT4x.identify(bus, 0x45) is None  # an SHT3x
    assert SHT4x.identify(FakeI2CBus(), 0x46) is None  # nothing there
    chip.corrupt_crc_next()
    assert SHT4x.identify(bus, 0x44) is None
    assert chip.commands == [0x89, 0x89]  # only read the serial number
    assert SHT4x.i2c_addresses == (0x44, 0x45, 0x46)


class SlowSerialSHT4x(SHT4xModel):
    """A chip that takes 3 ms to answer the serial number command."""

    SERIAL_S = 0.003


def test_identify_retries_reads_until_the_serial_number_is_ready() -> None:
    ticks = iter(range(10_000))
    chip = SlowSerialSHT4x(clock=lambda: next(ticks) * 0.0002)  # each transaction takes 0.2 ms
    bus = FakeI2CBus([chip])
    assert SHT4x.identify(bus, 0x44) == {"type": "sht4x", "address": 0x44}
    assert 10 <= [t.error for t in bus.log].count(EREMOTEIO) < 100


def test_docstring_example_parses() -> None:
    config = example_config(plugin, SHT4x)
    (spec,) = config.sensors
    assert (spec.name, spec.type, spec.options) == ("greenhouse", "sht4x", SHT4xConfig(address=0x44))


def test_hookimpl_registers_the_type() -> None:
    pm = pluggy.PluginManager("sensord")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    assert pm.hook.sensord_register_sensors() == [[SHT4x]]
    assert SHT4x.type_name == "sht4x"
