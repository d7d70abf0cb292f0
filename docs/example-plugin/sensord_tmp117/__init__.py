"""TMP117 digital temperature sensor (Texas Instruments), type `tmp117`: a sensord plugin.

Wiring: V+ to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
ADD0 pin picks the address: 0x48 to GND (what breakout boards' pull-downs give), 0x49 to V+,
0x4A to SDA, 0x4B to SCL.

Datasheet: Texas Instruments "TMP117 High-Accuracy, Low-Power, Digital Temperature Sensor"
(SNOSD82, https://www.ti.com/lit/ds/symlink/tmp117.pdf): Register Map (Temp_Result 0x00,
Configuration 0x01, Device_ID 0x0F reading 0x0117), Temperature Register (16-bit two's
complement, 7.8125 m°C per LSB, -256 °C (0x8000) after reset until the first conversion),
Configuration Register (MOD bits 11-10: 00 continuous, 01 shutdown; AVG bits 6-5), and the
conversion cycle table (active conversion time 15.5, 125, 500 and 1000 ms for 1, 8, 32 and 64
averaged conversions).

The chip converts continuously; a read fetches the latest result from Temp_Result. Registers
are 16 bits, most significant byte first. `open()` checks the device id, leaves shutdown and
sets the averaging (other bits are kept), then waits one conversion when it changed anything.

Example::

    [[sensor]]
    name = "fridge"
    type = "tmp117"
    interval_s = 30
    ## 0x48 with ADD0 to GND, 0x49 to V+, 0x4a to SDA, 0x4b to SCL.
    address = 0x49
    ## Conversions averaged into each result: 1 (15.5 ms), 8, 32 or 64 (1 s); more is less noisy.
    # averages = 8
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range
from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x48
ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)  # ADD0 to GND, V+, SDA, SCL

# Register map; the pointers between 0x09 and 0x0E are reserved.
_REG_TEMP_RESULT = 0x00
_REG_CONFIG = 0x01
_REG_THIGH, _REG_TLOW = 0x02, 0x03
_REG_DEVICE_ID = 0x0F
_LAST_REGISTER = 0x08

DEVICE_ID = 0x117  # Device_ID bits 11-0; bits 15-12 are the revision
_NO_RESULT = 0x8000  # Temp_Result after reset until the first conversion ends (-256 °C)
_LSB_C = 0.0078125
# Configuration register: MOD in bits 11-10 (01 shutdown), AVG in bits 6-5; bits 15-12 and 1-0 read-only.
_MOD_MASK, _MOD_SHUTDOWN = 0x0C00, 0x0400
_AVG_SHIFT, _AVG_MASK = 5, 0x0060
#: Averaged conversions -> (AVG bits, active conversion time in s).
AVERAGES: dict[int, tuple[int, float]] = {1: (0b00, 0.0155), 8: (0b01, 0.125), 32: (0b10, 0.5), 64: (0b11, 1.0)}
# The datasheet's conversion times are typical: wait a quarter longer for the first new result.
_CONVERSION_MARGIN = 1.25


@dataclass(frozen=True)
class TMP117Config(I2CConfig):
    """`[[sensor]]` keys of type `tmp117`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=ADDRESSES[0], le=ADDRESSES[-1])
    #: Conversions averaged into each result: 1, 8, 32 or 64 (more take longer).
    averages: int = 8

    def __post_init__(self) -> None:
        if self.averages not in AVERAGES:
            raise ValueError(f"averages: expected one of 1, 8, 32, 64, found {self.averages!r}")


def tmp117_celsius(word: int) -> float:
    """°C from the 16-bit Temp_Result register: two's complement, 7.8125 m°C per LSB.
    0x0C80 -> 25, 0xF380 -> -25, 0x0001 -> 0.0078125, 0x7FFF -> 255.9921875."""
    return (word - 0x10000 if word & 0x8000 else word) * _LSB_C


def _word(data: list[int]) -> int:
    """A register's two bytes, most significant first, as an int."""
    return data[0] << 8 | data[1]


