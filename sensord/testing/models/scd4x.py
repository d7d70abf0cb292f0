"""A fake Sensirion SCD40 / SCD41 (datasheet version 1.3) for `FakeI2CBus`.

Command based: a write is a 16-bit command, MSB first, and its argument words, each followed by
its CRC-8; a read command's answer is fetched with a following read, each word with its CRC.
The model keeps the sensor's rules (§3.3, §3.4 Table 9) and NACKs, as the sensor does:

- a command or read during the execution time of the previous command (500 ms after
  stop_periodic_measurement, 1 ms for the read commands);
- a command not allowed during periodic measurement (get_serial_number, set_sensor_altitude...);
- a written word with a wrong CRC, an unknown command;
- read_measurement with no new sample in the buffer (§3.5.2); a read-out empties it.

Time is fake: `advance(seconds)` moves it, so a test hands `model.advance` to the driver as
`Hardware(sleep=...)` and every wait the driver makes counts. In periodic mode a sample is ready
every `period_s` seconds, or, with `ready_after_polls=N`, after N get_data_ready_status polls
that found none. `co2_ppm`, `temperature_c` and `humidity_pct` are what the sensor reports
(after its temperature offset); `corrupt_crc_next()` spoils the CRC of the next answer.

    scd = SCD4xModel(co2_ppm=800)
    bus = FakeI2CBus([scd])
    hardware = Hardware(i2c_factory=lambda n: bus, sleep=scd.advance)
"""

from __future__ import annotations

import math

from sensord.testing.sensirion import SensirionModel

# command: (name, allowed during periodic measurement, argument words, execution time in s)
_COMMANDS: dict[int, tuple[str, bool, int, float]] = {
    0x21B1: ("start_periodic_measurement", False, 0, 0.0),
    0xEC05: ("read_measurement", True, 0, 0.001),
    0x3F86: ("stop_periodic_measurement", True, 0, 0.5),
    0x241D: ("set_temperature_offset", False, 1, 0.001),
    0x2318: ("get_temperature_offset", False, 0, 0.001),
    0x2427: ("set_sensor_altitude", False, 1, 0.001),
    0x2322: ("get_sensor_altitude", False, 0, 0.001),
    0xE4B8: ("get_data_ready_status", True, 0, 0.001),
    0x3682: ("get_serial_number", False, 0, 0.001),
    0x3646: ("reinit", False, 0, 0.020),
}


def _word(value: float) -> int:
    return max(0, min(0xFFFF, round(value)))


class SCD4xModel(SensirionModel):
    """An SCD4x with settable readings, fake time and the datasheet's command rules."""

    DEFAULT_ADDRESS = 0x62

    def __init__(self, *, address: int = DEFAULT_ADDRESS, serial_number: int = 0xF8969F073BBE,
                 co2_ppm: float = 415, temperature_c: float = 21.5, humidity_pct: float = 45.0,
                 measuring: bool = False, period_s: float = 5.0, ready_after_polls: int | None = None,
                 enforce_timing: bool = True) -> None:
        super().__init__(address=address, enforce_timing=enforce_timing)
        self.serial_number = serial_number
        self.co2_ppm = co2_ppm
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        #: Whether periodic measurement runs (else the sensor is idle).
        self.measuring = measuring
        self.period_s = period_s
        self.ready_after_polls = ready_after_polls
        self.altitude_m = 0
        self.temperature_offset_c = 4.0
        self._sample = False
        self._next_sample = period_s if measuring else math.inf
        self._polls = 0

    def advance(self, seconds: float) -> None:
        """Let `seconds` of fake time pass."""
        super().advance(seconds)
        if self.measuring and self.now >= self._next_sample:
            self._sample = True
            while self._next_sample <= self.now:
                self._next_sample += self.period_s

    @property
    def data_ready(self) -> bool:
        """Whether a sample waits in the buffer."""
        return self._sample

    # -- I2CDeviceModel ------------------------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        self.advance(0.0)
        self.check_idle()
        command, args = self.decode_command(data, _COMMANDS)
        name, while_measuring, n_words, execution_s = _COMMANDS[command]
        if self.measuring and not while_measuring:
            raise self.nack(f"{name} is refused during periodic measurement")
        words = self.argument_words(name, args, (n_words,))
        self.commands.append(name)
        self._busy_until = self.now + execution_s
        self._pending = name if name.startswith(("get_", "read_")) else None
        if name == "start_periodic_measurement":
            self.measuring, self._sample, self._polls = True, False, 0
            self._next_sample = self.now + self.period_s
        elif name == "stop_periodic_measurement":
            self.measuring, self._sample = False, False
            self._next_sample = math.inf
        elif name == "set_temperature_offset":
            self.temperature_offset_c = words[0] * 175 / 65535
        elif name == "set_sensor_altitude":
            self.altitude_m = words[0]

    def read_raw(self, length: int) -> bytes:
        self.advance(0.0)
        self.check_idle(reading=True)
        # The master may stop early (§3.5.2); past the answer the bus reads 0xFF.
        return self.answer_bytes(self._answer(self.take_pending()), length)

    def _answer(self, name: str) -> list[int]:
        if name == "read_measurement":
            if not self._sample:
                raise self.nack("no new measurement in the buffer")
            self._sample, self._polls = False, 0
            return [_word(self.co2_ppm), _word((self.temperature_c + 45) * 65535 / 175),
                    _word(self.humidity_pct * 65535 / 100)]
        if name == "get_data_ready_status":
            if self.measuring and not self._sample and self.ready_after_polls is not None:
                self._polls += 1
                self._sample = self._polls > self.ready_after_polls
            # Only the low 11 bits carry the status (§3.8.2); the high ones are set to catch a
            # driver that compares the whole word.
            return [0x8006 if self._sample else 0x8000]
        if name == "get_serial_number":
            return [(self.serial_number >> shift) & 0xFFFF for shift in (32, 16, 0)]
        if name == "get_temperature_offset":
            return [_word(self.temperature_offset_c * 65535 / 175)]
        return [self.altitude_m]  # get_sensor_altitude
