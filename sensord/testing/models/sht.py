"""Models of the Sensirion SHT3x and SHT4x for `FakeI2CBus`: command-based chips whose every
answer word carries a CRC-8 (x^8+x^5+x^4+1, init 0xFF).

A driver writes a command (16 bits on the SHT3x, 8 on the SHT4x) and reads the answer. As on the
real chips with clock stretching off, the chip NACKs while it measures or resets, and a read
NACKs when no answer is pending; unknown commands NACK too (the SHT3x also sets status bit 1,
"command not processed"). Set `temperature_c` and `humidity_pct`; `corrupt_crc_next()`
spoils the CRC of the next answer; `commands` records every command the chip accepted.

Time is virtual: `advance(seconds)` moves it, so a test hands `model.advance` to the driver as
the `Hardware`'s `sleep` and a driver that waits too little sees the NACK a real chip gives.
Pass `clock=time.monotonic` to run on real time with a real sleep instead.

>>> from sensord.testing import FakeI2CBus
>>> sht = SHT4xModel(temperature_c=21.0)
>>> bus = FakeI2CBus([sht])
>>> bus.write_byte(0x44, 0xFD)
>>> bus.read_byte(0x44)
Traceback (most recent call last):
OSError: [Errno 121] Remote I/O error: SHT4xModel at 0x44 NACK: measuring for 8.3 ms more
>>> sht.advance(0.0083)
>>> hex(bus.read_byte(0x44))
'0x60'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from sensord.i2c import crc8
from sensord.testing.i2c import I2CDeviceModel


def _raw(value: float) -> int:
    return min(max(round(value), 0), 0xFFFF)


class _SensirionModel(I2CDeviceModel):
    """What SHT3x and SHT4x share: commands, virtual time, CRC framing."""

    DEFAULT_ADDRESS: ClassVar[int] = 0x44
    COMMAND_BYTES: ClassVar[int]
    #: Measurement commands and the longest each takes (the datasheet's maximum).
    MEASURE: ClassVar[dict[int, float]]
    SOFT_RESET: ClassVar[tuple[int, float]]  # command, time the chip is deaf after it

    def __init__(self, *, address: int | None = None, temperature_c: float = 22.5,
                 humidity_pct: float = 45.0, clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=self.DEFAULT_ADDRESS if address is None else address)
        #: What the next measurement measures.
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        #: Every command the chip accepted, oldest first.
        self.commands: list[int] = []
        #: Virtual time in seconds, moved by `advance()` (unused with `clock`).
        self.now_s = 0.0
        self._clock = clock
        self._answer: bytes | None = None
        self._busy_until = 0.0
        self._corrupt = 0

    # -- for tests ------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass (a `Hardware.sleep` for the driver under test)."""
        self.now_s += seconds

    def corrupt_crc_next(self, count: int = 1) -> None:
        """Send a wrong CRC with the first word of the next `count` answers."""
        self._corrupt += count

    # -- the chip -------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else self.now_s

    def write_raw(self, data: bytes) -> None:
        self._check_idle()
        if len(data) != self.COMMAND_BYTES:
            raise self.nack(f"{len(data)}-byte write, commands are {8 * self.COMMAND_BYTES} bits")
        command = int.from_bytes(data, "big")
        if not self.command(command):
            raise self.nack(f"unknown command 0x{command:0{2 * self.COMMAND_BYTES}x}")
        self.commands.append(command)

    def read_raw(self, length: int) -> bytes:
        self._check_idle()
        if self._answer is None:
            raise self.nack("no answer pending: send a command first")
        data, self._answer = self._answer, None
        # Reading on past the answer gets 0xFF: nobody pulls SDA low.
        return (data + b"\xff" * length)[:length]

    def _check_idle(self) -> None:
        left = self._busy_until - self._now()
        if left > 1e-9:
            what = "measuring" if self._answer is not None else "resetting"
            raise self.nack(f"{what} for {left * 1000:.2g} ms more")

    def command(self, command: int) -> bool:
        """Run `command`; False if the chip does not know it."""
        if command in self.MEASURE:
            self._reply([_raw((self.temperature_c + 45) * 65535 / 175), self.raw_humidity()],
                        self.MEASURE[command])
        elif command == self.SOFT_RESET[0]:
            self._answer = None
            self._busy_until = self._now() + self.SOFT_RESET[1]
            self.reset()
        else:
            return False
        return True

    def raw_humidity(self) -> int:
        """The raw humidity word for `humidity_pct`."""
        raise NotImplementedError

    def reset(self) -> None:
        """What a soft reset does besides aborting the pending answer."""

    def _reply(self, words: list[int], after_s: float = 0.0) -> None:
        """Make `words`, each with its CRC, the answer to read `after_s` from now."""
        out = bytearray()
        for word in words:
            pair = word.to_bytes(2, "big")
            out += pair + bytes([crc8(pair)])
        if self._corrupt:
            self._corrupt -= 1
            out[2] ^= 0xFF
        self._answer = bytes(out)
        self._busy_until = self._now() + after_s


