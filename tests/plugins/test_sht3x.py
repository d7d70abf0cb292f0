"""The `sht3x` driver: the datasheet's CRC and conversion, then the whole driver on a fake bus
with a modelled chip, and what goes wrong (bad CRC, NACK, reading too early, config)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pluggy
import pytest
from driver_kit import example_config
from smbus2 import i2c_msg

from sensord import hookspecs
from sensord.config import build_options
from sensord.errors import ConfigError, SensorError
from sensord.hardware import Hardware
from sensord.i2c import crc8, words_with_crc
from sensord.testing.i2c import EREMOTEIO, FakeI2CBus
from sensord.testing.models.sht import SHT3xModel, SHT4xModel
from sensord.testing.pins import fake_hardware
from sensord_plugins import sht3x as plugin
from sensord_plugins.sht3x import SHT3x, SHT3xConfig, humidity_pct, temperature_c

PREFIX = 'sensor "bath" (sht3x @ 0x44 on bus 1): '


def rig(chip: SHT3xModel | SHT4xModel) -> tuple[FakeI2CBus, Hardware, list[float]]:
    """A fake bus with `chip`; the Hardware's sleep records the wait and lets the chip's
    virtual time pass, so nothing really sleeps."""
    bus = FakeI2CBus([chip])
    hardware = fake_hardware(bus)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        chip.advance(seconds)

    hardware.sleep = sleep
    return bus, hardware, sleeps


def read_plain(bus: FakeI2CBus, length: int) -> list[int]:
    """A read without a register byte, as the driver does it."""
    msg: Any = i2c_msg.read(0x44, length)  # smbus2's stub types its __iter__ wrongly
    bus.i2c_rdwr(msg)
    return list(msg)


def opened(hardware: Hardware, **options: object) -> SHT3x:
    sensor = SHT3x(SHT3xConfig(**options), name="bath", hardware=hardware)  # type: ignore[arg-type]
    sensor.open()
    return sensor


def values(sensor: SHT3x) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- the datasheet's formulas -------------------------------------------------------------------


def test_crc_datasheet_example() -> None:
    # §4.12: CRC-8 of 0xBEEF is 0x92.
    assert crc8(bytes([0xBE, 0xEF])) == 0x92
    assert words_with_crc([0xBE, 0xEF, 0x92, 0xBE, 0xEF, 0x92], "x") == [0xBEEF, 0xBEEF]


def test_temperature_conversion() -> None:
    # §4.13: T = -45 + 175 * raw / (2^16 - 1).
    assert temperature_c(0) == pytest.approx(-45.0)
    assert temperature_c(0xFFFF) == pytest.approx(130.0)
    assert temperature_c(0x6666) == pytest.approx(25.0, abs=0.002)


def test_humidity_conversion() -> None:
    # §4.13: RH = 100 * raw / (2^16 - 1).
    assert humidity_pct(0) == pytest.approx(0.0)
    assert humidity_pct(0xFFFF) == pytest.approx(100.0)
    assert humidity_pct(0x8000) == pytest.approx(50.0, abs=0.001)


# -- the whole driver on a fake bus -------------------------------------------------------------


def test_reads_what_the_chip_measures() -> None:
    chip = SHT3xModel(temperature_c=23.45, humidity_pct=61.2)
    _, hardware, _ = rig(chip)
    sensor = opened(hardware)
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [(c.quantity, c.unit) for c in sensor.channels()]
    assert {r.quantity: r.value for r in readings} == {"temperature": pytest.approx(23.45, abs=0.01),
                                                       "humidity": pytest.approx(61.2, abs=0.01)}
    chip.temperature_c, chip.humidity_pct = -10.0, 5.0
    assert values(sensor) == {"temperature": pytest.approx(-10.0, abs=0.01),
                              "humidity": pytest.approx(5.0, abs=0.01)}


def test_commands_and_waits_follow_the_datasheet() -> None:
    chip = SHT3xModel()
    bus, hardware, sleeps = rig(chip)
    sensor = opened(hardware)
    assert sensor.status == SHT3xModel.STATUS_AFTER_RESET
    sensor.read()
    # status (§4.11), soft reset (§4.9), then high repeatability without clock stretching (§4.3)
    assert bus.writes(0x44) == [b"\xf3\x2d", b"\x30\xa2", b"\x24\x00"]
    assert sleeps == [pytest.approx(0.0015), pytest.approx(0.015)]  # Table 4 maxima
    assert all(t.error is None for t in bus.log)  # never read too early


@pytest.mark.parametrize(("repeatability", "command", "wait_s"),
                         [("high", b"\x24\x00", 0.015), ("medium", b"\x24\x0b", 0.006), ("low", b"\x24\x16", 0.004)])
def test_repeatability(repeatability: str, command: bytes, wait_s: float) -> None:
    bus, hardware, sleeps = rig(SHT3xModel())
    sensor = opened(hardware, repeatability=repeatability)
    sleeps.clear()
    assert values(sensor)["temperature"] == pytest.approx(22.5, abs=0.01)
    assert bus.writes(0x44)[-1] == command
    assert sleeps == [pytest.approx(wait_s)]


def test_the_chip_nacks_a_read_while_measuring() -> None:
    chip = SHT3xModel()
    bus = FakeI2CBus([chip])
    bus.write_i2c_block_data(0x44, 0x24, [0x00])
    with pytest.raises(OSError, match="measuring") as info:
        bus.read_byte(0x44)
    assert info.value.errno == EREMOTEIO
    chip.advance(0.015)
    t_raw, _ = words_with_crc(read_plain(bus, 6), "measurement")
    assert temperature_c(t_raw) == pytest.approx(22.5, abs=0.01)
    with pytest.raises(OSError, match="no answer pending"):
        bus.read_byte(0x44)  # the answer is read once


class SlowSHT3x(SHT3xModel):
    """A chip 3 ms slower than the datasheet's maximum."""

    MEASURE: ClassVar[dict[int, float]] = {0x2400: 0.018}


