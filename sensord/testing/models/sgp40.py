"""A fake Sensirion SGP40 (datasheet version 1.0) for `FakeI2CBus`.

Command based: a write is a 16-bit command, MSB first, and its argument words, each followed by
its CRC-8; a command's answer is fetched with a following read, each word with its CRC. As the
sensor (§4.5), the model NACKs every transfer while a command executes (30 ms for
sgp40_measure_raw, 320 ms for the self-test, 1 ms for the serial number), and also:

- an unknown command, a wrong number of argument words, an argument word with a wrong CRC.

A read with no answer waiting is acknowledged and reads 0xFF bytes (so `sensord detect`'s read
probe, as i2cdetect makes in 0x50-0x5F, finds the sensor), which fail the CRC check.

Time is fake: `advance(seconds)` moves it, so a test hands `model.advance` to the driver as its
sleep (or `enforce_timing=False` skips timing). `sraw` is the raw signal the next measurement
returns (the datasheet gives no example value; 30000 ticks is typical of clean indoor air, and
a list of values is returned one per measurement, the last one repeated). `humidity_ticks` and
`temperature_ticks` keep the compensation words of the last measurement: 0x8000 and 0x6666,
the defaults of Table 10, mean compensation off. `heater_on` follows the measure and heater-off
commands; `self_test_result` is what the self-test answers (0xD400 passed, 0x4B00 failed);
`corrupt_crc_next()` spoils the CRC of the next answer.

    sgp = SGP40Model(sraw=29500)
    bus = FakeI2CBus([sgp])
    hardware = Hardware(i2c_factory=lambda n: bus, sleep=sgp.advance)
"""

from __future__ import annotations

from collections.abc import Sequence

from sensord.i2c import crc8
from sensord.testing.i2c import I2CDeviceModel

# command: (name, argument words, execution time in s)
_COMMANDS: dict[int, tuple[str, int, float]] = {
    0x260F: ("measure_raw", 2, 0.030),
    0x280E: ("self_test", 0, 0.320),
    0x3615: ("heater_off", 0, 0.0),
    0x3682: ("get_serial_number", 0, 0.001),
}


class SGP40Model(I2CDeviceModel):
    """An SGP40 with a settable raw signal, fake time and the datasheet's command rules."""

    DEFAULT_ADDRESS = 0x59

    def __init__(self, *, address: int = DEFAULT_ADDRESS, sraw: int | Sequence[int] = 30000,
                 serial_number: int = 0x0000_0123_4567, self_test_result: int = 0xD400,
                 enforce_timing: bool = True) -> None:
        super().__init__(address=address)
        self.sraw = sraw
        self.serial_number = serial_number
        self.self_test_result = self_test_result
        self.enforce_timing = enforce_timing
        #: Fake seconds since power-up; moved by `advance()`.
        self.now = 0.0
        self.heater_on = False
        self.humidity_ticks: int | None = None
        self.temperature_ticks: int | None = None
        #: Names of the commands accepted so far, oldest first.
        self.commands: list[str] = []
        self.measurements = 0
        self._busy_until = 0.0
        self._answer: list[int] | None = None
        self._corrupt = False

    def advance(self, seconds: float) -> None:
        """Let `seconds` of fake time pass."""
        self.now += seconds

    def corrupt_crc_next(self) -> None:
        """Send a wrong CRC with the first word of the next answer."""
        self._corrupt = True

    def _busy(self) -> bool:
        return self.enforce_timing and self.now < self._busy_until

    # -- I2CDeviceModel ------------------------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        if self._busy():
            raise self.nack(f"busy with {self.commands[-1]} for {self._busy_until - self.now:.4f} s more")
        if len(data) < 2:
            raise self.nack(f"expected a 16-bit command, got {len(data)} byte(s)")
        command = int.from_bytes(data[:2], "big")
        if command not in _COMMANDS:
            raise self.nack(f"unknown command 0x{command:04x}")
        name, n_words, execution_s = _COMMANDS[command]
        args = data[2:]
        if len(args) != 3 * n_words:
            raise self.nack(f"{name}: expected {n_words} word(s) with CRC, got {len(args)} bytes")
        words = []
        for i in range(0, len(args), 3):
            if crc8(args[i:i + 2]) != args[i + 2]:
                raise self.nack(f"{name}: CRC mismatch in word {i // 3}")
            words.append(int.from_bytes(args[i:i + 2], "big"))
        self.commands.append(name)
        self._busy_until = self.now + execution_s
        self._answer = None
        if name == "measure_raw":
            self.heater_on = True
            self.humidity_ticks, self.temperature_ticks = words
            self._answer = [self._next_sraw()]
        elif name == "self_test":
            self._answer = [self.self_test_result]
        elif name == "heater_off":
            self.heater_on = False
        else:
            self._answer = [(self.serial_number >> shift) & 0xFFFF for shift in (32, 16, 0)]

    def _next_sraw(self) -> int:
        count, self.measurements = self.measurements, self.measurements + 1
        return self.sraw if isinstance(self.sraw, int) else self.sraw[min(count, len(self.sraw) - 1)]

    def read_raw(self, length: int) -> bytes:
        if self._busy():
            raise self.nack("read header during the execution time")
        words, self._answer = self._answer, None
        if words is None:
            return b"\xff" * length
        data = bytearray()
        for word in words:
            raw = word.to_bytes(2, "big")
            data += raw + bytes([crc8(raw)])
        if self._corrupt:
            data[2] ^= 0xFF
            self._corrupt = False
        return bytes(data[:length]).ljust(length, b"\xff")
