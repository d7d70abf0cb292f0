"""Texas Instruments ADS1115 (16-bit) and ADS1015 (12-bit) four-input ADCs, type `ads1115`.

Each read converts every configured input once in single-shot mode, so the chip powers down
between reads (ADS111x datasheet §9.4.2.1). An input is either one pin against GND ("a0") or a
differential pair ("a0-a1"); each becomes a quantity `voltage_<input>` in volts, e.g.
`voltage_a0` and `voltage_a0_a1`.

Wiring: VDD to 3.3 V (header pin 1), GND, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The ADDR
pin sets the address: GND 0x48, VDD 0x49, SDA 0x4A, SCL 0x4B (§9.5.1.1, Table 4). Whatever the `gain`,
keep every input between GND - 0.3 V and VDD + 0.3 V: the gain only sets which part of that
range is converted (§9.3.3); with VDD = 3.3 V, `gain = 4.096` covers all of it.

Datasheets: "ADS111x Ultra-Small, Low-Power, I2C-Compatible, 860-SPS, 16-Bit ADCs" (TI SBAS444,
https://www.ti.com/lit/ds/symlink/ads1115.pdf) and "ADS101x ... 3.3-kSPS, 12-Bit ADCs" (TI SBAS473,
https://www.ti.com/lit/ds/symlink/ads1015.pdf). Both have the same four 16-bit registers; the
ADS1015 has other data rates and a 12-bit result, left-aligned in the conversion register.

Example::

    [[sensor]]
    name = "battery"
    type = "ads1115"
    interval_s = 30
    ## The chip on the board: "ads1115" (16-bit) or "ads1015" (12-bit).
    # chip = "ads1115"
    ## The inputs to convert: "a0" to "a3" against GND, or the pairs "a0-a1", "a0-a3", "a1-a3",
    ## "a2-a3" (the first input minus the second).
    channels = ["a0", "a1", "a0-a1"]
    ## Full-scale range in volts, +/-: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256.
    gain = 4.096
    ## Samples per second; slower is less noisy. ADS1115: 8, 16, 32, 64, 128, 250, 475, 860
    ## (default 128). ADS1015: 128, 250, 490, 920, 1600, 2400, 3300 (default 1600).
    # data_rate = 128
    # address = 0x48
    # bus = 1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, SensorConfig, field_range, swap16

if TYPE_CHECKING:
    from sensord import Hardware
    from sensord.testing import I2CDeviceModel

# Registers, selected by the pointer byte P[1:0] (§9.6.1); each is 16 bits, MSB first (§9.5.3).
_REG_CONVERSION = 0x00  # §9.6.2: the last result, two's complement; 0 after power-up
_REG_CONFIG = 0x01  # §9.6.3: reset value 0x8583
_REG_LO_THRESH = 0x02  # §9.6.4: reset value 0x8000
_REG_HI_THRESH = 0x03  # §9.6.4: reset value 0x7FFF

# Config register fields (§9.6.3).
_OS = 0x8000  # bit 15: writing 1 starts a single conversion; reads 0 while converting, 1 when idle
_MUX_SHIFT = 12  # bits 14:12: input multiplexer
_PGA_SHIFT = 9  # bits 11:9: full-scale range
_MODE_SINGLE_SHOT = 0x0100  # bit 8: 1 = single-shot (power down after each conversion)
_DR_SHIFT = 5  # bits 7:5: data rate
_COMP_QUE_DISABLE = 0x0003  # bits 1:0 = 11b: comparator off, ALERT/RDY pin high-Z (as at reset)

_MUX: dict[str, int] = {
    "a0-a1": 0b000, "a0-a3": 0b001, "a1-a3": 0b010, "a2-a3": 0b011,  # differential: AINp - AINn
    "a0": 0b100, "a1": 0b101, "a2": 0b110, "a3": 0b111,  # single-ended: AINx - GND
}
# PGA code per full-scale range in volts (§9.3.3, Table 3).
_PGA: dict[float, int] = {6.144: 0b000, 4.096: 0b001, 2.048: 0b010, 1.024: 0b011, 0.512: 0b100, 0.256: 0b101}
# Samples per second, indexed by the DR code. ADS1015 code 111b is 3300 SPS again (SBAS473,
# config register DR field).
_DATA_RATES: dict[str, tuple[int, ...]] = {
    "ads1115": (8, 16, 32, 64, 128, 250, 475, 860),
    "ads1015": (128, 250, 490, 920, 1600, 2400, 3300),
}
_DEFAULT_DR_CODE = 0b100  # the reset value: 128 SPS on the ADS1115, 1600 SPS on the ADS1015
_BITS: dict[str, int] = {"ads1115": 16, "ads1015": 12}

# The data rate may be up to 10 % slow (§7.5, data rate variation), so a conversion can take
# 1.1 / DR; after that wait the OS bit is polled this many times, a tenth of a conversion apart.
_CONVERSION_MARGIN = 1.1
_OS_POLLS = 10


@dataclass(frozen=True)
class ADS1115Config(I2CConfig):
    """`[[sensor]]` keys of type `ads1115`."""

    address: int = field_range(0x48, ge=0x48, le=0x4B)
    chip: Literal["ads1115", "ads1015"] = "ads1115"
    channels: list[str] = field(default_factory=lambda: ["a0"])
    gain: float = 4.096  # full-scale range, +/- volts
    data_rate: int | None = None  # samples per second; None: the chip's reset value

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("channels: expected at least one input, found []")
        for name in self.channels:
            if name not in _MUX:
                raise ValueError(f'channels: expected inputs "a0" to "a3" or the pairs "a0-a1", "a0-a3", '
                                 f'"a1-a3", "a2-a3", found "{name}"')
        for name in self.channels:
            if self.channels.count(name) > 1:
                raise ValueError(f'channels: expected each input once, found "{name}" more than once')
        if self.gain not in _PGA:
            raise ValueError(f"gain: expected one of {', '.join(f'{g:g}' for g in _PGA)} "
                             f"(full-scale volts), found {self.gain:g}")
        rates = _DATA_RATES[self.chip]
        if self.data_rate is not None and self.data_rate not in rates:
            raise ValueError(f"data_rate: expected one of {', '.join(map(str, rates))} for the {self.chip}, "
                             f"found {self.data_rate}")



def lsb_volts(gain: float, bits: int = 16) -> float:
    """The size of one step for a full-scale range: FSR / 2**15 on the ADS1115 (§9.3.3,
    Table 3: 125 µV at +/-4.096 V), FSR / 2**11 on the ADS1015."""
    return gain / (1 << (bits - 1))


def code_to_volts(register: int, gain: float, bits: int = 16) -> float:
    """The voltage of a conversion register value (§9.5.4, Table 5: 0x7FFF is +FS less one LSB,
    0x8000 is -FS). An ADS1015 result is left-aligned: shift out its 4 low bits first."""
    code = register - 0x10000 if register & 0x8000 else register
    return (code >> (16 - bits)) * lsb_volts(gain, bits)


def config_word(*, mux: int, gain: float, dr_code: int, start: bool = True) -> int:
    """The config register value for a single-shot conversion with the comparator off."""
    return ((_OS if start else 0) | mux << _MUX_SHIFT | _PGA[gain] << _PGA_SHIFT | _MODE_SINGLE_SHOT
            | dr_code << _DR_SHIFT | _COMP_QUE_DISABLE)


def quantity_name(channel: str) -> str:
    """The quantity an input's voltage is published as: "a0" → voltage_a0, "a0-a1" → voltage_a0_a1."""
    return "voltage_" + channel.replace("-", "_")


