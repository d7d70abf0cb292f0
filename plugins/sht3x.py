"""Sensirion SHT3x (SHT30, SHT31, SHT35) temperature and humidity sensor, type `sht3x`.

Wiring (I2C, enabled with `dtparam=i2c_arm=on`): VIN to 3.3 V (header pin 1), GND to pin 6,
SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). Address: ADDR to GND gives 0x44, ADDR to VDD gives
0x45 (datasheet §3.3). nRESET and ALERT may stay unconnected.

Each read sends a single-shot measurement command with clock stretching disabled (datasheet
§4.3, Table 9) — the Raspberry Pi's I2C controller mishandles clock stretching —, waits the
longest measurement duration of Table 4, and reads temperature and humidity, each word followed
by a CRC-8 (§4.12) that is checked before converting (§4.13). Between reads the chip idles at
about 0.2 µA.

Datasheet: Sensirion "Datasheet SHT3x-DIS",
https://sensirion.com/media/documents/213E6A3B/63A5A569/Datasheet_SHT3x_DIS.pdf

Example::

    [[sensor]]
    name = "bathroom"
    type = "sht3x"
    interval_s = 30
    address = 0x44
    ## "high", "medium" or "low": lower repeatability is noisier, faster (4 ms instead of 15 ms)
    ## and uses less energy.
    # repeatability = "high"
    # bus = 1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range, read_bytes, words_with_crc

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

# Single shot, clock stretching disabled (§4.3, Table 9), and the longest each takes (Table 4).
_CMD_MEASURE = {"high": 0x2400, "medium": 0x240B, "low": 0x2416}
_MEASURE_S = {"high": 0.015, "medium": 0.006, "low": 0.004}
_CMD_SOFT_RESET = 0x30A2  # §4.9
_SOFT_RESET_S = 0.0015  # Table 4: t_SR, soft reset time, max 1.5 ms
_CMD_READ_STATUS = 0xF32D  # §4.11: two bytes and a CRC, readable at once
# §4.11: bits 14, 12, 9..5 and 3..2 are reserved ("0"). Used only to tell an SHT3x
# from another chip in identify(); open() trusts the configured type.
_STATUS_RESERVED = 0x53EC


@dataclass(frozen=True)
class SHT3xConfig(I2CConfig):
    """`[[sensor]]` keys of an SHT3x."""

    address: int = field_range(0x44, ge=0x44, le=0x45)
    repeatability: Literal["high", "medium", "low"] = "high"


def temperature_c(raw: int) -> float:
    """°C from the raw temperature word (§4.13): T = -45 + 175 * raw / (2^16 - 1)."""
    return -45 + 175 * raw / 65535


def humidity_pct(raw: int) -> float:
    """% relative humidity from the raw humidity word (§4.13): RH = 100 * raw / (2^16 - 1)."""
    return 100 * raw / 65535


def _write_command(bus: Any, address: int, command: int) -> None:
    """A 16-bit command, MSB first (§4.2): the MSB goes where SMBus puts the register."""
    bus.write_i2c_block_data(address, command >> 8, [command & 0xFF])



class SHT3x(I2CSensor):
    """An SHT30/31/35: temperature and relative humidity."""

    type_name = "sht3x"
    Config = SHT3xConfig
    config: SHT3xConfig
    i2c_addresses = (0x44, 0x45)
    #: The status register as `open()` read it (§4.11).
    status: int | None = None

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", 0.01), Channel("humidity", "%", 0.01)]

    def probe(self) -> None:
        """Read the status register (its CRC shows a Sensirion chip answers), then soft-reset
        so a heater or alert left on by another program is off."""
        self.status = self._command(_CMD_READ_STATUS, 0.0, 3, "status register")[0]
        self.transfer(lambda bus: _write_command(bus, self.address, _CMD_SOFT_RESET))
        self.hardware.sleep(_SOFT_RESET_S)

    def read(self) -> list[Reading]:
        """One single-shot measurement."""
        rep = self.config.repeatability
        t_raw, rh_raw = self._command(_CMD_MEASURE[rep], _MEASURE_S[rep], 6, "measurement")
        return [Reading("temperature", round(temperature_c(t_raw), 2), "°C"),
                Reading("humidity", round(humidity_pct(rh_raw), 2), "%")]

    def _command(self, command: int, wait_s: float, length: int, what: str) -> list[int]:
        """Send `command`, wait, read `length` bytes and check their CRCs; the words."""
        with self.bus.lock:  # command, wait and read are one transaction
            self.transfer(lambda bus: _write_command(bus, self.address, command))
            if wait_s:
                self.hardware.sleep(wait_s)
            # A read NACKs while the chip is still measuring (§4.4); transfer() retries it.
            data = self.transfer(lambda bus: read_bytes(bus, self.address, length))
        return self.crc_words(data, f"{what} (command 0x{command:04x})")

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """An SHT3x answers the status command with a word whose CRC is right and whose
        reserved bits are 0; other chips NACK or answer something else. The status command
        only reads; another chip at 0x44/0x45 (an INA219) takes its two bytes as a register
        pointer and a partial write, which it ignores."""
        try:
            _write_command(bus, address, _CMD_READ_STATUS)
            (status,) = words_with_crc(read_bytes(bus, address, 3), "status")
        except (OSError, ValueError):
            return None
        return None if status & _STATUS_RESERVED else {"type": cls.type_name, "address": address}


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [SHT3x]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.sht import SHT3xModel  # lazy: only the fake node asks

    return [SHT3xModel]