class TMP117(I2CSensor):
    """Texas Instruments TMP117: temperature (°C), 7.8125 m°C resolution."""

    type_name = "tmp117"
    Config = TMP117Config
    config: TMP117Config
    i2c_addresses = ADDRESSES

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", _LSB_C)]

    def _read_register(self, register: int) -> int:
        return _word(self.transfer(lambda bus: bus.read_i2c_block_data(self.address, register, 2)))

    def probe(self) -> None:
        """Check the device id; leave shutdown and set the averaging if needed."""
        device = self._read_register(_REG_DEVICE_ID) & 0x0FFF
        if device != DEVICE_ID:
            raise self.error(f"device id 0x{device:03x}, expected 0x{DEVICE_ID:03x} (TMP117)")
        bits, conversion_s = AVERAGES[self.config.averages]
        config = self._read_register(_REG_CONFIG)
        wanted = config & ~(_MOD_MASK | _AVG_MASK) | bits << _AVG_SHIFT  # MOD 00: continuous
        if wanted != config:
            data = list(wanted.to_bytes(2, "big"))
            self.transfer(lambda bus: bus.write_i2c_block_data(self.address, _REG_CONFIG, data))
            # Temp_Result keeps the result from before until a conversion at the new setting ends.
            self.hardware.sleep(conversion_s * _CONVERSION_MARGIN)

    def read(self) -> list[Reading]:
        word = self._read_register(_REG_TEMP_RESULT)
        if word == _NO_RESULT:
            raise self.error("no conversion yet (Temp_Result 0x8000, its value after reset)")
        return [Reading("temperature", tmp117_celsius(word), "°C")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the device id is the TMP117's. Only reads: the pointer
        write before the read changes nothing on the chip."""
        try:
            device = _word(bus.read_i2c_block_data(address, _REG_DEVICE_ID, 2))
        except OSError:
            return None
        if device & 0x0FFF != DEVICE_ID:
            return None
        return {"type": cls.type_name, "address": address}


class TMP117Model(I2CDeviceModel):
    """A fake TMP117 at `address` (0x48-0x4B) measuring `temperature_c`, for `FakeI2CBus`.

    A write sets the register pointer from its first byte and stores the rest in that register;
    a read returns the register the pointer selects, most significant byte first, as many times
    over as the master clocks. Pointers 0x09-0x0E and above 0x0F are NACKed so that a driver bug
    shows. Temp_Result follows `temperature_c` at once, or reads 0x8000 while `converted` is
    false (as after reset); in shutdown it keeps its last value. Give another id to stand in for
    another chip: `TMP117Model(device_id=0x0116)`.
    """

    DEFAULT_ADDRESS = DEFAULT_ADDRESS
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0,
                 device_id: int = DEVICE_ID, converted: bool = True) -> None:
        super().__init__(address=address)
        #: The temperature the chip measures; set it any time.
        self.temperature_c = temperature_c
        #: Device_ID: revision (bits 15-12) and device id (bits 11-0).
        self.device_id = device_id
        #: Whether a conversion has ended since reset; until then Temp_Result reads 0x8000.
        self.converted = converted
        #: Configuration (power-on 0x0220: continuous, 8 averages, 1 s cycle).
        self.config = 0x0220
        #: THigh_Limit, TLow_Limit and the other read-write registers at their power-on values.
        self.others = {_REG_THIGH: 0x6000, _REG_TLOW: 0x8000, 0x04: 0x0000, 0x05: 0x0000,
                       0x06: 0x0000, 0x07: 0x0000, 0x08: 0x0000}
        #: The register pointer.
        self.pointer = 0x00
        self._frozen: float | None = None  # the temperature Temp_Result keeps while shut down

    @property
    def shut_down(self) -> bool:
        """Whether MOD is 01 (shutdown)."""
        return self.config & _MOD_MASK == _MOD_SHUTDOWN

    @property
    def averages(self) -> int:
        """The AVG setting as a number of conversions."""
        bits = (self.config & _AVG_MASK) >> _AVG_SHIFT
        return next(n for n, (b, _) in AVERAGES.items() if b == bits)

    def result(self) -> int:
        """The Temp_Result register now."""
        if not self.converted:
            return _NO_RESULT
        measured = self._frozen if self.shut_down and self._frozen is not None else self.temperature_c
        return max(-0x7FFF, min(0x7FFF, round(measured / _LSB_C))) & 0xFFFF

    def _register(self, pointer: int) -> int:
        words = {_REG_TEMP_RESULT: self.result(), _REG_CONFIG: self.config, _REG_DEVICE_ID: self.device_id,
                 **self.others}
        return words[pointer]

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        if _LAST_REGISTER < data[0] != _REG_DEVICE_ID:
            raise self.nack(f"pointer 0x{data[0]:02x} is reserved")
        self.pointer, value = data[0], data[1:]
        if not value:
            return
        if len(value) != 2:
            raise self.nack(f"registers take a 16-bit word, got {value.hex(' ')}")
        word = int.from_bytes(value, "big")
        if self.pointer == _REG_CONFIG:
            if not self.shut_down:
                self._frozen = self.temperature_c  # what Temp_Result keeps if this write shuts it down
            self.config = self.config & 0xF000 | word & 0x0FFC  # bits 15-12 are flags, 1 resets, 0 reads 0
        elif self.pointer in self.others:
            self.others[self.pointer] = word
        # Writes to the read-only registers (Temp_Result, Device_ID) are ignored, as by the chip.

    def read_raw(self, length: int) -> bytes:
        register = self._register(self.pointer).to_bytes(2, "big")
        return (register * (length // 2 + 1))[:length]


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [TMP117]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    return [TMP117Model]
