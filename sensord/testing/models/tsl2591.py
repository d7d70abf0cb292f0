"""A fake TSL2591 (ams light-to-digital converter, address 0x29) for `FakeI2CBus`.

Every transaction starts with a command byte (datasheet "Command Register"): CMD (bit 7) must be
set and TRANSACTION (bits 6:5) must be 01, normal operation, with the register in bits 4:0, or
11, a special function (0x04 interrupt set, 0x06, 0x07 and 0x0A interrupt clears: accepted and
ignored). Anything else is NACKed, as are registers the map does not have (0x02, 0x03, 0x0D-0x10,
0x18 and up), so driver bugs show. In normal operation the register pointer auto-increments
through a block read or write. Registers: ENABLE 0x00, CONTROL 0x01 (SRESET bit 7 resets the
chip), thresholds 0x04-0x0B, PERSIST 0x0C, PID 0x11 (0x00), ID 0x12 (0x50), STATUS 0x13 and the
data 0x14-0x17 (C0DATAL/H, C1DATAL/H). ID, PID, STATUS and the data registers ignore writes.

The model starts powered down (ENABLE 0x00) with the data 0 and AVALID clear. With PON and AEN
set it integrates back to back; one integration time after AEN was set, AVALID sets and the data
registers hold the counts of `lux` and `ir_ratio` (CH1/CH0) at the configured gain and time,
inverting the lux equation the driver uses (`plugins/tsl2591.py`), each clamped to the largest
count of the integration time (36863 at 100 ms, 65535 from 200 ms): a bright `lux` saturates.
`ch0` and `ch1`, when set, are put in the registers as they are instead. `stuck_invalid` keeps
AVALID clear (a chip that never completes a cycle).

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) the first
result appears one integration time after the ADCs are enabled; without one at once.

    model = TSL2591Model(lux=320.0)
    bus = FakeI2CBus([model])
"""

from __future__ import annotations

from collections.abc import Callable

from sensord.testing.i2c import I2CDeviceModel

_ENABLE, _CONTROL, _PID, _ID, _STATUS, _DATA = 0x00, 0x01, 0x11, 0x12, 0x13, 0x14
_REGISTERS = frozenset([0x00, 0x01, *range(0x04, 0x0D), 0x11, 0x12, 0x13, *range(0x14, 0x18)])
_READ_ONLY = frozenset([_PID, _ID, _STATUS, *range(0x14, 0x18)])
_SPECIAL_FUNCTIONS = frozenset([0x04, 0x06, 0x07, 0x0A])
_PON, _AEN, _AVALID, _SRESET = 0x01, 0x02, 0x01, 0x80
_GAIN = {0b00: 1.0, 0b01: 25.0, 0b10: 428.0, 0b11: 9876.0}
_ATIME_MS = {0b000: 100, 0b001: 200, 0b010: 300, 0b011: 400, 0b100: 500, 0b101: 600}


def encode_counts(lux: float, ir_ratio: float, *, gain: float = 25.0, integration_ms: int = 100) -> tuple[int, int]:
    """CH0 and CH1 counts that the lux equation turns back into `lux`, with CH1 = `ir_ratio` x CH0,
    each clamped to the largest count of the integration time."""
    cpl = integration_ms * gain / 408.0
    per_ch0 = max(1.0 - 1.64 * ir_ratio, 0.59 - 0.86 * ir_ratio)  # lux x CPL per CH0 count
    ch0 = lux * cpl / per_ch0 if per_ch0 > 0 else 0.0
    top = 36863 if integration_ms == 100 else 0xFFFF
    return min(top, round(ch0)), min(top, round(ch0 * ir_ratio))


