"""MCP9808 digital temperature sensor (Microchip), type `mcp9808`: a sensord plugin.

Wiring: VDD to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
pins A2, A1, A0 pick the address `0011 A2 A1 A0`: 0x18 with all three to GND (what breakout
boards' pull-downs give) up to 0x1F with all three to VDD.

Datasheet: Microchip "MCP9808 ±0.5°C Maximum Accuracy Digital Temperature Sensor" (DS25095A,
https://ww1.microchip.com/downloads/en/DeviceDoc/25095A.pdf): Register Pointer (Register 5-1),
CONFIG (Register 5-2: SHDN is bit 8), Ambient Temperature T_A (Register 5-4, conversion in
Equation 5-1), Manufacturer ID (0x0054), Device ID and Revision (device id 0x04 in the upper
byte), Resolution register (bits 1-0), Temperature Conversion Time (t_CONV 30, 65, 130 and 250 ms
typical for 0.5, 0.25, 0.125 and 0.0625 °C).

The chip converts continuously; a read fetches the latest result from T_A. Registers are 16
bits, most significant byte first (the resolution register is 8 bits). T_A holds a 13-bit two's
complement temperature in 0.0625 °C steps under three alert flag bits, which the driver masks.
`open()` checks the manufacturer and device ids, leaves shutdown, and sets the resolution.

Example::

    [[sensor]]
    name = "fridge"
    type = "mcp9808"
    interval_s = 30
    ## 0x18 with A2, A1, A0 to GND, up to 0x1f with all three to VDD.
    address = 0x19
    ## Resolution in °C: 0.5 (30 ms per conversion), 0.25, 0.125 or 0.0625 (250 ms).
    # resolution_c = 0.0625
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range
from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x18
ADDRESSES = tuple(range(0x18, 0x20))  # 0011 A2 A1 A0

# Register pointers (Register 5-1); 0x09-0x0F are reserved for test and calibration.
_REG_CONFIG = 0x01
_REG_T_UPPER, _REG_T_LOWER, _REG_T_CRIT = 0x02, 0x03, 0x04
_REG_AMBIENT = 0x05
_REG_MANUFACTURER_ID = 0x06
_REG_DEVICE_ID = 0x07
_REG_RESOLUTION = 0x08

MANUFACTURER_ID = 0x0054  # Microchip
DEVICE_ID = 0x04  # upper byte of register 0x07; the lower byte is the revision
_CONFIG_SHDN = 0x0100  # CONFIG bit 8: shutdown, T_A keeps its last value
# T_A alert flags (bits 15-13): T_A >= T_CRIT, T_A > T_UPPER, T_A < T_LOWER.
_FLAG_CRIT, _FLAG_UPPER, _FLAG_LOWER = 0x8000, 0x4000, 0x2000
_AMBIENT_DATA = 0x1FFF  # T_A bit 12 the sign, bits 11-0 the temperature
_LSB_C = 0.0625
#: Resolution in °C -> (Resolution register bits 1-0, t_CONV typical in s).
RESOLUTIONS: dict[float, tuple[int, float]] = {0.5: (0x00, 0.030), 0.25: (0x01, 0.065),
                                               0.125: (0x02, 0.130), 0.0625: (0x03, 0.250)}
_STEP_C = {bits: step for step, (bits, _) in RESOLUTIONS.items()}
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
        try:
            manufacturer = _word(bus.read_i2c_block_data(address, _REG_MANUFACTURER_ID, 2))
            device = bus.read_i2c_block_data(address, _REG_DEVICE_ID, 2)[0]
        except OSError:
            return None
        if (manufacturer, device) != (MANUFACTURER_ID, DEVICE_ID):
            return None
        return {"type": cls.type_name, "address": address}


class MCP9808Model(I2CDeviceModel):
    """A fake MCP9808 at `address` (0x18-0x1F) measuring `temperature_c`, for `FakeI2CBus`.

    A write sets the register pointer from its first byte and stores the rest in that register;
    a read returns the register the pointer selects, most significant byte first, as many times
    over as the master clocks. Pointers above 0x08 are NACKed so that a driver bug shows.
    T_A follows `temperature_c` at once (rounded to the resolution, with the alert flags of
    the limit registers); in shutdown it keeps its last value. Give other ids to stand in for
    another chip: `MCP9808Model(manufacturer_id=0x1131)`.
    """

    DEFAULT_ADDRESS = DEFAULT_ADDRESS
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0,
                 manufacturer_id: int = MANUFACTURER_ID, device_id: int = DEVICE_ID << 8) -> None:
        super().__init__(address=address)
        #: The temperature the chip measures; set it any time.
        self.temperature_c = temperature_c
        self.manufacturer_id = manufacturer_id
        #: Device id (upper byte) and revision (lower byte).
        self.device_id = device_id
        #: CONFIG (power-on 0x0000: continuous conversion).
        self.config = 0x0000
        #: T_UPPER, T_LOWER, T_CRIT (power-on 0 °C).
        self.limits = {_REG_T_UPPER: 0x0000, _REG_T_LOWER: 0x0000, _REG_T_CRIT: 0x0000}
        #: Resolution register bits 1-0 (power-on 0x03: 0.0625 °C).
        self.resolution = 0x03
        #: The register pointer.
        self.pointer = 0x00
        self._frozen: float | None = None  # the temperature T_A keeps while shut down

    @property
    def shut_down(self) -> bool:
        """Whether CONFIG's SHDN bit is set."""
        return bool(self.config & _CONFIG_SHDN)

    def ambient(self) -> int:
        """The T_A register now: flags, sign and temperature in the chosen resolution."""
        measured = self._frozen if self.shut_down and self._frozen is not None else self.temperature_c
        step = _STEP_C[self.resolution]
        raw = max(-0x1000, min(0x0FFF, round(measured / step) * round(step / _LSB_C)))
        limit = {reg: _limit_celsius(word) for reg, word in self.limits.items()}
        flags = ((_FLAG_CRIT if measured >= limit[_REG_T_CRIT] else 0)
                 | (_FLAG_UPPER if measured > limit[_REG_T_UPPER] else 0)
                 | (_FLAG_LOWER if measured < limit[_REG_T_LOWER] else 0))
        return flags | raw & _AMBIENT_DATA

    def _register(self, pointer: int) -> bytes:
        if pointer == _REG_RESOLUTION:
            return bytes([self.resolution])
        words = {0x00: 0x0000, _REG_CONFIG: self.config, _REG_AMBIENT: self.ambient(),
                 _REG_MANUFACTURER_ID: self.manufacturer_id, _REG_DEVICE_ID: self.device_id, **self.limits}
        return words[pointer].to_bytes(2, "big")

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        if data[0] > _REG_RESOLUTION:
            raise self.nack(f"pointer 0x{data[0]:02x} is reserved")
        self.pointer, value = data[0], data[1:]
        if not value:
            return
        # A 1-byte write to a 16-bit register sets its upper byte only.
        word = int.from_bytes(value[:2] + self._register(self.pointer)[len(value):], "big")
        if self.pointer == _REG_RESOLUTION:
            self.resolution = value[0] & 0x03
        elif self.pointer == _REG_CONFIG:
            if not self.shut_down:
                self._frozen = self.temperature_c  # what T_A keeps if this write shuts it down
            self.config = word & 0x07FF  # bits 15-11 are unimplemented
        elif self.pointer in self.limits:
            self.limits[self.pointer] = word & 0x1FFC  # bits 15-13 and 1-0 read 0
        # Writes to the read-only registers (T_A, the ids) are ignored, as by the chip.

    def read_raw(self, length: int) -> bytes:
        register = self._register(self.pointer)
        return (register * (length // len(register) + 1))[:length]


def _limit_celsius(word: int) -> float:
    """°C from T_UPPER, T_LOWER or T_CRIT: 11-bit two's complement in bits 12-2, 0.25 °C per LSB."""
    raw = (word & 0x1FFC) >> 2
    return (raw - 0x800 if raw & 0x400 else raw) * 0.25


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [MCP9808]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    return [MCP9808Model]
