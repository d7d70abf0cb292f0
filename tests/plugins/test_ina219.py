"""The `ina219` driver against the datasheet and a fake INA219."""

from __future__ import annotations

import logging
from typing import Any, Generic, TypeVar

import pytest
from driver_kit import example_config

from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.testing.i2c import FakeI2CBus, I2CDeviceModel, RegisterMapDevice
from sensord.testing.models.ads1115 import ADS1115Model
from sensord.testing.models.ina219 import INA219Model
from sensord_plugins import ina219 as plugin
from sensord_plugins.ina219 import (
    INA219,
    INA219Config,
    bus_voltage_v,
    calibration_value,
    current_lsb_a,
    power_lsb_w,
    shunt_range_code,
    swap16,
    to_signed16,
)

# SBOS448 §8.5.1, the Configure/Measure/Calculate example: 10 A through 2 mΩ at 12 V, Current_LSB
# 1 mA (so max_current_a = 32.768 A).
EXAMPLE = {"config": 0x019F, "shunt": 0x07D0, "bus": 0x5D98, "calibration": 0x5000, "current": 0x2710,
           "power": 0x1766}


M = TypeVar("M", bound=I2CDeviceModel)


class Rig(Generic[M]):
    """A driver on a fake bus whose sleeps are recorded, not slept."""

    def __init__(self, model: M, **options: Any) -> None:
        self.model = model
        self.bus = FakeI2CBus([model])
        self.sleeps: list[float] = []
        hardware = Hardware(i2c_factory=lambda n: self.bus, sleep=self.sleeps.append)
        self.sensor = INA219(INA219Config(**options), name="solar", hardware=hardware)


class WordChip(I2CDeviceModel):
    """A chip with 16-bit registers behind a pointer byte, MSB first, like the INA219."""

    def __init__(self, registers: dict[int, int]) -> None:
        super().__init__(address=0x40)
        self.registers = registers
        self.pointer = 0

    def write_raw(self, data: bytes) -> None:
        self.pointer = data[0]

    def read_raw(self, length: int) -> bytes:
        return self.registers[self.pointer].to_bytes(2, "big")[:length]


def values(rig: Rig[Any]) -> dict[str, float]:
    return {r.quantity: r.value for r in rig.sensor.read()}


def register(bus: FakeI2CBus, addr: int, reg: int) -> int:
    return swap16(bus.read_word_data(addr, reg))


# -- datasheet values and pure functions ------------------------------------------------------

def test_datasheet_example_calibration() -> None:
    assert calibration_value(32.768, 0.002) == EXAMPLE["calibration"] == 20480
    assert current_lsb_a(20480, 0.002) == pytest.approx(1e-3)
    assert power_lsb_w(1e-3) == pytest.approx(20e-3)
    assert pytest.approx(0.020) == 0x07D0 * 10e-6  # 20 mV across the shunt
    assert bus_voltage_v(EXAMPLE["bus"]) == pytest.approx(11.98)
    assert EXAMPLE["current"] * 1e-3 == pytest.approx(10.0)
    assert EXAMPLE["power"] * 20e-3 == pytest.approx(119.8)


def test_datasheet_example_on_the_model() -> None:
    model = INA219Model(bus_voltage_v=11.98, current_a=10.0, shunt_ohms=0.002)
    bus = FakeI2CBus([model])
    bus.write_word_data(0x40, 0x00, swap16(EXAMPLE["config"]))
    bus.write_word_data(0x40, 0x05, swap16(EXAMPLE["calibration"]))
    assert register(bus, 0x40, 0x01) == EXAMPLE["shunt"]
    assert register(bus, 0x40, 0x02) & ~0b111 == EXAMPLE["bus"]
    assert register(bus, 0x40, 0x04) == EXAMPLE["current"]
    assert register(bus, 0x40, 0x03) == EXAMPLE["power"]


def test_equations_1_to_3_for_common_boards() -> None:
    assert calibration_value(3.2768, 0.1) == 4096  # 100 µA steps, the usual "32 V, 2 A" setting
    assert calibration_value(3.2, 0.1) == 4194  # the defaults: trunc(4194.304)
    assert calibration_value(1.0, 0.1) == 13420  # trunc(13421.77) = 13421, bit 0 void
    assert current_lsb_a(4096, 0.1) == pytest.approx(100e-6)
    assert power_lsb_w(100e-6) == pytest.approx(2e-3)


