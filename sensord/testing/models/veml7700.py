"""A fake VEML7700 (Vishay ambient light sensor, address 0x10) for `FakeI2CBus`.

Registers are 16-bit words, least significant byte first, addressed by the command codes of the
datasheet's Table 1: ALS_CONF_0 (0x00), the two threshold windows (0x01, 0x02), power saving
(0x03), ALS output (0x04), WHITE output (0x05), interrupt status (0x06) and ID (0x07: 0xC481,
device id code 0x81 in the low byte). Writes to 0x04-0x07 are ignored (read-only); codes above
0x07 are NACKed, as are writes that are not a whole word, so driver bugs show.

The model starts shut down (ALS_SD set) with both outputs 0, so a driver that forgets to power
it on reads 0. Powered on, it converts back to back: the ALS register holds `lux` divided by
the resolution of the configured gain and integration time (0.0042 lx per count at gain 2 and
800 ms, doubling with each halving of either), saturating at 0xFFFF; WHITE reads the same count.
Shut down, both keep their last values.

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) the first
result after power-on or a change of ALS_CONF_0 appears one integration time later; without
one at once.

    model = VEML7700Model(lux=320.0)
    bus = FakeI2CBus([model])
"""

from __future__ import annotations

from collections.abc import Callable

from sensord.testing.i2c import I2CDeviceModel

_ALS_CONF, _ALS, _WHITE, _ID = 0x00, 0x04, 0x05, 0x07
_READ_ONLY = range(0x04, 0x08)
_ALS_SD = 0x0001
_GAIN = {0b00: 1.0, 0b01: 2.0, 0b10: 0.125, 0b11: 0.25}
_IT_MS = {0b1100: 25, 0b1000: 50, 0b0000: 100, 0b0001: 200, 0b0010: 400, 0b0011: 800}


def encode_lux(lux: float, *, gain: float = 0.25, integration_ms: int = 100) -> int:
    """The ALS count for `lux` at a gain (1/8 as 0.125) and integration time, saturating at 0xFFFF."""
    resolution = 0.0042 * (2.0 / gain) * (800 / integration_ms)
    return max(0, min(0xFFFF, round(lux / resolution)))


class VEML7700Model(I2CDeviceModel):
    """A VEML7700 seeing `lux` (set it any time)."""

    DEFAULT_ADDRESS = 0x10
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, lux: float = 250.0, device_id: int = 0xC481,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        self.lux = lux
        #: The registers by command code; ALS_CONF_0 starts with ALS_SD set.
        self.registers = {0x00: _ALS_SD, 0x01: 0x0000, 0x02: 0x0000, 0x03: 0x0000,
                          0x04: 0x0000, 0x05: 0x0000, 0x06: 0x0000, 0x07: device_id}
        self._clock = clock
        self._ready_at: float | None = None  # when the first result of the current setting is due

    @property
    def powered(self) -> bool:
        """Whether ALS_SD is clear."""
        return not self.registers[_ALS_CONF] & _ALS_SD

    @property
    def gain(self) -> float:
        """The ALS_GAIN setting as a factor (0.125, 0.25, 1 or 2)."""
        return _GAIN[self.registers[_ALS_CONF] >> 11 & 0b11]

    @property
    def integration_ms(self) -> int:
        """The ALS_IT setting in ms; an undefined code NACKs the write that sets it."""
        return _IT_MS[self.registers[_ALS_CONF] >> 6 & 0b1111]

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def read(self, register: int, length: int) -> bytes:
        if register not in self.registers:
            raise self.nack(f"command code 0x{register:02x} does not exist")
        self._settle()
        word = self.registers[register].to_bytes(2, "little")
        return (word * (length // 2 + 1))[:length]

    def write(self, register: int, data: bytes) -> None:
        if register not in self.registers:
            raise self.nack(f"command code 0x{register:02x} does not exist")
        if len(data) != 2:
            raise self.nack(f"registers take a 16-bit word, got {data.hex(' ') or 'nothing'}")
        if register in _READ_ONLY:
            return
        word = int.from_bytes(data, "little")
        if register == _ALS_CONF:
            if word >> 6 & 0b1111 not in _IT_MS:
                raise self.nack(f"ALS_CONF_0 0x{word:04x}: undefined ALS_IT code")
            self._settle()
            self.registers[_ALS_CONF] = word
            # A new setting (or power-on) restarts the conversion.
            self._ready_at = self._now() + (self.integration_ms / 1000 if self._clock else 0.0)
            self._settle()
        else:
            self.registers[register] = word

    def _settle(self) -> None:
        """Store a result if the chip is on and one integration time has passed."""
        if not self.powered or self._ready_at is None or self._now() < self._ready_at:
            return
        count = encode_lux(self.lux, gain=self.gain, integration_ms=self.integration_ms)
        self.registers[_ALS] = self.registers[_WHITE] = count
