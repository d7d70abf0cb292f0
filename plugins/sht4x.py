"""Sensirion SHT4x (SHT40, SHT41, SHT43, SHT45) temperature and humidity sensor, type `sht4x`.

Wiring (I2C, enabled with `dtparam=i2c_arm=on`): VDD to 3.3 V (header pin 1), VSS to pin 6,
SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). Address: fixed by the part number, 0x44 for the
common "-AD1B" parts, 0x45 for "-BD1B", 0x46 for "-CD1B" (datasheet, ordering information).

Each read sends a one-byte measurement command (datasheet §4.5, command overview), waits the
longest measurement duration of the timing specification (8.3 ms at high precision), and reads
temperature and humidity, each word followed by a CRC-8 that is checked before converting
(§4.6). `open()` reads the chip's serial number, whose CRCs show a Sensirion chip answers.

Datasheet: Sensirion "Datasheet SHT4x",
https://sensirion.com/media/documents/33FD6951/662A593A/HT_DS_Datasheet_SHT4x.pdf

Example::

    [[sensor]]
    name = "greenhouse"
    type = "sht4x"
    interval_s = 30
    address = 0x44
    ## "high", "medium" or "low": lower precision is noisier, faster (1.6 ms instead of
    ## 8.3 ms) and uses less energy.
    # precision = "high"
    # bus = 1
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import NACK_ERRNOS, Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range, read_bytes, words_with_crc

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

log = logging.getLogger(__name__)

# Measure T and RH without the heater (§4.5), and the longest each takes (timing specification:
# t_MEAS,h 8.3 ms, t_MEAS,m 4.5 ms, t_MEAS,l 1.6 ms).
_CMD_MEASURE = {"high": 0xFD, "medium": 0xF6, "low": 0xE0}
_MEASURE_S = {"high": 0.0083, "medium": 0.0045, "low": 0.0016}
_CMD_SERIAL = 0x89  # §4.5: two words, each with its CRC
# The datasheet gives no duration for the serial number; Adafruit's driver waits 10 ms.
_SERIAL_S = 0.010
# identify() has no sleep to wait with, so it retries the NACKed read instead: each failed read
# is an address byte on the wire (about 0.1 ms at 100 kHz) plus an ioctl.
_IDENTIFY_READS = 100


@dataclass(frozen=True)
class SHT4xConfig(I2CConfig):
    """`[[sensor]]` keys of an SHT4x."""

    address: int = field_range(0x44, ge=0x44, le=0x46)
    precision: Literal["high", "medium", "low"] = "high"


def temperature_c(raw: int) -> float:
    """°C from the raw temperature word (§4.6): T = -45 + 175 * raw / (2^16 - 1)."""
    return -45 + 175 * raw / 65535


def humidity_pct(raw: int) -> float:
    """% relative humidity from the raw word (§4.6): RH = -6 + 125 * raw / (2^16 - 1), cropped
    to 0..100 % as the datasheet recommends (the formula reaches -6 and 119)."""
    return min(max(-6 + 125 * raw / 65535, 0.0), 100.0)



class SHT4x(I2CSensor):
    """An SHT40/41/43/45: temperature and relative humidity."""

    type_name = "sht4x"
    Config = SHT4xConfig
    config: SHT4xConfig
    i2c_addresses = (0x44, 0x45, 0x46)
    #: The chip's 32-bit serial number, read by `open()`.
    serial_number: int | None = None

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", 0.01), Channel("humidity", "%", 0.01)]

    def probe(self) -> None:
        """Read the serial number; its CRCs show a Sensirion chip answers."""
        high, low = self._command(_CMD_SERIAL, _SERIAL_S, "serial number")
        self.serial_number = high << 16 | low
        log.debug("%s: serial number 0x%08x", self.describe(), self.serial_number)

    def read(self) -> list[Reading]:
        """One measurement at the configured precision."""
        precision = self.config.precision
        t_raw, rh_raw = self._command(_CMD_MEASURE[precision], _MEASURE_S[precision], "measurement")
        return [Reading("temperature", round(temperature_c(t_raw), 2), "°C"),
                Reading("humidity", round(humidity_pct(rh_raw), 2), "%")]

    def _command(self, command: int, wait_s: float, what: str) -> list[int]:
        """Send `command`, wait, read two words and check their CRCs."""
        with self.bus.lock:  # command, wait and read are one transaction
            self.transfer(lambda bus: bus.write_byte(self.address, command))
            self.hardware.sleep(wait_s)
            # The chip NACKs a read until the result is ready; transfer() retries it.
            data = self.transfer(lambda bus: read_bytes(bus, self.address, 6))
        return self.crc_words(data, f"{what} (command 0x{command:02x})")

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """An SHT4x answers the serial number command with two words whose CRCs are right;
        other chips NACK or answer something else. The command only reads; another chip at
        0x44/0x45 (an INA219) takes the byte as a register pointer, which changes no setting."""
        data: bytes | None = None
        try:
            bus.write_byte(address, _CMD_SERIAL)
            for _ in range(_IDENTIFY_READS):
                try:
                    data = read_bytes(bus, address, 6)
                    break
                except OSError as exc:
                    if exc.errno not in NACK_ERRNOS:
                        raise
            if data is None:
                return None
            words_with_crc(data, "serial number")
        except (OSError, ValueError):
            return None
        return {"type": cls.type_name, "address": address}


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [SHT4x]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.sht import SHT4xModel  # lazy: only the fake node asks

    return [SHT4xModel]
