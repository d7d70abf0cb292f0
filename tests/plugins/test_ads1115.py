"""The `ads1115` driver against the datasheet and a fake ADS1115 / ADS1015."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import pytest
from driver_kit import example_config

from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.testing.i2c import FakeI2CBus, I2CDeviceModel, RegisterMapDevice
from sensord.testing.models.ads1115 import ADS1115Model
from sensord_plugins import ads1115 as plugin
from sensord_plugins.ads1115 import (
    ADS1115,
    ADS1115Config,
    code_to_volts,
    config_word,
    lsb_volts,
    quantity_name,
    swap16,
)

M = TypeVar("M", bound=I2CDeviceModel)


class Rig(Generic[M]):
    """A driver on a fake bus whose sleeps are recorded, not slept."""

    def __init__(self, model: M, **options: Any) -> None:
        self.model = model
        self.bus = FakeI2CBus([model])
        self.sleeps: list[float] = []
        hardware = Hardware(i2c_factory=lambda n: self.bus, sleep=self.sleeps.append)
        self.sensor = ADS1115(ADS1115Config(**options), name="adc", hardware=hardware)


def values(rig: Rig[Any]) -> dict[str, float]:
    return {r.quantity: r.value for r in rig.sensor.read()}


# -- datasheet values and pure functions ------------------------------------------------------

@pytest.mark.parametrize(("gain", "lsb"), [(6.144, 187.5e-6), (4.096, 125e-6), (2.048, 62.5e-6),
                                           (1.024, 31.25e-6), (0.512, 15.625e-6), (0.256, 7.8125e-6)])
def test_lsb_sizes_of_table_3(gain: float, lsb: float) -> None:
    assert lsb_volts(gain) == pytest.approx(lsb)
    assert lsb_volts(gain, bits=12) == pytest.approx(lsb * 16)  # ADS1015: 3 mV at 6.144 V ... 125 µV


def test_output_codes() -> None:
    assert code_to_volts(0x7FFF, 2.048) == pytest.approx(2.048 * 32767 / 32768)  # +FS
    assert code_to_volts(0x8000, 2.048) == pytest.approx(-2.048)  # -FS
    assert code_to_volts(0x0001, 2.048) == pytest.approx(62.5e-6)
    assert code_to_volts(0xFFFF, 2.048) == pytest.approx(-62.5e-6)
    assert code_to_volts(0x0000, 2.048) == 0.0
    # ADS1015: 12 bits left-aligned; the 4 low bits are dropped whatever they hold.
    assert code_to_volts(0x7FF0, 2.048, bits=12) == pytest.approx(2.048 * 2047 / 2048)
    assert code_to_volts(0x800F, 2.048, bits=12) == pytest.approx(-2.048)
    assert code_to_volts(0x0010, 2.048, bits=12) == pytest.approx(1e-3)


def test_config_word() -> None:
    # The power-up value 0x8583: OS, AIN0-AIN1, +/-2.048 V, single-shot, 128 SPS, comparator off.
    assert config_word(mux=0b000, gain=2.048, dr_code=0b100) == 0x8583
    assert config_word(mux=0b100, gain=4.096, dr_code=0b100) == 0xC383
    assert config_word(mux=0b111, gain=0.256, dr_code=0b111, start=False) == 0x7BE3


def test_swap16_is_the_smbus_byte_order() -> None:
    assert swap16(0x8583) == 0x8385
    assert swap16(swap16(0x1234)) == 0x1234


def test_quantity_names() -> None:
    assert quantity_name("a0") == "voltage_a0"
    assert quantity_name("a2-a3") == "voltage_a2_a3"


# -- the driver on the fake chip -------------------------------------------------------------

def test_reads_single_ended_and_differential_inputs() -> None:
    rig = Rig(ADS1115Model(inputs=[1.5, 0.25, 0.0, 3.3]), channels=["a0", "a1", "a0-a1", "a3"])
    rig.sensor.open()
    got = values(rig)
    assert got == {"voltage_a0": pytest.approx(1.5, abs=125e-6), "voltage_a1": pytest.approx(0.25, abs=125e-6),
                   "voltage_a0_a1": pytest.approx(1.25, abs=125e-6), "voltage_a3": pytest.approx(3.3, abs=125e-6)}
    assert [r.unit for r in rig.sensor.read()] == ["V"] * 4
    assert rig.sensor.channels()[0].resolution == pytest.approx(125e-6)
    assert rig.model.conversions == 8


def test_registers_go_on_the_wire_msb_first() -> None:
    rig = Rig(ADS1115Model(inputs=[1.0, 0, 0, 0]), channels=["a0"])
    rig.sensor.open()
    rig.sensor.read()
    # Pointer 0x01, then 0xC383 high byte first; SMBus would send a plain word low byte first.
    assert rig.bus.writes(0x48)[-1] == b"\x01\xc3\x83"
    assert rig.model.registers[0] == round(1.0 / 4.096 * 32768)


def test_waits_a_conversion_then_polls_the_os_bit() -> None:
    rig = Rig(ADS1115Model(inputs=[0.5, 0, 0, 0], busy_reads=3), data_rate=860)
    rig.sensor.open()
    assert values(rig)["voltage_a0"] == pytest.approx(0.5, abs=125e-6)
    assert rig.sleeps[0] == pytest.approx(1.1 / 860)
    assert len(rig.sleeps) == 1 + 3  # three polls found it still converting


def test_a_conversion_that_never_ends_is_an_error() -> None:
    rig = Rig(ADS1115Model(busy_reads=1000))
    rig.sensor.open()
    with pytest.raises(SensorError, match=r'sensor "adc" \(ads1115 @ 0x48 on bus 1\): conversion of "a0" not '
                                          r"finished after 16 ms \(config bit 15, OS, still 0\)"):
        rig.sensor.read()


def test_inputs_beyond_full_scale_clip() -> None:
    rig = Rig(ADS1115Model(inputs=[5.0, 0, 0, 0]), gain=1.024, channels=["a0", "a0-a1"])
    rig.sensor.open()
    rig.model.set_input(1, 7.0)
    assert values(rig) == {"voltage_a0": pytest.approx(1.024, abs=32e-6), "voltage_a0_a1": pytest.approx(-1.024)}


def test_ads1015_twelve_bits() -> None:
    rig = Rig(ADS1115Model(chip="ads1015", inputs=[1.2345, 0, 0, 0]), chip="ads1015", gain=2.048)
    rig.sensor.open()
    got = values(rig)["voltage_a0"]
    assert got == pytest.approx(1.234)  # 1 mV steps
    assert rig.sensor.channels()[0].resolution == pytest.approx(1e-3)
    assert rig.sleeps[0] == pytest.approx(1.1 / 1600)  # reset data rate of the ADS1015


def test_data_rate_sets_the_dr_bits() -> None:
    rig = Rig(ADS1115Model(), data_rate=8)
    rig.sensor.open()
    rig.sensor.read()
    assert rig.bus.writes(0x48)[-1] == b"\x01\xc3\x03"  # DR = 000b
    assert rig.sleeps[0] == pytest.approx(1.1 / 8)


def test_probe_rejects_a_chip_whose_config_does_not_stick() -> None:
    other = RegisterMapDevice(address=0x48, registers={0x01: b"\x60\xa0"}, read_only=[0x01, 0x02])
    rig = Rig(other)
    with pytest.raises(SensorError, match=r"config register reads 0x60a0 after writing 0x4383; expected the "
                                          r"same apart from bit 15: is it an ADS1115/ADS1015\?"):
        rig.sensor.open()


def test_a_nack_is_retried() -> None:
    rig = Rig(ADS1115Model(inputs=[0.1, 0, 0, 0]))
    rig.sensor.open()
    rig.bus.fail_next(0x48)
    assert values(rig)["voltage_a0"] == pytest.approx(0.1, abs=125e-6)


def test_persistent_nacks_name_the_chip() -> None:
    rig = Rig(ADS1115Model())
    rig.sensor.open()
    rig.bus.fail_next(0x48, count=3)
    with pytest.raises(SensorError, match=r'^sensor "adc" \(ads1115 @ 0x48 on bus 1\): no answer \(NACK\)'):
        rig.sensor.read()


def test_a_missing_chip_fails_open() -> None:
    rig = Rig(ADS1115Model(address=0x49))
    with pytest.raises(SensorError, match=r"ads1115 @ 0x48 on bus 1\): no answer \(NACK\)"):
        rig.sensor.open()


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"gain": 5}, "f.toml: sensor[0].gain: expected one of 6.144, 4.096, 2.048, 1.024, 0.512, 0.256 "
                  "(full-scale volts), found 5"),
    ({"channels": ["a0", "a4"]}, 'f.toml: sensor[0].channels: expected inputs "a0" to "a3" or the pairs '
                                 '"a0-a1", "a0-a3", "a1-a3", "a2-a3", found "a4"'),
    ({"channels": ["a1-a0"]}, 'f.toml: sensor[0].channels: expected inputs "a0" to "a3" or the pairs '
                              '"a0-a1", "a0-a3", "a1-a3", "a2-a3", found "a1-a0"'),
    ({"channels": []}, "f.toml: sensor[0].channels: expected at least one input, found []"),
    ({"channels": ["a0", "a0"]}, 'f.toml: sensor[0].channels: expected each input once, found "a0" more than once'),
    ({"chip": "ads1015", "data_rate": 860},
     "f.toml: sensor[0].data_rate: expected one of 128, 250, 490, 920, 1600, 2400, 3300 for the ads1015, "
     "found 860"),
    ({"data_rate": 1600}, "f.toml: sensor[0].data_rate: expected one of 8, 16, 32, 64, 128, 250, 475, 860 "
                          "for the ads1115, found 1600"),
    ({"address": 0x40}, "f.toml: sensor[0].address: expected an address from 0x48 to 0x4b, found 0x40"),
    ({"chip": "ads1113"}, 'f.toml: sensor[0].chip: expected one of "ads1115", "ads1015", found "ads1113"'),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(ADS1115Config, options, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_defaults() -> None:
    cfg = build_options(ADS1115Config, {}, "sensor[0]", "f.toml")
    assert (cfg.address, cfg.bus, cfg.chip, cfg.channels, cfg.gain, cfg.data_rate) == (
        0x48, 1, "ads1115", ["a0"], 4.096, None)


def test_docstring_example_parses() -> None:
    config = example_config(plugin, ADS1115)
    options = config.sensors[0].options
    assert isinstance(options, ADS1115Config)
    assert options.channels == ["a0", "a1", "a0-a1"]
    assert options.gain == 4.096


# -- detect and registration -------------------------------------------------------------

def test_identify_a_fresh_and_a_used_chip() -> None:
    model = ADS1115Model(address=0x4A)
    bus = FakeI2CBus([model])
    assert ADS1115.identify(bus, 0x4A) == {"type": "ads1115", "address": 0x4A}
    assert not [w for w in bus.writes(0x4A) if len(w) > 1]  # only pointer bytes
    rig = Rig(ADS1115Model(), channels=["a2"], gain=0.512)
    rig.sensor.open()
    rig.sensor.read()
    assert ADS1115.identify(rig.bus, 0x48) == {"type": "ads1115", "address": 0x48}
    assert ADS1115.identify(FakeI2CBus([ADS1115Model(chip="ads1015")]), 0x48) is not None


def test_identify_rejects_other_chips() -> None:
    # A TMP102 at 0x48: T_LOW 0x4B00 and T_HIGH 0x5000 in registers 2 and 3.
    tmp102 = RegisterMapDevice(address=0x48, registers={0x01: b"\x60\xa0", 0x02: b"\x4b\x00", 0x03: b"\x50\x00"})
    assert ADS1115.identify(FakeI2CBus([tmp102]), 0x48) is None
    assert ADS1115.identify(FakeI2CBus(), 0x48) is None  # nothing there: NACK


def test_hookimpl_registers_the_driver() -> None:
    assert plugin.sensord_register_sensors() == [ADS1115]
    assert ADS1115.i2c_addresses == (0x48, 0x49, 0x4A, 0x4B)
