"""A fake HTU21D or Si7021 (temperature and humidity, address 0x40) for `FakeI2CBus`.

It behaves as the datasheets say for "no hold master" mode: the one-byte commands 0xF3
(temperature) and 0xF5 (humidity) start a conversion, reads are NACKed until it ends, then a
read returns MSB, LSB (two low bits: status, bit 1 set for humidity) and a CRC-8 (polynomial
0x131, init 0x00). 0xE7 reads and 0xE6 writes the user register (0x02 on an HTU21D, 0x3A on
an Si7021 after reset); 0xFE soft-resets, and the chip NACKs everything while it reboots.
Other commands (hold master mode, electronic ID) are NACKed so a driver using them notices.

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) conversions
and the reset take the datasheets' typical times; without one they end at once.

    model = HTU21DModel(temperature_c=24.7, humidity_pct=32.3, variant="si7021")
    bus = FakeI2CBus([model])
    model.corrupt_crc_next()   # the next result's CRC byte is wrong
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sensord.i2c import crc8
from sensord.testing.i2c import I2CDeviceModel

_MEASURE_T, _MEASURE_RH = 0xF3, 0xF5
_READ_USER, _WRITE_USER, _SOFT_RESET = 0xE7, 0xE6, 0xFE
_USER_DEFAULT = {"htu21d": 0x02, "si7021": 0x3A}
_USER_WRITABLE = 0x87  # resolution bits 7 and 0, heater bit 2, bit 1; bits 6-3 are read-only
_USER_HEATER = 0x04
#: Typical (not maximum) conversion times in seconds, temperature and humidity (an Si7021
#: humidity conversion also converts temperature).
_TYPICAL_S = {"htu21d": (0.044, 0.014), "si7021": (0.007, 0.017)}
_RESET_S = 0.012


def encode_temperature(temperature_c: float) -> int:
    """The 16-bit temperature word for `temperature_c`: 14 bits of signal, status bits 00."""
    raw = round((temperature_c + 46.85) / 175.72 * 65536)
    return max(0, min(0xFFFF, raw)) & 0xFFFC


def encode_humidity(humidity_pct: float) -> int:
    """The 16-bit humidity word for `humidity_pct`: 12 bits of signal, status bits 10."""
    raw = round((humidity_pct + 6.0) / 125.0 * 65536)
    return (max(0, min(0xFFFF, raw)) & 0xFFF0) | 0x02


class HTU21DModel(I2CDeviceModel):
    """An HTU21D (or, with `variant="si7021"`, an Si7021) reporting `temperature_c` and
    `humidity_pct`; set them any time."""

    DEFAULT_ADDRESS = 0x40
    #: The chip has no address pins: the fake node puts it on its second bus when 0x40 is taken.
    ADDRESSES = (0x40,)
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0,
                 humidity_pct: float = 50.0, variant: Literal["htu21d", "si7021"] = "htu21d",
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.variant = variant
        #: The user register; tests may set it (e.g. the heater bit 0x04).
        self.user_register = _USER_DEFAULT[variant]
        #: Seconds a temperature and a humidity conversion take when `clock` is given.
        self.conversion_s = _TYPICAL_S[variant]
        #: How many soft resets were received.
        self.resets = 0
        self._clock = clock
        self._busy_until = 0.0  # NACK everything before this time (rebooting after a reset)
        self._pending: tuple[float, int] | None = None  # (ready at, word) of a conversion
        self._register_read = False  # the last command was 0xE7
        self._corrupt = 0

    def corrupt_crc_next(self, count: int = 1) -> None:
        """Send a wrong CRC byte with the next `count` measurement results."""
        self._corrupt += count

    @property
    def heater(self) -> bool:
        """Whether the on-chip heater is on (user register bit 2)."""
        return bool(self.user_register & _USER_HEATER)

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def _after(self, seconds: float) -> float:
        """When something taking `seconds` ends; without a clock, at once."""
        return self._now() + seconds if self._clock is not None else 0.0

    def _result(self, word: int, length: int) -> bytes:
        data = bytearray(word.to_bytes(2, "big"))
        data.append(crc8(data, polynomial=0x31, init=0x00))
        if self._corrupt and length >= len(data):
            self._corrupt -= 1
            data[2] ^= 0xFF
        # Reading past the CRC clocks out 0xFF: the chip no longer drives SDA.
        return bytes(data[:length]).ljust(length, b"\xff")

    def write_raw(self, data: bytes) -> None:
        if self._now() < self._busy_until:
            raise self.nack("rebooting after a soft reset")
        command, args = data[0], data[1:]
        self._register_read = False
        if command in (_MEASURE_T, _MEASURE_RH) and not args:
            humidity = command == _MEASURE_RH
            word = encode_humidity(self.humidity_pct) if humidity else encode_temperature(self.temperature_c)
            self._pending = (self._after(self.conversion_s[humidity]), word)
        elif command == _READ_USER and not args:
            self._register_read = True
        elif command == _WRITE_USER and len(args) == 1:
            self.user_register = (args[0] & _USER_WRITABLE) | (self.user_register & ~_USER_WRITABLE)
        elif command == _SOFT_RESET and not args:
            self.resets += 1
            self._pending = None
            # The HTU21D keeps its heater bit across a soft reset; everything else is default.
            heater = self.user_register & _USER_HEATER if self.variant == "htu21d" else 0
            self.user_register = _USER_DEFAULT[self.variant] | heater
            self._busy_until = self._after(_RESET_S)
        else:
            raise self.nack(f"command {data.hex(' ')} is not modelled")

    def read_raw(self, length: int) -> bytes:
        if self._now() < self._busy_until:
            raise self.nack("rebooting after a soft reset")
        if self._register_read:
            self._register_read = False
            return bytes([self.user_register]) * length
        if self._pending is None:
            raise self.nack("no measurement started")
        ready_at, word = self._pending
        if self._now() < ready_at:
            raise self.nack("measuring")
        self._pending = None
        return self._result(word, length)