class ADS1115(I2CSensor):
    """An ADS1115 or ADS1015 converting its configured inputs on every read."""

    type_name = "ads1115"
    Config = ADS1115Config
    config: ADS1115Config
    i2c_addresses = (0x48, 0x49, 0x4A, 0x4B)

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        cfg = self.config
        rates = _DATA_RATES[cfg.chip]
        self._dr_code = _DEFAULT_DR_CODE if cfg.data_rate is None else rates.index(cfg.data_rate)
        self._bits = _BITS[cfg.chip]
        self._conversion_s = 1.0 / rates[self._dr_code]  # §9.3.6: one conversion takes 1 / DR

    def channels(self) -> list[Channel]:
        lsb = lsb_volts(self.config.gain, self._bits)
        return [Channel(quantity_name(ch), "V", lsb) for ch in self.config.channels]

    def probe(self) -> None:
        # There is no id register. Write the configuration without starting a conversion and read
        # it back: every bit but OS (the busy flag) must stick (§9.6.3).
        word = self._config(self.config.channels[0], start=False)
        self._write(_REG_CONFIG, word)
        got = self._read(_REG_CONFIG)
        if got & ~_OS != word:
            raise self.error(f"config register reads 0x{got:04x} after writing 0x{word:04x}; "
                             f"expected the same apart from bit 15: is it an ADS1115/ADS1015?")

    def read(self) -> list[Reading]:
        return [Reading(quantity_name(ch), self._convert(ch), "V") for ch in self.config.channels]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """An ADS1x15 has no id register; recognise it by the threshold registers' reset values
        (Lo 0x8000, Hi 0x7FFF, §9.6.4), which this driver never changes, and a disabled comparator.
        Only reads (the pointer byte before each read selects a register). The low 4 bits are
        ignored: they are unused on the ADS1015. An ADS1015 is reported as an ADS1115, which reads
        it correctly (its 12-bit result is left-aligned) at a coarser step than claimed."""
        try:
            lo = swap16(bus.read_word_data(address, _REG_LO_THRESH))
            hi = swap16(bus.read_word_data(address, _REG_HI_THRESH))
            config = swap16(bus.read_word_data(address, _REG_CONFIG))
        except OSError:
            return None
        if lo & 0xFFF0 == 0x8000 and hi & 0xFFF0 == 0x7FF0 and config & _COMP_QUE_DISABLE == _COMP_QUE_DISABLE:
            return {"type": cls.type_name, "address": address}
        return None

    # -- bus access ---------------------------------------------------------------------------

    def _config(self, channel: str, *, start: bool) -> int:
        return config_word(mux=_MUX[channel], gain=self.config.gain, dr_code=self._dr_code, start=start)

    def _read(self, register: int) -> int:
        return swap16(self.transfer(lambda bus: bus.read_word_data(self.address, register)))

    def _write(self, register: int, value: int) -> None:
        self.transfer(lambda bus: bus.write_word_data(self.address, register, swap16(value)))

    def _convert(self, channel: str) -> float:
        """Start a single-shot conversion of `channel`, wait for it (§9.4.2.1), return volts."""
        self._write(_REG_CONFIG, self._config(channel, start=True))
        # Sleep outside the bus lock: at 8 SPS a conversion takes 125 ms.
        self.hardware.sleep(self._conversion_s * _CONVERSION_MARGIN)
        for _ in range(_OS_POLLS):
            if self._read(_REG_CONFIG) & _OS:
                break
            self.hardware.sleep(self._conversion_s / 10)
        else:
            waited_ms = self._conversion_s * (_CONVERSION_MARGIN + _OS_POLLS / 10) * 1000
            raise self.error(f'conversion of "{channel}" not finished after {waited_ms:.0f} ms '
                             f"(config bit 15, OS, still 0)")
        volts = code_to_volts(self._read(_REG_CONVERSION), self.config.gain, self._bits)
        return round(volts, 9)  # drop float noise far below the smallest step (7.8 µV)


@sensord.hookimpl
def sensord_register_sensors() -> list[type[sensord.Sensor]]:
    return [ADS1115]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.ads1115 import ADS1115Model  # lazy: only the fake node asks

    return [ADS1115Model]
