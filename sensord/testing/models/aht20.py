"""A fake AHT20 (Aosong temperature and humidity sensor) for `FakeI2CBus`.

It behaves as the datasheet's section 5 says: a one-byte read returns the status byte, the
command 0xBE 0x08 0x00 loads the calibration (sets status bit 3), 0xAC 0x33 0x00 starts a
measurement, during which the status has the busy bit 7 set and the data bytes still hold the
previous result, and a 7-byte read returns status, 20-bit humidity, 20-bit temperature and a
CRC-8 (polynomial 0x31, init 0xFF). Unknown commands are NACKed so driver bugs show.

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) a measurement
takes `measurement_s`; without one it completes at once.

    model = AHT20Model(temperature_c=21.5, humidity_pct=40.0)
    bus = FakeI2CBus([model])
    model.corrupt_crc_next()   # the next frame's CRC byte is wrong
"""

from __future__ import annotations

from collections.abc import Callable

from sensord.i2c import crc8
from sensord.testing.i2c import I2CDeviceModel

_TRIGGER = bytes([0xAC, 0x33, 0x00])
_INIT = bytes([0xBE, 0x08, 0x00])
_SOFT_RESET = bytes([0xBA])
_BUSY, _CAL = 0x80, 0x08
_IDLE_BITS = 0x10  # reserved bit 4: the DHT20 datasheet (same die) expects status & 0x18 == 0x18
_FULL_SCALE = 1 << 20


def encode_humidity(humidity_pct: float) -> int:
    """The 20-bit humidity signal for `humidity_pct` (inverse of datasheet 6.1), clamped."""
    return max(0, min(_FULL_SCALE - 1, round(humidity_pct / 100.0 * _FULL_SCALE)))


def encode_temperature(temperature_c: float) -> int:
    """The 20-bit temperature signal for `temperature_c` (inverse of datasheet 6.2), clamped."""
    return max(0, min(_FULL_SCALE - 1, round((temperature_c + 50.0) / 200.0 * _FULL_SCALE)))


class AHT20Model(I2CDeviceModel):
    """An AHT20 at 0x38 reporting `temperature_c` and `humidity_pct` (set them any time)."""

    DEFAULT_ADDRESS = 0x38
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0,
                 humidity_pct: float = 50.0, calibrated: bool = True,
                 clock: Callable[[], float] | None = None, measurement_s: float = 0.075) -> None:
        super().__init__(address=address)
        #: The physical values the next measurement reports.
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        #: Status bit 3; a fresh part may need the init command (0xBE) to set it.
        self.calibrated = calibrated
        #: Seconds a measurement takes when `clock` is given.
        self.measurement_s = measurement_s
        #: How many measurements were started, and how many init commands were received.
        self.measurements = 0
        self.inits = 0
        self._clock = clock
        self._ready_at: float | None = None  # end of the running measurement, if any
        self._pending: tuple[int, int] | None = None
        self._data = (0, 0)  # raw (humidity, temperature) of the last finished measurement
        self._corrupt = 0

    def corrupt_crc_next(self, count: int = 1) -> None:
        """Send a wrong CRC byte in the next `count` frames that include it."""
        self._corrupt += count

    @property
    def busy(self) -> bool:
        """Whether a measurement is running (status bit 7)."""
        self._settle()
        return self._pending is not None

    def write_raw(self, data: bytes) -> None:
        if data == _TRIGGER:
            self._settle()
            self.measurements += 1
            self._pending = (encode_humidity(self.humidity_pct), encode_temperature(self.temperature_c))
            self._ready_at = None if self._clock is None else self._clock() + self.measurement_s
            self._settle()
        elif data == _INIT:
            self.inits += 1
            self.calibrated = True
        elif data == _SOFT_RESET:
            self._pending = None
        else:
            raise self.nack(f"unknown command {data.hex(' ')}")

    def read_raw(self, length: int) -> bytes:
        busy = self.busy
        status = _IDLE_BITS | (_CAL if self.calibrated else 0) | (_BUSY if busy else 0)
        humidity, temperature = self._data
        frame = bytearray([status, humidity >> 12 & 0xFF, humidity >> 4 & 0xFF,
                           (humidity & 0x0F) << 4 | temperature >> 16, temperature >> 8 & 0xFF,
                           temperature & 0xFF])
        frame.append(crc8(frame, polynomial=0x31, init=0xFF))
        if length >= len(frame) and self._corrupt:
            self._corrupt -= 1
            frame[6] ^= 0xFF
        # Reading past the CRC clocks out 0xFF: the chip no longer drives SDA.
        return bytes(frame[:length]) + b"\xff" * max(0, length - len(frame))

    def _settle(self) -> None:
        """Finish the running measurement if its time is up."""
        if self._pending is None:
            return
        if self._ready_at is None or (self._clock is not None and self._clock() >= self._ready_at):
            self._data, self._pending = self._pending, None