class TSL2591Model(I2CDeviceModel):
    """A TSL2591 seeing `lux` with `ir_ratio` infrared (set them any time)."""

    DEFAULT_ADDRESS = 0x29
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, lux: float = 250.0, ir_ratio: float = 0.25,
                 device_id: int = 0x50, clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        self.lux = lux
        self.ir_ratio = ir_ratio
        #: Exact counts for the data registers instead of `lux` and `ir_ratio`.
        self.ch0: int | None = None
        self.ch1: int | None = None
        #: Keep STATUS.AVALID clear, as a chip that never completes a cycle.
        self.stuck_invalid = False
        self.device_id = device_id
        self.resets = 0
        self.registers = bytearray(0x18)
        self._clock = clock
        self._pointer = 0
        self._ready_at: float | None = None  # when the current cycle completes
        self._reset()

    def _reset(self) -> None:
        self.registers[:] = bytes(0x18)
        self.registers[_ID] = self.device_id
        self._ready_at = None

    @property
    def enabled(self) -> bool:
        """Whether PON and AEN are both set: the ADCs integrate."""
        return self.registers[_ENABLE] & (_PON | _AEN) == _PON | _AEN

    @property
    def gain(self) -> float:
        """The AGAIN setting as a factor (1, 25, 428 or 9876)."""
        return _GAIN[self.registers[_CONTROL] >> 4 & 0b11]

    @property
    def integration_ms(self) -> int:
        """The ATIME setting in ms; an undefined code NACKs the write that sets it."""
        return _ATIME_MS[self.registers[_CONTROL] & 0b111]

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def _command(self, command: int) -> bool:
        """Take a command byte: True for normal operation (the pointer is set), False for a
        special function; NACK anything else."""
        if not command & 0x80:
            raise self.nack(f"0x{command:02x} is not a command byte (CMD bit 7 clear)")
        transaction, field = command >> 5 & 0b11, command & 0x1F
        if transaction == 0b01:
            if field not in _REGISTERS:
                raise self.nack(f"register 0x{field:02x} does not exist")
            self._pointer = field
            return True
        if transaction == 0b11 and field in _SPECIAL_FUNCTIONS:
            return False
        raise self.nack(f"command 0x{command:02x}: reserved transaction or special function")

    def read(self, register: int, length: int) -> bytes:
        if not self._command(register):
            raise self.nack("a special function command has nothing to read")
        return self.read_raw(length)

    def write(self, register: int, data: bytes) -> None:
        if not self._command(register):
            if data:
                raise self.nack("a special function command takes no data")
            return
        self._write_at_pointer(data)

    def write_raw(self, data: bytes) -> None:
        if data and self._command(data[0]):
            self._write_at_pointer(data[1:])

    def read_raw(self, length: int) -> bytes:
        self._settle()
        out = bytearray()
        for _ in range(length):
            if self._pointer not in _REGISTERS:
                raise self.nack(f"read past the register map at 0x{self._pointer:02x}")
            out.append(self.registers[self._pointer])
            self._pointer += 1
        return bytes(out)

    def _write_at_pointer(self, data: bytes) -> None:
        for value in data:
            register = self._pointer
            if register not in _REGISTERS:
                raise self.nack(f"write past the register map at 0x{register:02x}")
            self._pointer += 1
            if register in _READ_ONLY:
                continue
            if register == _CONTROL:
                if value & _SRESET:
                    self.resets += 1
                    self._reset()
                    continue
                if value & 0b111 not in _ATIME_MS:
                    raise self.nack(f"CONTROL 0x{value:02x}: undefined ATIME code")
            was_enabled = self.enabled
            self.registers[register] = value
            if register == _ENABLE and self.enabled and not was_enabled:
                # AEN (with PON) starts integrating; AVALID waits for the first complete cycle.
                self.registers[_STATUS] &= ~_AVALID
                self._ready_at = self._now() + (self.integration_ms / 1000 if self._clock else 0.0)
            elif register == _ENABLE and not self.enabled:
                self._ready_at = None

    def _settle(self) -> None:
        """Latch a result if the ADCs are on and a cycle has completed."""
        if not self.enabled or self._ready_at is None or self._now() < self._ready_at or self.stuck_invalid:
            return
        ch0, ch1 = encode_counts(self.lux, self.ir_ratio, gain=self.gain, integration_ms=self.integration_ms)
        ch0 = ch0 if self.ch0 is None else self.ch0
        ch1 = ch1 if self.ch1 is None else self.ch1
        self.registers[_DATA:_DATA + 4] = ch0.to_bytes(2, "little") + ch1.to_bytes(2, "little")
        self.registers[_STATUS] |= _AVALID
