"""A fake BH1750FVI (Rohm ambient light sensor, address 0x23 or 0x5C) for `FakeI2CBus`.

It takes the one-byte opcodes of the datasheet's "Instruction Set Architecture": power down,
power on, reset (ignored in power down, as the datasheet says), continuous and one-time
measurements in the three modes (a one-time measurement powers the chip down when done), and
the two MTreg opcodes. A two-byte read returns the data register, high byte first: the last
finished measurement, 0 after power-up or reset. The chip has no CRC and does not NACK while
measuring: a read too early returns the previous result. Undefined opcodes are NACKed so driver
bugs show.

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) a measurement
takes the datasheet's typical time scaled by MTreg / 69; without one it ends at once.

    model = BH1750Model(lux=250.0)
    bus = FakeI2CBus([model])
"""

from __future__ import annotations

from collections.abc import Callable

from sensord.testing.i2c import I2CDeviceModel

_POWER_DOWN, _POWER_ON, _RESET = 0x00, 0x01, 0x07
#: opcode -> (mode, one-time)
_MEASURE = {0x10: ("high", False), 0x11: ("high2", False), 0x13: ("low", False),
            0x20: ("high", True), 0x21: ("high2", True), 0x23: ("low", True)}
_TYPICAL_S = {"high": 0.120, "high2": 0.120, "low": 0.016}


def encode_lux(lux: float, *, mode: str = "high", mtreg: int = 69) -> int:
    """The 16-bit count the chip reports for `lux` (inverse of count / 1.2 * 69 / MTreg, and
    halved in mode "high2"), saturating at 0xFFFF."""
    count = lux * 1.2 * mtreg / 69 * (2 if mode == "high2" else 1)
    return max(0, min(0xFFFF, round(count)))


class BH1750Model(I2CDeviceModel):
    """A BH1750 seeing `lux` (set it any time)."""

    DEFAULT_ADDRESS = 0x23
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, lux: float = 100.0,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        self.lux = lux
        #: Power state: the chip starts powered down.
        self.powered = False
        #: The measurement time register, 69 after power-up.
        self.mtreg = 69
        #: The data register (what a read returns).
        self.data = 0
        #: Every measurement started, as (mode, one_time, mtreg).
        self.measurements: list[tuple[str, bool, int]] = []
        self._clock = clock
        self._running: tuple[str, bool, float] | None = None  # mode, one-time, ends at

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def write_raw(self, data: bytes) -> None:
        if len(data) != 1:
            raise self.nack(f"opcodes are one byte, got {data.hex(' ')}")
        self._settle()
        opcode = data[0]
        if opcode == _POWER_DOWN:
            self.powered, self._running = False, None
        elif opcode == _POWER_ON:
            self.powered = True
        elif opcode == _RESET:
            if self.powered:  # "not acceptable in Power Down mode"
                self.data = 0
        elif opcode in _MEASURE:
            mode, one_time = _MEASURE[opcode]
            self.powered = True
            self.measurements.append((mode, one_time, self.mtreg))
            took = _TYPICAL_S[mode] * self.mtreg / 69 if self._clock is not None else 0.0
            self._running = (mode, one_time, self._now() + took)
            self._settle()
        elif opcode & 0xF8 == 0x40:  # 01000_MT[7,6,5]
            self.mtreg = (opcode & 0x07) << 5 | self.mtreg & 0x1F
        elif opcode & 0xE0 == 0x60:  # 011_MT[4,3,2,1,0]
            self.mtreg = self.mtreg & 0xE0 | opcode & 0x1F
        else:
            raise self.nack(f"undefined opcode 0x{opcode:02x}")

    def read_raw(self, length: int) -> bytes:
        self._settle()
        # Past the two data bytes the chip no longer drives SDA: 0xFF.
        return self.data.to_bytes(2, "big")[:length].ljust(length, b"\xff")

    def _settle(self) -> None:
        """Store the running measurement's result if its time is up."""
        if self._running is None:
            return
        mode, one_time, ends_at = self._running
        if self._now() < ends_at:
            return
        self.data = encode_lux(self.lux, mode=mode, mtreg=self.mtreg)
        if one_time:
            self._running, self.powered = None, False
        else:  # continuous: the next conversion starts at once
            took = _TYPICAL_S[mode] * self.mtreg / 69 if self._clock is not None else 0.0
            self._running = (mode, one_time, ends_at + took if took else ends_at)
