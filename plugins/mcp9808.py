"""MCP9808 digital temperature sensor (Microchip), type `mcp9808`: temperature in °C.

Wiring: VDD to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
pins A2, A1, A0 pick the address `0011 A2 A1 A0`: 0x18 with all three to GND (what breakout
boards' pull-downs give) up to 0x1F with all three to VDD, so eight can share a bus.

Datasheet: Microchip "MCP9808 ±0.5°C Maximum Accuracy Digital Temperature Sensor" (DS25095A):
Register Pointer (Register 5-1), CONFIG (Register 5-2: SHDN is bit 8), Ambient Temperature T_A
(Register 5-4, conversion in Equation 5-1), Manufacturer ID (register 6, 0x0054), Device ID and
Revision (register 7, device id 0x04 in the upper byte), Resolution register (register 8, bits
1-0), Temperature Conversion Time (t_CONV 30, 65, 130 and 250 ms typical for 0.5, 0.25, 0.125
and 0.0625 °C).

The chip converts continuously; a read fetches the latest result from T_A. Registers are 16
bits, most significant byte first (the resolution register is 8 bits). T_A holds a 13-bit two's
complement temperature in 0.0625 °C steps (bit 12 the sign) under three alert flag bits, which
the driver masks. `open()` checks the manufacturer and device ids, leaves shutdown, and sets the
resolution, waiting one conversion when it changed anything. `sensord detect` recognises the
chip by its two id registers.

The kernel has a driver for this chip too (`jc42`, `dtoverlay=i2c-sensor,jc42`), read through
the `hwmon` type; use one or the other for a chip, not both.

Example::

    [[sensor]]
    name = "fridge"
    type = "mcp9808"
    interval_s = 30
    ## 0x18 with A2, A1, A0 to GND, up to 0x1f with all three to VDD.
    address = 0x19
    ## Resolution in °C: 0.5 (30 ms per conversion), 0.25, 0.125 or 0.0625 (250 ms).
    # resolution_c = 0.0625
    # bus = 1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range
from sensord.i2c import read_id_words

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x18
ADDRESSES = tuple(range(0x18, 0x20))  # 0011 A2 A1 A0

# Register pointers (Register 5-1); 0x09-0x0F are reserved for test and calibration.
_REG_CONFIG = 0x01
_REG_AMBIENT = 0x05
_REG_MANUFACTURER_ID = 0x06
_REG_DEVICE_ID = 0x07
_REG_RESOLUTION = 0x08

MANUFACTURER_ID = 0x0054  # Microchip
DEVICE_ID = 0x04  # upper byte of register 0x07; the lower byte is the revision
_CONFIG_SHDN = 0x0100  # CONFIG bit 8: shutdown, T_A keeps its last value
_AMBIENT_DATA = 0x1FFF  # T_A bits 15-13 are alert flags, bit 12 the sign, bits 11-0 the temperature
_LSB_C = 0.0625
#: Resolution in °C -> (Resolution register bits 1-0, t_CONV typical in s).
RESOLUTIONS: dict[float, tuple[int, float]] = {0.5: (0x00, 0.030), 0.25: (0x01, 0.065),
                                               0.125: (0x02, 0.130), 0.0625: (0x03, 0.250)}
# The datasheet gives t_CONV as typical only: wait a quarter longer for the first new result.
_CONVERSION_MARGIN = 1.25


@dataclass(frozen=True)
class MCP9808Config(I2CConfig):
    """`[[sensor]]` keys of type `mcp9808`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=ADDRESSES[0], le=ADDRESSES[-1])
    #: °C per step: 0.5, 0.25, 0.125 or 0.0625 (finer steps take longer to convert).
    resolution_c: float = 0.0625

    def __post_init__(self) -> None:
        if self.resolution_c not in RESOLUTIONS:
            raise ValueError(f"resolution_c: expected one of 0.5, 0.25, 0.125, 0.0625, found {self.resolution_c!r}")


def mcp9808_celsius(word: int) -> float:
    """°C from the 16-bit T_A register (Register 5-4): the alert flags in bits 15-13 are masked,
    the rest is 13-bit two's complement, 0.0625 °C per LSB. 0x0194 -> 25.25, 0xC194 -> 25.25
    (two flags set), 0x1E70 -> -25. Equation 5-1's branch for negative values, 256 - (UpperByte x
    2^4 + LowerByte x 2^-4), gives the magnitude: the temperature is its negative."""
    raw = word & _AMBIENT_DATA
    return (raw - 0x2000 if raw & 0x1000 else raw) * _LSB_C


def _word(data: list[int]) -> int:
    """A register's two bytes, most significant first, as an int."""
    return data[0] << 8 | data[1]


class MCP9808(I2CSensor):
    """Microchip MCP9808: temperature (°C), 0.0625 °C resolution by default."""

    type_name = "mcp9808"
    Config = MCP9808Config
    config: MCP9808Config
    i2c_addresses = ADDRESSES

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", self.config.resolution_c)]

    def _read_register(self, register: int) -> int:
        return _word(self.transfer(lambda bus: bus.read_i2c_block_data(self.address, register, 2)))

    def probe(self) -> None:
        """Check the ids; leave shutdown and set the resolution if needed (other bits are kept)."""
        manufacturer = self._read_register(_REG_MANUFACTURER_ID)
        if manufacturer != MANUFACTURER_ID:
            raise self.error(f"manufacturer id 0x{manufacturer:04x}, expected 0x{MANUFACTURER_ID:04x} (Microchip)")
        device = self._read_register(_REG_DEVICE_ID) >> 8
        if device != DEVICE_ID:
            raise self.error(f"device id 0x{device:02x}, expected 0x{DEVICE_ID:02x} (MCP9808)")
        bits, conversion_s = RESOLUTIONS[self.config.resolution_c]
        changed = False
        config = self._read_register(_REG_CONFIG)
        if config & _CONFIG_SHDN:
            # Clearing SHDN is allowed even with the lock bits set (Register 5-2).
            running = list((config & ~_CONFIG_SHDN).to_bytes(2, "big"))
            self.transfer(lambda bus: bus.write_i2c_block_data(self.address, _REG_CONFIG, running))
            changed = True
        if self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_RESOLUTION)) & 0x03 != bits:
            self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_RESOLUTION, bits))
            changed = True
        if changed:
            # T_A keeps the result from before until a conversion at the new setting ends.
            self.hardware.sleep(conversion_s * _CONVERSION_MARGIN)

    def read(self) -> list[Reading]:
        return [Reading("temperature", mcp9808_celsius(self._read_register(_REG_AMBIENT)), "°C")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the manufacturer and device ids are the MCP9808's. Only
        reads: the pointer write before each read changes nothing on the chip."""
        ids = read_id_words(bus, address, _REG_MANUFACTURER_ID, _REG_DEVICE_ID)
        if ids is None or (ids[0], ids[1] >> 8) != (MANUFACTURER_ID, DEVICE_ID):
            return None
        return {"type": cls.type_name, "address": address}


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [MCP9808]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.mcp9808 import MCP9808Model  # lazy: only the fake node asks

    return [MCP9808Model]
