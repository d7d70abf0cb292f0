"""LM75 digital temperature sensor and its successors (LM75A, LM75B, TMP75 at reset, STLM75,
PCT2075 ...), type `lm75`.

Wiring: VCC to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). Pins
A2, A1, A0 pick the address 0x48 + A2A1A0 (0x48 to 0x4F); most breakouts tie them to GND.

Datasheets: the LM75 (National/TI) temperature data format table, the same as ST's STLM75,
Table 3 (9-bit two's complement, 0.5 °C: 0x0FA -> +125 °C, 0x1FF -> -0.5 °C); NXP "LM75B"
(Rev. 6.1): 7.4 register list (Temp 0x00, Conf 0x01, Thyst 0x02, Tos 0x03), Table 8 (Conf
register, SHUTDOWN bit 0), 7.4.3 and Tables 9, 10 (11-bit Temp data, 0.125 °C).

The temperature register is 16 bits, most significant byte first (SMBus words are least
significant byte first, so the driver swaps), with the temperature left-justified: 9 bits on
the original LM75, whose 7 lower bits are undefined and must be masked, 11 bits on the LM75B
and NXP LM75A. `resolution_bits = 11` reads the extra bits on those; on an original LM75 it
would read noise. The chip converts continuously; a read fetches the latest result.

An LM75 has no id register, and the same addresses hold TMP102s, ADS1x15 ADCs and PCF8591s:
`sensord detect` cannot tell them apart. `open()` checks that the reserved configuration bits
7-5 read 0 (a TMP102 reads 011 there).

Example::

    [[sensor]]
    name = "enclosure"
    type = "lm75"
    interval_s = 30
    ## 0x48 + A2A1A0: 0x48 with all three address pins to GND.
    address = 0x48
    ## 9 for the original LM75 (0.5 °C), 11 for the LM75B and NXP LM75A (0.125 °C).
    resolution_bits = 11
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range, signed, swap16

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x48
ADDRESSES = tuple(range(0x48, 0x50))  # 1001 A2 A1 A0

# Pointer values (LM75B 7.4).
_REG_TEMP = 0x00
_REG_CONF = 0x01  # (Thyst 0x02 and Tos 0x03 are the thermostat's; sensord leaves them alone)

# Configuration register (LM75B Table 8): one byte.
_CONF_SHUTDOWN = 0x01
_CONF_RESERVED = 0xE0  # bits 7-5: reserved, read 0 (a TMP102's resolution bits read 11 there)
#: Longer than one conversion of any LM75 variant (100 ms typical on the LM75 and LM75B).
_CONVERSION_S = 0.3



@dataclass(frozen=True)
class LM75Config(I2CConfig):
    """`[[sensor]]` keys of type `lm75`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=ADDRESSES[0], le=ADDRESSES[-1])
    #: Bits of the temperature register to use: 9 (LM75, 0.5 °C) or 11 (LM75B, 0.125 °C).
    resolution_bits: Literal[9, 11] = 9




def lm75_celsius(raw: int, *, bits: int = 9) -> float:
    """°C from the `bits`-wide temperature data, two's complement with the binary point 8 bits
    from the top: 9 bits -> 0.5 °C per LSB (0x0FA -> +125, 0x1FF -> -0.5), 11 bits -> 0.125 °C
    (LM75B Table 10: 0x3E8 -> +125, 0x649 -> -54.875)."""
    return signed(raw, bits) * 2.0 ** (8 - bits)


def decode_temperature(word: int, *, bits: int = 9) -> float:
    """°C from the 16-bit temperature register (MSB first), ignoring the bits below `bits`."""
    return lm75_celsius(word >> (16 - bits), bits=bits)


class LM75(I2CSensor):
    """LM75 family: temperature (°C), 0.5 °C (9-bit) or 0.125 °C (11-bit) resolution."""

    type_name = "lm75"
    Config = LM75Config
    config: LM75Config
    i2c_addresses = ADDRESSES

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", 2.0 ** (8 - self.config.resolution_bits))]

    def probe(self) -> None:
        """Check the reserved configuration bits; leave shutdown if another program left it."""
        conf = int(self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_CONF)))
        if conf & _CONF_RESERVED:
            raise self.error(f"configuration register 0x{conf:02x}: reserved bits 7-5 are "
                             f"{conf >> 5:03b}, expected 000 (a TMP102 at this address is type tmp102)")
        if conf & _CONF_SHUTDOWN:
            self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_CONF, conf & ~_CONF_SHUTDOWN))
            # The register holds the value from before shutdown until a new conversion ends.
            self.hardware.sleep(_CONVERSION_S)

    def read(self) -> list[Reading]:
        word = swap16(self.transfer(lambda bus: bus.read_word_data(self.address, _REG_TEMP)))
        return [Reading("temperature", decode_temperature(word, bits=self.config.resolution_bits), "°C")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Always None: no id register, and reading a register means writing the pointer, which
        a PCF8591 at the same address takes as its control byte (switching off its DAC)."""
        return None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [LM75]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.tmp102 import LM75Model  # lazy: only the fake node asks

    return [LM75Model]
