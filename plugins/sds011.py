"""Nova Fitness SDS011 particulate matter sensor (UART), type `sds011`: PM2.5 and PM10 in µg/m³.

Wiring (the sensor's 7-pin connector, or its USB adapter as /dev/ttyUSB0): 5V (pin 3) to 5 V
(Pi pin 2 or 4: fan and laser draw about 70 mA), GND (pin 5) to pin 6, the sensor's TXD
(pin 7) to the Pi's RX (GPIO15, pin 10), the sensor's RXD (pin 6) to the Pi's TX (GPIO14, pin
8; needed for query mode and the work period only). The serial pins are 3.3 V TTL: no level
shifter to the Pi.

The Pi's UART: put `enable_uart=1` in /boot/firmware/config.txt and switch the serial
console off (`sudo raspi-config`, Interface Options, Serial Port: login shell "No", hardware
"Yes"; or remove `console=serial0,115200` from cmdline.txt), then reboot. /dev/serial0 is the
UART on pins 8 and 10; the user running sensord needs the group `dialout` (the packaged
service has it).

Datasheet: Nova Fitness "SDS011 Laser PM2.5 Sensor specification" V1.3 (9600 8N1, the 10-byte
frame: 0xAA 0xC0, PM2.5 low, high, PM10 low, high, ID 2 bytes, check-sum = the low byte of
the sum of the 6 data bytes, 0xAB; PM = value / 10 µg/m³, range 0.0 to 999.9) and the "Laser
Dust Sensor Control Protocol" V1.3: 19-byte commands 0xAA 0xB4, data 1 to 15 (data 1 the
command, data 14 and 15 the device id, 0xFFFF for any), check-sum of data 1 to 15, 0xAB;
command 2 sets the data reporting mode (active or query), 4 queries data, 8 sets the working
period (0 continuous, 1 to 30 minutes); settings are answered by 0xAA 0xC5 frames.

Modes: "active" (the default) streams a frame every second; a read drops what queued up and
takes the next whole frame, skipping bytes up to a header and one bad frame. "query": `open()`
sets query mode and each read sends the query command. `work_period_min` (1 to 30) makes the
sensor sleep, wake every so many minutes, measure for 30 s and send one frame (active mode
only): this saves the laser and the fan (rated 8000 hours); set `interval_s` to that period,
and a read then takes the frame that came since the last read, waiting briefly for one.

Example::

    [[sensor]]
    name = "street"
    type = "sds011"
    interval_s = 60
    ## "active": a frame every second; "query": a frame when asked.
    mode = "query"
    ## Minutes between measurements (1 to 30) to spare the laser; 0: continuous.
    # work_period_min = 0
    # port = "/dev/serial0"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sensord
from sensord import Channel, Reading, Sensor, field_range
from sensord.uart import UARTConfig, UARTSensor, sum8

# Specification V1.3, "communication protocol".
HEADER = b"\xaa\xc0"
FRAME_LENGTH = 10
_TAIL = 0xAB
_REPLY_HEADER = b"\xaa\xc5"  # answers to settings

# Control protocol V1.3: data 1 (the command) and data 2 (0 query, 1 set).
CMD_REPORTING_MODE = 2
CMD_QUERY = 4
CMD_WORK_PERIOD = 8
_SET = 1
REPORT_ACTIVE, REPORT_QUERY = 0, 1
_ANY_DEVICE = 0xFFFF

_SETTLE_S = 0.2  # the sensor answers a setting within this (its replies are dropped)


def command(cmd: int, *data: int, device: int = _ANY_DEVICE) -> bytes:
    """A 19-byte command: 0xAA 0xB4, data 1 (`cmd`), data 2 to 13 (`data`, zero-filled), the
    device id, the check-sum (low byte of the sum of data 1 to 15), 0xAB."""
    body = bytes([cmd, *data]).ljust(13, b"\x00") + device.to_bytes(2, "big")
    return b"\xaa\xb4" + body + bytes([sum8(body), _TAIL])


def frame_problem(frame: bytes) -> str | None:
    """What is wrong with a 10-byte data frame, None when tail and check-sum are right."""
    if frame[9] != _TAIL:
        return f"tail 0x{frame[9]:02x}, expected 0x{_TAIL:02x}"
    if frame[8] != sum8(frame[2:8]):
        return f"check-sum 0x{frame[8]:02x}, expected 0x{sum8(frame[2:8]):02x}"
    return None


def decode(frame: bytes) -> tuple[float, float]:
    """(PM2.5, PM10) in µg/m³ from a checked frame: little-endian tenths."""
    return (int.from_bytes(frame[2:4], "little") / 10, int.from_bytes(frame[4:6], "little") / 10)


@dataclass(frozen=True)
class SDS011Config(UARTConfig):
    """`[[sensor]]` keys of type `sds011`."""

    #: "active" (a frame every second) or "query" (a frame when asked).
    mode: Literal["active", "query"] = "active"
    #: Working period in minutes: 0 continuous, 1 to 30 sleep between measurements.
    work_period_min: int = field_range(0, ge=0, le=30)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.work_period_min and self.mode != "active":
            raise ValueError('work_period_min: the sensor sends the periodic frames by itself, so it '
                             'needs mode = "active"')


class SDS011(UARTSensor):
    """Nova Fitness SDS011 (also SDS018, SDS021: the same protocol): PM2.5 and PM10 (µg/m³)."""

    type_name = "sds011"
    Config = SDS011Config
    config: SDS011Config
    port_timeout_s = 2.0  # a frame every second in active mode

    def channels(self) -> list[Channel]:
        return [Channel("pm2_5", "µg/m³", 0.1), Channel("pm10", "µg/m³", 0.1)]

    def probe(self) -> None:
        """Set the reporting mode and the working period (the sensor keeps both in flash)."""
        cfg = self.config
        mode = REPORT_QUERY if cfg.mode == "query" else REPORT_ACTIVE
        self.send(command(CMD_REPORTING_MODE, _SET, mode))
        self.send(command(CMD_WORK_PERIOD, _SET, cfg.work_period_min))
        self.hardware.sleep(_SETTLE_S)
        self.discard_input()

    def read(self) -> list[Reading]:
        cfg = self.config
        if not cfg.work_period_min:
            self.discard_input()  # frames queued since the last read are old
        if cfg.mode == "query":
            self.send(command(CMD_QUERY))
        try:
            frame = self.read_frame(HEADER, FRAME_LENGTH, check=frame_problem)
        except sensord.SensorError as exc:
            if not cfg.work_period_min:
                raise
            raise self.error(f"no frame since the last read ({exc}); with work_period_min = "
                             f"{cfg.work_period_min} one comes every {cfg.work_period_min} min: set "
                             f"interval_s to {cfg.work_period_min * 60} or more") from exc
        pm2_5, pm10 = decode(frame)
        return [Reading("pm2_5", pm2_5, "µg/m³"), Reading("pm10", pm10, "µg/m³")]


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [SDS011]
