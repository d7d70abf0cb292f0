"""A fake Sensirion SCD30 (Interface Description version 1.0) for `FakeI2CBus`.

Command based: a write is a 16-bit command, MSB first, and its argument words, each followed by
its CRC-8; a read command's answer is fetched with a following read, each word with its CRC.
The model NACKs, where the module refuses:

- an unknown command, an argument word with a wrong CRC, a missing or extra argument;
- a measurement interval outside 2..1800 s (§1.4.3) or a pressure outside 0 or 700..1400 mbar
  (§1.4.1);
- read_measurement with no new sample (the driver polls get_data_ready first); a read-out
  empties the buffer;
- a read with no read command before it.

Time is fake: `advance(seconds)` moves it, so a test hands `model.advance` to the driver as its
sleep. While measuring, a sample is ready every `measurement_interval_s` seconds. The interval
and the measuring state survive as in the module's non-volatile memory; `interval_writes`
counts writes of the interval. `co2_ppm`, `temperature_c` and `humidity_pct` are what the module
reports; `corrupt_crc_next()` spoils the CRC of the next answer.

The defaults are the values of the read_measurement example (§1.4.5): 439.09 ppm, 27.24 °C and
48.81 %, sent as 0x43DB 0x8C2E, 0x41D9 0xE7FF, 0x4243 0x3A1B.

    scd = SCD30Model()
    bus = FakeI2CBus([scd])
    hardware = Hardware(i2c_factory=lambda n: bus, sleep=scd.advance)
"""

from __future__ import annotations

import math
import struct

from sensord.i2c import crc8
from sensord.testing.i2c import I2CDeviceModel

# command: (name, argument words: a tuple of the counts it takes)
_COMMANDS: dict[int, tuple[str, tuple[int, ...]]] = {
    0x0010: ("start_continuous_measurement", (1,)),
    0x0104: ("stop_continuous_measurement", (0,)),
    0x4600: ("measurement_interval", (0, 1)),  # without an argument: read it
    0x0202: ("get_data_ready_status", (0,)),
    0x0300: ("read_measurement", (0,)),
    0x5306: ("automatic_self_calibration", (0, 1)),
    0x5204: ("forced_recalibration_value", (0, 1)),
    0x5403: ("temperature_offset", (0, 1)),
    0x5102: ("altitude_compensation", (0, 1)),
    0xD100: ("read_firmware_version", (0,)),
    0xD304: ("soft_reset", (0,)),
}

#: §1.4.5: the example's floats, as words.
EXAMPLE_WORDS = (0x43DB, 0x8C2E, 0x41D9, 0xE7FF, 0x4243, 0x3A1B)


def float_words(value: float) -> tuple[int, int]:
    """A float as the two words the module sends, most significant first (§1.5)."""
    raw = int.from_bytes(struct.pack(">f", value), "big")
    return raw >> 16, raw & 0xFFFF


class SCD30Model(I2CDeviceModel):
    """An SCD30 with settable readings, fake time and the interface description's command rules."""

    DEFAULT_ADDRESS = 0x61

    def __init__(self, *, address: int = DEFAULT_ADDRESS, co2_ppm: float = 439.09515380859375,
                 temperature_c: float = 27.238279342651367, humidity_pct: float = 48.80674362182617,
                 firmware: int = 0x0342, measurement_interval_s: int = 2, measuring: bool = False) -> None:
        super().__init__(address=address)
        self.co2_ppm = co2_ppm
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.firmware = firmware
        self.measurement_interval_s = measurement_interval_s
        #: Ambient pressure of the last start_continuous_measurement, mbar; 0 = none.
        self.pressure_mbar = 0
        #: Whether continuous measurement runs.
        self.measuring = measuring
        #: Fake seconds since power-up; moved by `advance()`.
        self.now = 0.0
        #: Names of the commands accepted so far, oldest first.
        self.commands: list[str] = []
        self.interval_writes = 0
        self._pending: str | None = None
        self._sample = False
        self._next_sample = measurement_interval_s if measuring else math.inf
        self._corrupt = False

    def advance(self, seconds: float) -> None:
        """Let `seconds` of fake time pass."""
        self.now += seconds
        if self.measuring and self.now >= self._next_sample:
            self._sample = True
            while self._next_sample <= self.now:
                self._next_sample += self.measurement_interval_s

    def corrupt_crc_next(self) -> None:
        """Send a wrong CRC with the first word of the next answer."""
        self._corrupt = True

    # -- I2CDeviceModel ------------------------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        if len(data) < 2:
            raise self.nack(f"expected a 16-bit command, got {len(data)} byte(s)")
        command = int.from_bytes(data[:2], "big")
        if command not in _COMMANDS:
            raise self.nack(f"unknown command 0x{command:04x}")
        name, counts = _COMMANDS[command]
        args = data[2:]
        if len(args) % 3 or len(args) // 3 not in counts:
            raise self.nack(f"{name}: expected {' or '.join(map(str, counts))} word(s) with CRC, got {len(args)} bytes")
        words = []
        for i in range(0, len(args), 3):
            if crc8(args[i:i + 2]) != args[i + 2]:
                raise self.nack(f"{name}: CRC mismatch in word {i // 3}")
            words.append(int.from_bytes(args[i:i + 2], "big"))
        self._pending = None
        if name == "start_continuous_measurement":
            if words[0] != 0 and not 700 <= words[0] <= 1400:
                raise self.nack(f"ambient pressure {words[0]} mbar outside 0 or 700..1400")
            if not self.measuring:
                self._sample = False
                self._next_sample = self.now + self.measurement_interval_s
            self.measuring, self.pressure_mbar = True, words[0]
        elif name == "stop_continuous_measurement":
            self.measuring, self._sample, self._next_sample = False, False, math.inf
        elif name == "measurement_interval" and words:
            if not 2 <= words[0] <= 1800:
                raise self.nack(f"measurement interval {words[0]} s outside 2..1800")
            self.measurement_interval_s = words[0]
            self.interval_writes += 1
        elif not words and name != "soft_reset":
            self._pending = name  # a read command: its answer comes with the next read
        self.commands.append(f"set_{name}" if words and name == "measurement_interval" else name)

    def read_raw(self, length: int) -> bytes:
        self.advance(0.0)
        name, self._pending = self._pending, None
        if name is None:
            raise self.nack("no read command before this read")
        data = bytearray()
        for word in self._answer(name):
            raw = word.to_bytes(2, "big")
            data += raw + bytes([crc8(raw)])
        if self._corrupt:
            data[2] ^= 0xFF
            self._corrupt = False
        # Past the answer the bus reads 0xFF.
        return bytes(data[:length]).ljust(length, b"\xff")

    def _answer(self, name: str) -> list[int]:
        if name == "read_measurement":
            if not self._sample:
                raise self.nack("no new measurement in the buffer")
            self._sample = False
            return [w for v in (self.co2_ppm, self.temperature_c, self.humidity_pct) for w in float_words(v)]
        if name == "get_data_ready_status":
            return [1 if self._sample else 0]
        if name == "measurement_interval":
            return [self.measurement_interval_s]
        if name == "read_firmware_version":
            return [self.firmware]
        return [0]  # the calibration settings the driver leaves alone