def test_register_helpers() -> None:
    assert to_signed16(0xFFFF) == -1
    assert to_signed16(0x7FFF) == 32767
    assert to_signed16(0x8000) == -32768
    assert swap16(0x9F39) == 0x399F
    assert [shunt_range_code(v) for v in (0.01, 0.04, 0.05, 0.2, 0.32)] == [0, 0, 1, 3, 3]


# -- the driver on the fake chip -------------------------------------------------------------

def test_reads_voltage_current_and_power() -> None:
    rig = Rig(INA219Model(bus_voltage_v=5.02, current_a=1.25), shunt_ohms=0.1, max_current_a=2.0)
    rig.sensor.open()
    got = values(rig)
    lsb = 2.0 / 32768
    assert got["voltage"] == pytest.approx(5.02)
    assert got["current"] == pytest.approx(1.25, abs=lsb)
    assert got["power"] == pytest.approx(5.02 * 1.25, abs=20 * lsb)
    assert [(c.quantity, c.unit) for c in rig.sensor.channels()] == [("voltage", "V"), ("current", "A"),
                                                                     ("power", "W")]
    assert [c.resolution for c in rig.sensor.channels()] == pytest.approx([0.004, lsb, 20 * lsb], rel=1e-3)


def test_probe_resets_then_programs_calibration_and_configuration() -> None:
    rig = Rig(INA219Model(), max_current_a=2.0, samples=8)
    rig.sensor.open()
    # Register pointer, then the value high byte first; 0x2000 | PG 11 | ADC 1011 ×2 | mode 111.
    assert rig.bus.writes(0x40) == [b"\x00\x80\x00", b"\x05\x1a\x36", b"\x00\x3d\xdf"]
    assert rig.model.calibration == calibration_value(2.0, 0.1) == 6710  # trunc(6710.89)


def test_datasheet_example_through_the_driver() -> None:
    rig = Rig(INA219Model(bus_voltage_v=11.98, current_a=10.0, shunt_ohms=0.002), shunt_ohms=0.002,
              max_current_a=32.768, bus_voltage_range_v=16)
    rig.sensor.open()
    assert rig.sensor.calibration == 20480
    assert values(rig) == {"voltage": pytest.approx(11.98), "current": pytest.approx(10.0),
                           "power": pytest.approx(119.8)}


def test_reverse_current_is_negative() -> None:
    rig = Rig(INA219Model(bus_voltage_v=12.0, current_a=-0.5))
    rig.sensor.open()
    got = values(rig)
    assert got["current"] == pytest.approx(-0.5, abs=1e-4)
    assert got["power"] == pytest.approx(6.0, abs=2e-3)


def test_waits_for_conversion_ready() -> None:
    rig = Rig(INA219Model(bus_voltage_v=3.3, conversion_reads=2), samples=4)
    rig.sensor.open()
    assert values(rig)["voltage"] == pytest.approx(3.3)
    assert rig.sleeps == pytest.approx([2 * 2.13e-3] * 2)


def test_no_conversion_is_an_error() -> None:
    rig = Rig(INA219Model(conversion_reads=1000))
    rig.sensor.open()
    with pytest.raises(SensorError, match=r'^sensor "solar" \(ina219 @ 0x40 on bus 1\): no conversion ready '
                                          r"\(CNVR still 0\) after 3 conversion times of 1.06 ms$"):
        rig.sensor.read()


def test_overflow_is_an_error() -> None:
    rig = Rig(INA219Model(bus_voltage_v=12.0, current_a=3.0), max_current_a=1.0)
    rig.sensor.open()
    with pytest.raises(SensorError, match=r"ina219 @ 0x40 on bus 1\): math overflow \(OVF\): current or power "
                                          r"out of range; is the current above max_current_a = 1 A\?"):
        rig.sensor.read()