def test_a_read_nacked_while_still_measuring_is_retried() -> None:
    bus, hardware, sleeps = rig(SlowSHT3x())
    sensor = opened(hardware)
    assert values(sensor)["humidity"] == pytest.approx(45.0, abs=0.01)
    assert [t.error for t in bus.log].count(EREMOTEIO) == 1
    assert sum(sleeps[1:]) >= 0.018


def test_bad_crc_is_a_sensor_error() -> None:
    chip = SHT3xModel()
    _, hardware, _ = rig(chip)
    sensor = opened(hardware)
    chip.corrupt_crc_next()
    with pytest.raises(SensorError) as info:
        sensor.read()
    crc = crc8(round((22.5 + 45) * 65535 / 175).to_bytes(2, "big"))  # the temperature word's
    assert str(info.value) == (PREFIX + "measurement (command 0x2400): CRC mismatch in word 0 "
                               f"(got 0x{crc ^ 0xFF:02x}, expected 0x{crc:02x})")
    assert values(sensor)["temperature"] == pytest.approx(22.5, abs=0.01)  # the next one is fine


def test_bad_crc_in_the_status_register_fails_open() -> None:
    chip = SHT3xModel()
    chip.corrupt_crc_next()
    _, hardware, _ = rig(chip)
    with pytest.raises(SensorError, match=r"status register \(command 0xf32d\): CRC mismatch in word 0"):
        opened(hardware)


def test_one_nack_is_retried() -> None:
    bus, hardware, _ = rig(SHT3xModel())
    sensor = opened(hardware)
    bus.fail_next(0x44)
    assert values(sensor)["temperature"] == pytest.approx(22.5, abs=0.01)
    assert [t.error for t in bus.log].count(EREMOTEIO) == 1


def test_persistent_nack_is_a_sensor_error() -> None:
    bus, hardware, _ = rig(SHT3xModel())
    sensor = opened(hardware)
    bus.fail_next(0x44, count=10)
    with pytest.raises(SensorError, match="^" + re.escape(PREFIX + "no answer (NACK)")):
        sensor.read()


def test_an_sht4x_is_not_an_sht3x() -> None:
    _, hardware, _ = rig(SHT4xModel())  # 8-bit commands: it NACKs the 16-bit status command
    with pytest.raises(SensorError, match=r"\(sht3x @ 0x44 on bus 1\): no answer \(NACK\)"):
        opened(hardware)


# -- the model ----------------------------------------------------------------------------------


def test_model_unknown_command_and_soft_reset() -> None:
    chip = SHT3xModel()
    bus = FakeI2CBus([chip])
    bus.write_i2c_block_data(0x44, 0x30, [0x41])  # clear status
    assert chip.status == 0
    with pytest.raises(OSError, match="unknown command 0x1234"):
        bus.write_i2c_block_data(0x44, 0x12, [0x34])
    assert chip.status == 0x0002  # "last command not processed"
    bus.write_i2c_block_data(0x44, 0x30, [0xA2])
    with pytest.raises(OSError, match="resetting"):
        bus.write_i2c_block_data(0x44, 0xF3, [0x2D])
    chip.advance(0.0015)
    bus.write_i2c_block_data(0x44, 0xF3, [0x2D])
    assert words_with_crc(read_plain(bus, 3), "status") == [0x8010]  # reset detected, alert pending
    assert chip.commands == [0x3041, 0x30A2, 0xF32D]


# -- config, detection, registration ------------------------------------------------------------


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x46}, "f.toml: sensor[0].address: expected an address from 0x44 to 0x45, found 0x46"),
    ({"repeatability": "ultra"},
     'f.toml: sensor[0].repeatability: expected one of "high", "medium", "low", found "ultra"'),
])
def test_config_out_of_range(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(SHT3xConfig, table, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_identify() -> None:
    chip = SHT3xModel()
    bus = FakeI2CBus([chip, SHT4xModel(address=0x45)])
    assert SHT3x.identify(bus, 0x44) == {"type": "sht3x", "address": 0x44}
    assert SHT3x.identify(bus, 0x45) is None  # an SHT4x
    assert SHT3x.identify(FakeI2CBus(), 0x44) is None  # nothing there
    chip.status = 0xFFFF  # reserved bits set: not an SHT3x
    assert SHT3x.identify(bus, 0x44) is None
    assert chip.commands == [0xF32D, 0xF32D]  # only read the status
    assert SHT3x.i2c_addresses == (0x44, 0x45)


def test_docstring_example_parses() -> None:
    config = example_config(plugin, SHT3x)
    (spec,) = config.sensors
    assert (spec.name, spec.type, spec.options) == ("bathroom", "sht3x", SHT3xConfig(address=0x44))


def test_hookimpl_registers_the_type() -> None:
    pm = pluggy.PluginManager("sensord")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    assert pm.hook.sensord_register_sensors() == [[SHT3x]]
    assert SHT3x.type_name == "sht3x"