class SHT3xModel(_SensirionModel):
    """An SHT30/31/35 (datasheet SHT3x-DIS): single-shot commands without clock stretching,
    soft reset, status register (read and clear). Periodic mode and the heater are not modelled."""

    COMMAND_BYTES = 2
    MEASURE = {0x2400: 0.015, 0x240B: 0.006, 0x2416: 0.004}  # §4.3, Table 4 maxima
    SOFT_RESET = (0x30A2, 0.0015)  # §4.9, t_SR max 1.5 ms
    READ_STATUS = 0xF32D  # §4.11
    CLEAR_STATUS = 0x3041
    STATUS_AFTER_RESET = 0x8010  # alert pending, system reset detected

    def __init__(self, *, address: int | None = None, temperature_c: float = 22.5,
                 humidity_pct: float = 45.0, clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address, temperature_c=temperature_c, humidity_pct=humidity_pct,
                         clock=clock)
        #: The status register (§4.11).
        self.status = self.STATUS_AFTER_RESET

    def command(self, command: int) -> bool:
        if command == self.READ_STATUS:
            self._reply([self.status])
        elif command == self.CLEAR_STATUS:
            self.status &= ~0x8C10  # alert flags and "reset detected"
        elif not super().command(command):
            self.status |= 0x0002  # "last command not processed"
            return False
        return True

    def raw_humidity(self) -> int:
        return _raw(self.humidity_pct * 65535 / 100)

    def reset(self) -> None:
        self.status = self.STATUS_AFTER_RESET


class SHT4xModel(_SensirionModel):
    """An SHT40/41/43/45 (datasheet SHT4x): measurements at three precisions, serial number,
    soft reset. The heater commands are not modelled (they NACK)."""

    COMMAND_BYTES = 1
    MEASURE = {0xFD: 0.0083, 0xF6: 0.0045, 0xE0: 0.0016}  # §4.5, timing maxima
    SOFT_RESET = (0x94, 0.001)
    READ_SERIAL = 0x89
    #: How long the serial number takes; the datasheet gives no time, so at once by default.
    SERIAL_S = 0.0

    def __init__(self, *, address: int | None = None, temperature_c: float = 22.5,
                 humidity_pct: float = 45.0, serial_number: int = 0x0A1B2C3D,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address, temperature_c=temperature_c, humidity_pct=humidity_pct,
                         clock=clock)
        #: The 32-bit serial number the 0x89 command answers.
        self.serial_number = serial_number

    def command(self, command: int) -> bool:
        if command == self.READ_SERIAL:
            self._reply([self.serial_number >> 16, self.serial_number & 0xFFFF], self.SERIAL_S)
            return True
        return super().command(command)

    def raw_humidity(self) -> int:
        return _raw((self.humidity_pct + 6) * 65535 / 125)