def test_lost_calibration_is_programmed_again(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(INA219Model(bus_voltage_v=12.0, current_a=1.0))
    rig.sensor.open()
    rig.model.power_cycle()
    with caplog.at_level(logging.WARNING):
        got = values(rig)
    assert got["current"] == pytest.approx(1.0, abs=1e-4)
    assert rig.model.calibration == rig.sensor.calibration
    assert "calibration lost" in caplog.text


def test_probe_rejects_another_chip() -> None:
    rig = Rig(RegisterMapDevice(address=0x40, registers={0x00: b"\x12\x34"}, read_only=[0x00, 0x01]))
    with pytest.raises(SensorError, match=r"configuration register 0x1234 after reset, expected 0x399f: "
                                          r"is it an INA219\?"):
        rig.sensor.open()


def test_a_nack_is_retried() -> None:
    rig = Rig(INA219Model(bus_voltage_v=7.5))
    rig.sensor.open()
    rig.bus.fail_next(0x40)
    assert values(rig)["voltage"] == pytest.approx(7.5)


def test_persistent_nacks_name_the_chip() -> None:
    rig = Rig(INA219Model(), address=0x41)
    with pytest.raises(SensorError, match=r'^sensor "solar" \(ina219 @ 0x41 on bus 1\): no answer \(NACK\)'):
        rig.sensor.open()


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"max_current_a": 5.0}, "f.toml: sensor[0].max_current_a: 5 A drops 500 mV across shunt_ohms = 0.1, "
                             "expected at most 320 mV (the shunt range)"),
    ({"shunt_ohms": 0.001, "max_current_a": 1.0},
     "f.toml: sensor[0].max_current_a: 1 A with shunt_ohms = 0.001 needs calibration 1342176, expected at "
     "most 65534: raise max_current_a"),
    ({"shunt_ohms": 0}, "f.toml: sensor[0].shunt_ohms: expected a number > 0, found 0"),
    ({"max_current_a": -1}, "f.toml: sensor[0].max_current_a: expected a number > 0, found -1"),
    ({"samples": 3}, "f.toml: sensor[0].samples: expected one of 1, 2, 4, 8, 16, 32, 64, 128, found 3"),
    ({"bus_voltage_range_v": 26}, "f.toml: sensor[0].bus_voltage_range_v: expected one of 16, 32, found 26"),
    ({"address": 0x50}, "f.toml: sensor[0].address: expected an address from 0x40 to 0x4f, found 0x50"),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(INA219Config, options, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_defaults() -> None:
    cfg = build_options(INA219Config, {}, "sensor[0]", "f.toml")
    assert (cfg.address, cfg.shunt_ohms, cfg.max_current_a, cfg.bus_voltage_range_v, cfg.samples) == (
        0x40, 0.1, 3.2, 32, 1)


def test_docstring_example_parses() -> None:
    config = example_config(plugin, INA219)
    options = config.sensors[0].options
    assert isinstance(options, INA219Config)
    assert (options.shunt_ohms, options.max_current_a) == (0.1, 2.0)


# -- detect and registration -------------------------------------------------------------

def test_identify_a_fresh_and_a_used_chip() -> None:
    bus = FakeI2CBus([INA219Model(address=0x45, current_a=0.3)])
    assert INA219.identify(bus, 0x45) == {"type": "ina219", "address": 0x45}
    assert not [w for w in bus.writes(0x45) if len(w) > 1]  # only pointer bytes
    rig = Rig(INA219Model(bus_voltage_v=12.0, current_a=-1.0))
    rig.sensor.open()
    rig.sensor.read()
    assert INA219.identify(rig.bus, 0x40) == {"type": "ina219", "address": 0x40}


def test_identify_rejects_other_chips() -> None:
    assert INA219.identify(FakeI2CBus([ADS1115Model()]), 0x48) is None
    fresh = {0: 0x399F, 1: 0x0010, 2: 0x5D9A, 3: 0, 4: 0, 5: 0}
    assert INA219.identify(FakeI2CBus([WordChip(fresh)]), 0x40) == {"type": "ina219", "address": 0x40}
    for changes in [{0: 0x799F},  # bit 14 set
                    {2: 0x5D9C},  # bus voltage bit 2 set
                    {5: 0x1001, 4: 0x0010},  # calibration bit 0 set
                    {0: 0x019F, 1: 0x1000},  # 40.96 mV, beyond the 40 mV shunt range of PG = 00
                    {4: 0x0010}]:  # uncalibrated, yet a current
        assert INA219.identify(FakeI2CBus([WordChip({**fresh, **changes})]), 0x40) is None, changes
    assert INA219.identify(FakeI2CBus(), 0x40) is None


def test_hookimpl_registers_the_driver() -> None:
    assert plugin.sensord_register_sensors() == [INA219]
    assert INA219.i2c_addresses == tuple(range(0x40, 0x50))
