"""Plantower PMS5003 particulate matter sensor (UART), type `pms5003`: PM1.0, PM2.5 and PM10 in µg/m³,
optionally the particle counts per 0.1 L of air.

Wiring (the sensor's 8-pin 1.25 mm connector; an adapter board names the pins): VCC to 5 V
(pin 2 or 4: the fan needs 5 V, about 100 mA), GND to pin 6, the sensor's TX to the Pi's RX
(GPIO15, pin 10), the sensor's RX to the Pi's TX (GPIO14, pin 8; needed for passive mode
only). SET and RESET may stay unconnected (internal pull-ups). The data pins are 3.3 V logic:
no level shifter between the sensor and the Pi.

The Pi's UART: put `enable_uart=1` in /boot/firmware/config.txt and switch the serial
console off (`sudo raspi-config`, Interface Options, Serial Port: login shell "No", hardware
"Yes"; or remove `console=serial0,115200` from cmdline.txt), then reboot. /dev/serial0 is the
UART on pins 8 and 10; the user running sensord needs the group `dialout` (the packaged
service has it). A USB serial adapter is /dev/ttyUSB0.

Datasheet: Plantower "PMS5003 series data manual" (2016): "Transport Protocol - Active Mode"
(9600 8N1; 32-byte frame: 0x42 0x4D, frame length 2×13+2, data 1 to 13, check code = the sum
of every byte before it), Appendix I (host protocol: 7-byte commands 0x42 0x4D CMD DATAH DATAL
LRCH LRCL; 0xE2 read in passive mode, 0xE1 change mode (0 passive, 1 active)), and the
"Digital Interface Definition" (5 V supply, 3.3 V TTL data). Data 4 to 6 are the
concentrations "under atmospheric environment", which this driver reports; data 1 to 3 are
"CF=1, standard particle", for factory calibration.

Active mode (the default): the sensor streams a frame every 200 to 800 ms when the air
changes quickly and every 2.3 s when it is stable. A read drops what queued up since the last
one and takes the next whole frame, skipping bytes up to a header (the stream is joined
mid-frame) and a frame with a wrong length or checksum (once; twice is an error). Passive mode
(`mode = "passive"`): `open()` switches the sensor to passive mode and each read sends the
read command (0xE2) and takes its answer. The fan runs all the time in both modes; after
power-on the values settle within 30 s (datasheet, "stable data").

Example::

    [[sensor]]
    name = "balcony"
    type = "pms5003"
    interval_s = 60
    ## "active": the sensor streams frames; "passive": it answers the read command.
    # mode = "active"
    ## Also report the particle counts per 0.1 L (>0.3 µm ... >10 µm).
    particle_counts = true
    # port = "/dev/serial0"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sensord
from sensord import Channel, Reading, Sensor
from sensord.uart import UARTConfig, UARTSensor

# "Transport Protocol - Active Mode".
HEADER = b"\x42\x4d"
FRAME_LENGTH = 32
_LENGTH_FIELD = 2 * 13 + 2  # bytes after the length field: 13 data words and the check code

# Appendix I: commands (byte 2) and their data (bytes 3 and 4).
CMD_READ = 0xE2
CMD_MODE = 0xE1
MODE_PASSIVE, MODE_ACTIVE = 0x00, 0x01

# The settle time after a mode change: the sensor answers it with a short frame (seen on
# devices, not in the datasheet), dropped before the next read.
_MODE_SETTLE_S = 0.1

#: Data words 7 to 12: particles beyond a diameter in 0.1 L of air.
COUNT_QUANTITIES = ("particles_0_3um", "particles_0_5um", "particles_1_0um", "particles_2_5um",
                    "particles_5_0um", "particles_10um")


def command(cmd: int, data: int = 0) -> bytes:
    """A host command (Appendix I): 0x42 0x4D CMD DATAH DATAL, then the sum of those bytes."""
    body = HEADER + bytes([cmd, data >> 8 & 0xFF, data & 0xFF])
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


def frame_problem(frame: bytes) -> str | None:
    """What is wrong with a 32-byte frame, None when its length field and check code are right."""
    length = int.from_bytes(frame[2:4], "big")
    if length != _LENGTH_FIELD:
        return f"frame length {length}, expected {_LENGTH_FIELD}"
    expected = sum(frame[:30]) & 0xFFFF
    found = int.from_bytes(frame[30:32], "big")
    if found != expected:
        return f"check code 0x{found:04x}, expected 0x{expected:04x}"
    return None


def decode(frame: bytes) -> list[int]:
    """The 13 data words of a checked frame, big-endian (data 1 is index 0)."""
    return [int.from_bytes(frame[i:i + 2], "big") for i in range(4, 30, 2)]


@dataclass(frozen=True)
class PMS5003Config(UARTConfig):
    """`[[sensor]]` keys of type `pms5003`."""

    #: "active" (the sensor streams) or "passive" (it answers the read command).
    mode: Literal["active", "passive"] = "active"
    #: Also report the six particle counts (per 0.1 L).
    particle_counts: bool = False


class PMS5003(UARTSensor):
    """Plantower PMS5003 (also PMS7003, PMSA003: the same frame): PM1.0, PM2.5, PM10 (µg/m³)."""

    type_name = "pms5003"
    Config = PMS5003Config
    config: PMS5003Config
    port_timeout_s = 3.0  # frames come every 2.3 s at the slowest

    def channels(self) -> list[Channel]:
        mass = [Channel(q, "µg/m³", 1.0) for q in ("pm1", "pm2_5", "pm10")]
        counts = [Channel(q, "/dL", 1.0) for q in COUNT_QUANTITIES] if self.config.particle_counts else []
        return mass + counts

    def probe(self) -> None:
        """Set the reporting mode (the sensor keeps it until power-off), drop its answer."""
        passive = self.config.mode == "passive"
        self.send(command(CMD_MODE, MODE_PASSIVE if passive else MODE_ACTIVE))
        self.hardware.sleep(_MODE_SETTLE_S)
        self.discard_input()

    def read(self) -> list[Reading]:
        self.discard_input()  # frames queued since the last read are old
        if self.config.mode == "passive":
            self.send(command(CMD_READ))
        words = decode(self.read_frame(HEADER, FRAME_LENGTH, check=frame_problem))
        readings = [Reading(q, words[i], "µg/m³") for q, i in (("pm1", 3), ("pm2_5", 4), ("pm10", 5))]
        if self.config.particle_counts:
            readings += [Reading(q, words[6 + i], "/dL") for i, q in enumerate(COUNT_QUANTITIES)]
        return readings


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [PMS5003]

