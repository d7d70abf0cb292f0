"""TMP102 digital temperature sensor (Texas Instruments), type `tmp102`.

Wiring: V+ to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
ADD0 pin picks the address: GND 0x48, V+ 0x49, SDA 0x4A, SCL 0x4B.

Datasheet: TI "TMP102 Low-Power Digital Temperature Sensor" (SBOS397): Pointer Register
(Tables 1, 2), Temperature Register (Tables 3, 4; data format Tables 5 and 6), Configuration
Register (Table 7: OS, R1/R0, SD, EM bits, reset 0x60A0), Electrical Characteristics
(conversion time 26 ms typ, 35 max).

The chip converts continuously (4 per second by default); a read fetches the latest result.
The temperature register is 12-bit, -55 to +128 °C in 0.0625 °C steps, or 13-bit with
`extended = true`, up to +150 °C. Bit D0 of the register says which format it holds, so a
reading right after switching is decoded correctly either way. Registers are 16 bits, most
significant byte first; SMBus words are least significant byte first, so the driver swaps.

The TMP102 has no id register, and the same addresses hold LM75s, ADS1x15 ADCs and PCF8591s
(whose control byte a register write would change): `sensord detect` cannot tell them apart.
`open()` checks the read-only resolution bits R1/R0, which read 11 on a TMP102 and 00 on an
LM75.

Example::

    [[sensor]]
    name = "radiator"
    type = "tmp102"
    interval_s = 15
    ## 0x48 with ADD0 to GND, 0x49 to V+, 0x4a to SDA, 0x4b to SCL.
    address = 0x49
    ## 13-bit extended mode, for temperatures above 128 °C (up to 150 °C).
    # extended = false
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range, signed, swap16

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x48
ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)  # ADD0 to GND, V+, SDA, SCL

# Pointer register values (Table 2).
_REG_TEMPERATURE = 0x00
_REG_CONFIG = 0x01

# Configuration register (Table 7) as a 16-bit word, byte 1 in the high half.
_CONFIG_OS = 0x8000  # one-shot: writing 1 in shutdown starts a conversion
_CONFIG_RESOLUTION = 0x6000  # R1/R0, read-only, always 11
_CONFIG_SD = 0x0100  # shutdown
_CONFIG_EM = 0x0010  # extended mode (13-bit)

# Temperature register (Tables 3, 4): D0 of byte 2 flags extended mode; unused bits read 0.
_TEMP_EXTENDED = 0x0001
_TEMP_UNUSED = {False: 0x000F, True: 0x0006}
_LSB_C = 0.0625
_CONVERSION_S = 0.035  # Electrical Characteristics: conversion time 35 ms max



@dataclass(frozen=True)
class TMP102Config(I2CConfig):
    """`[[sensor]]` keys of type `tmp102`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=ADDRESSES[0], le=ADDRESSES[-1])
    #: 13-bit extended mode (configuration bit EM): range up to 150 °C.
    extended: bool = False




def tmp102_celsius(raw: int, *, extended: bool = False) -> float:
    """°C from the 12-bit (13-bit if `extended`) digital output of Tables 5 and 6: two's
    complement, 0.0625 °C per LSB. Table 5: 0x7FF -> 127.9375, 0xE70 -> -25, 0xC90 -> -55."""
    return signed(raw, 13 if extended else 12) * _LSB_C


def decode_temperature(word: int) -> float:
    """°C from the 16-bit temperature register (byte 1 high), in whichever format bit D0 says.
    Raises ValueError when a bit that always reads 0 is set (not a TMP102's register)."""
    extended = bool(word & _TEMP_EXTENDED)
    if word & _TEMP_UNUSED[extended]:
        raise ValueError(f"temperature register 0x{word:04x}: unused bits "
                         f"0x{_TEMP_UNUSED[extended]:04x} should read 0")
    return tmp102_celsius(word >> (3 if extended else 4), extended=extended)


class TMP102(I2CSensor):
    """TI TMP102: temperature (°C), 0.0625 °C resolution."""

    type_name = "tmp102"
    Config = TMP102Config
    config: TMP102Config
    i2c_addresses = ADDRESSES

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", _LSB_C)]

    def _read_register(self, register: int) -> int:
        return swap16(self.transfer(lambda bus: bus.read_word_data(self.address, register)))

    def probe(self) -> None:
        """Check R1/R0; leave shutdown and set EM as configured (keeping the other bits)."""
        config = self._read_register(_REG_CONFIG)
        if config & _CONFIG_RESOLUTION != _CONFIG_RESOLUTION:
            raise self.error(f"configuration register 0x{config:04x}: read-only resolution bits "
                             f"R1,R0 are {config >> 13 & 3:02b}, expected 11 (an LM75 at this "
                             f"address is type lm75)")
        wanted = config & ~(_CONFIG_OS | _CONFIG_SD | _CONFIG_EM)
        if self.config.extended:
            wanted |= _CONFIG_EM
        if wanted != config & ~_CONFIG_OS:
            self.transfer(lambda bus: bus.write_word_data(self.address, _REG_CONFIG, swap16(wanted)))
            if config & _CONFIG_SD:
                # The register holds the value from before shutdown until a new conversion ends.
                self.hardware.sleep(_CONVERSION_S)

    def read(self) -> list[Reading]:
        word = self._read_register(_REG_TEMPERATURE)
        try:
            return [Reading("temperature", decode_temperature(word), "°C")]
        except ValueError as exc:
            raise self.error(str(exc)) from None

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Always None: no id register, and reading a register means writing the pointer, which
        a PCF8591 at the same address takes as its control byte (switching off its DAC)."""
        return None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [TMP102]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.tmp102 import TMP102Model  # lazy: only the fake node asks

    return [TMP102Model]
