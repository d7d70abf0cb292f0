"""Winsen MH-Z19B NDIR CO2 sensor (UART), type `mhz19`: carbon dioxide in ppm.

Wiring: Vin to 5 V (pin 2 or 4; the module takes 4.5 to 5.5 V, under 60 mA on average and
150 mA peaks when the lamp flashes), GND to pin 6, the sensor's TX to the Pi's RX (GPIO15, pin
10), the sensor's RX to the Pi's TX (GPIO14, pin 8). The UART works at 3.3 V TTL levels
(datasheet, "Output signal"): no level shifter to the Pi. Leave HD (zero calibration, active
low) unconnected.

The Pi's UART: put `enable_uart=1` in /boot/firmware/config.txt and switch the serial
console off (`sudo raspi-config`, Interface Options, Serial Port: login shell "No", hardware
"Yes"; or remove `console=serial0,115200` from cmdline.txt), then reboot. /dev/serial0 is the
UART on pins 8 and 10; the user running sensord needs the group `dialout` (the packaged
service has it).

Datasheet: Winsen "Intelligent Infrared CO2 Module (Model: MH-Z19B) User's Manual" V1.0,
"Communication protocol": 9600 8N1; 9-byte commands 0xFF 0x01 CMD, 5 data bytes, checksum;
0x86 reads the concentration (answer 0xFF 0x86 HIGH LOW ... checksum, ppm = HIGH × 256 +
LOW; example FF 86 02 20 00 00 00 00 58 = 544 ppm); 0x79 switches the automatic baseline
correction on (0xA0) or off (0x00); 0x99 sets the detection range; the checksum is
0xFF − (the sum of bytes 1 to 7) + 1.

Automatic baseline correction (ABC, on by default) takes the lowest value of every 24 hours as
400 ppm: right for a room aired daily, wrong for a greenhouse or a bedroom that never sees
outside air; `abc = false` switches it off at `open()`. `range_ppm` (2000, 5000 or 10000)
sets the detection range at `open()` (the datasheet puts it in bytes 3 and 4; sensors only
take it in bytes 6 and 7, where this driver sends it). The sensor needs 3 minutes after power-on
to warm up; readings before that are not valid.

Example::

    [[sensor]]
    name = "living_room"
    type = "mhz19"
    interval_s = 60
    ## Automatic baseline correction: true for rooms aired daily, false otherwise.
    abc = false
    ## Detection range in ppm: 2000, 5000 or 10000; unset keeps the sensor's.
    range_ppm = 5000
    # port = "/dev/serial0"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sensord
from sensord import Channel, Reading, Sensor
from sensord.uart import UARTConfig, UARTSensor

# "Communication protocol": commands (byte 2).
CMD_READ_CO2 = 0x86
CMD_ABC = 0x79
CMD_RANGE = 0x99
_ABC_ON, _ABC_OFF = 0xA0, 0x00
ANSWER_HEADER = bytes([0xFF, CMD_READ_CO2])
FRAME_LENGTH = 9

_SETTLE_S = 0.1  # a setting's answer (if any) arrives within this and is dropped


def checksum(packet: bytes) -> int:
    """The checksum of a 9-byte packet: 0xFF − (bytes 1 to 7) + 1, modulo 256."""
    return (0xFF - (sum(packet[1:8]) & 0xFF) + 1) & 0xFF


def command(cmd: int, data: bytes = b"") -> bytes:
    """A 9-byte command: 0xFF 0x01 CMD, `data` in bytes 3 to 7 (zero-filled), the checksum."""
    packet = bytes([0xFF, 0x01, cmd]) + data.ljust(5, b"\x00")
    return packet + bytes([checksum(packet + b"\x00")])


def frame_problem(frame: bytes) -> str | None:
    """What is wrong with a 9-byte answer, None when its checksum is right."""
    if frame[8] != checksum(frame):
        return f"checksum 0x{frame[8]:02x}, expected 0x{checksum(frame):02x}"
    return None


def co2_ppm(frame: bytes) -> int:
    """The concentration of a checked 0x86 answer: HIGH × 256 + LOW."""
    return frame[2] << 8 | frame[3]


@dataclass(frozen=True)
class MHZ19Config(UARTConfig):
    """`[[sensor]]` keys of type `mhz19`."""

    #: Automatic baseline correction; None leaves the sensor's setting (on from the factory).
    abc: bool | None = None
    #: Detection range in ppm; None leaves the sensor's (5000 from the factory).
    range_ppm: Literal[2000, 5000, 10000] | None = None


class MHZ19(UARTSensor):
    """Winsen MH-Z19B (and MH-Z19C, the same protocol): CO2 (ppm)."""

    type_name = "mhz19"
    Config = MHZ19Config
    config: MHZ19Config
    port_timeout_s = 1.0  # the answer comes within milliseconds

    def channels(self) -> list[Channel]:
        return [Channel("carbon_dioxide", "ppm", 1.0)]

    def probe(self) -> None:
        """Apply `abc` and `range_ppm`, then read once: a sensor that does not answer fails here."""
        cfg = self.config
        if cfg.abc is not None:
            self.send(command(CMD_ABC, bytes([_ABC_ON if cfg.abc else _ABC_OFF])))
        if cfg.range_ppm is not None:
            self.send(command(CMD_RANGE, bytes([0, 0, 0]) + cfg.range_ppm.to_bytes(2, "big")))
        if cfg.abc is not None or cfg.range_ppm is not None:
            self.hardware.sleep(_SETTLE_S)
        self.read()

    def read(self) -> list[Reading]:
        self.discard_input()
        self.send(command(CMD_READ_CO2))
        frame = self.read_frame(ANSWER_HEADER, FRAME_LENGTH, check=frame_problem, bad_frames=1)
        return [Reading("carbon_dioxide", co2_ppm(frame), "ppm")]


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [MHZ19]
