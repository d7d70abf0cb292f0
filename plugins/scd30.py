"""Sensirion SCD30 CO2, temperature and humidity module, type `scd30`.

The module measures continuously, one sample every `measurement_interval_s` (2 to 1800 s,
Interface Description §1.4.3); each read waits for the data-ready status (§1.4.4) and reads
the newest sample (§1.4.5): CO2 in ppm, temperature in °C and relative humidity in %, each a
big-endian IEEE 754 float sent as two words with a CRC-8 each (§1.1.3, §1.5). Keep `timeout_s`
above the measurement interval plus one second, and `interval_s` no shorter than it. With
`pressure_hpa` the CO2 reading is compensated for the ambient pressure (§1.4.1); without it the
module uses its own setting (altitude compensation, or none). The measurement interval is kept
in the module's non-volatile memory, so it is written only when it differs. Quantities:
`carbon_dioxide` (ppm), `temperature` (°C) and `humidity` (%).

Clock stretching: the SCD30 holds SCL low for up to 30 ms in a frame, and up to 150 ms once
a day (§1.1), and the hardware I2C controller of the Raspberry Pi (the BCM2835 design, up to
the Pi 4) mishandles clock stretching: bits get lost, and reads fail with CRC errors or NACKs.
Either put the SCD30 on a software I2C bus, which stretches correctly::

    dtoverlay=i2c-gpio,bus=3,i2c_gpio_sda=17,i2c_gpio_scl=27,i2c_gpio_delay_us=4

(in /boot/firmware/config.txt, then `bus = 3`, SDA on GPIO17, SCL on GPIO27, pull-ups on the
module), or slow the hardware bus so that the stretching fits in its timeout, e.g.
`dtparam=i2c_arm_baudrate=10000` (which slows every chip on bus 1). Sensirion recommends at
most 50 kHz anyway (§1.1).

Wiring (hardware bus): VIN to 3.3 V (header pin 1), GND, SDA to GPIO2 (pin 3), SCL to GPIO3
(pin 5), SEL open or to GND (I2C, not Modbus). The address is fixed at 0x61 (§1.1.1).

Datasheet: "Interface Description Sensirion SCD30 Sensor Module" (version 1.0, May 2020,
https://sensirion.com/products/catalog/SCD30). Commands: §1.4.

Example::

    [[sensor]]
    name = "bedroom"
    type = "scd30"
    interval_s = 30
    ## Seconds between the module's own measurements (2 to 1800), kept in its memory.
    measurement_interval_s = 5
    ## Ambient pressure in hPa (700 to 1400) for the CO2 compensation; unset leaves the module's.
    # pressure_hpa = 1013
    # address = 0x61
    # bus = 1
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, field_range, words_with_crc
from sensord.i2c import read_command, send_command

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

log = logging.getLogger(__name__)

# Commands (§1.4), 16 bits, MSB first.
_CMD_START_CONTINUOUS = 0x0010  # §1.4.1: argument ambient pressure in mbar, 0 = no compensation
_CMD_STOP_CONTINUOUS = 0x0104  # §1.4.2
_CMD_MEASUREMENT_INTERVAL = 0x4600  # §1.4.3: with an argument sets, without one reads (1 word)
_CMD_GET_DATA_READY = 0x0202  # §1.4.4: 1 word, 1 when a sample waits
_CMD_READ_MEASUREMENT = 0x0300  # §1.4.5: 6 words, three big-endian floats
_CMD_FIRMWARE_VERSION = 0xD100  # §1.4.9: 1 word, major and minor version

# Between a read command and reading its answer; Sensirion's drivers wait 3 ms. The module
# also stretches the clock meanwhile (§1.1).
_EXECUTION_S = 0.003
_READY_POLL_S = 0.1
_READY_SLACK_S = 1.0  # the module's interval is its own clock's; allow for drift


def decode_float(high: int, low: int) -> float:
    """§1.5: a float from its two words, most significant first (big-endian IEEE 754)."""
    value: float = struct.unpack(">f", (high << 16 | low).to_bytes(4, "big"))[0]
    return value


def measurement(words: list[int]) -> tuple[float, float, float]:
    """CO2 in ppm, temperature in °C and humidity in % from read_measurement's six words (§1.4.5)."""
    co2, temperature, humidity = (decode_float(words[i], words[i + 1]) for i in (0, 2, 4))
    return co2, temperature, humidity


def firmware_version(word: int) -> str:
    """§1.4.9: major version in the high byte, minor in the low one."""
    return f"{word >> 8}.{word & 0xFF}"


@dataclass(frozen=True)
class SCD30Config(I2CConfig):
    """`[[sensor]]` keys of type `scd30`."""

    address: int = field_range(0x61, ge=0x61, le=0x61)
    measurement_interval_s: int = field_range(2, ge=2, le=1800)  # §1.4.3; the module's default is 2
    pressure_hpa: int | None = field_range(None, ge=700, le=1400)  # §1.4.1: 700 to 1400 mbar


class SCD30(I2CSensor):
    """An SCD30 in continuous measurement mode."""

    type_name = "scd30"
    Config = SCD30Config
    config: SCD30Config
    i2c_addresses = (0x61,)
    firmware: str | None = None

    def channels(self) -> list[Channel]:
        return [Channel("carbon_dioxide", "ppm", 0.1), Channel("temperature", "°C", 0.01),
                Channel("humidity", "%", 0.01)]

    def probe(self) -> None:
        self.firmware = firmware_version(self._read_words(_CMD_FIRMWARE_VERSION, 1, "firmware version")[0])
        interval = self.config.measurement_interval_s
        stored = self._read_words(_CMD_MEASUREMENT_INTERVAL, 1, "measurement interval")[0]
        if stored != interval:
            # Kept in non-volatile memory (§1.4.3): write only a change.
            log.info("%s: measurement interval %d s, was %d s", self.describe(), interval, stored)
            self._send(_CMD_MEASUREMENT_INTERVAL, interval)
        # Also when already measuring: the command sets the pressure compensation anew (§1.4.1).
        self._send(_CMD_START_CONTINUOUS, self.config.pressure_hpa or 0)

    def read(self) -> list[Reading]:
        limit = self.config.measurement_interval_s + _READY_SLACK_S
        waited = 0.0
        while self._read_words(_CMD_GET_DATA_READY, 1, "data ready status")[0] != 1:
            if waited >= limit:
                raise self.error(f"no new measurement after waiting {waited:g} s (one comes every "
                                 f"{self.config.measurement_interval_s} s)")
            self.hardware.sleep(_READY_POLL_S)
            waited += _READY_POLL_S
        co2, temperature, humidity = measurement(self._read_words(_CMD_READ_MEASUREMENT, 6, "measurement"))
        if not all(math.isfinite(v) for v in (co2, temperature, humidity)):
            raise self.error(f"measurement not a number (CO2 {co2}, temperature {temperature}, humidity {humidity})")
        return [Reading("carbon_dioxide", round(co2, 1), "ppm"), Reading("temperature", round(temperature, 2), "°C"),
                Reading("humidity", round(humidity, 2), "%")]

    def close(self) -> None:
        # The module keeps measuring (about 19 mA) until told to stop, even across a power cycle.
        try:
            self._send(_CMD_STOP_CONTINUOUS)
        except sensord.SensorError as exc:
            log.warning("%s: cannot stop continuous measurement: %s", self.describe(), exc)

    @classmethod
    def identify(cls, bus: Any, address: int, *, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Ask the firmware version (§1.4.9), which only reads; an answer with a valid CRC
        identifies an SCD30. Another chip at 0x61 receives the two bytes 0xD1 0x00 as a write."""
        try:
            data = read_command(bus, address, _CMD_FIRMWARE_VERSION, 1, wait_s=_EXECUTION_S, sleep=sleep)
            words_with_crc(data, "firmware version")
        except (OSError, ValueError):
            return None
        return {"type": cls.type_name, "address": address}

    # -- bus access ---------------------------------------------------------------------------

    def _send(self, command: int, *words: int) -> None:
        self.transfer(lambda bus: send_command(bus, self.address, command, *words))

    def _read_words(self, command: int, count: int, what: str) -> list[int]:
        # The bus lock is held over the wait so no other driver's transaction comes between.
        data = self.transfer(lambda bus: read_command(bus, self.address, command, count, wait_s=_EXECUTION_S,
                                                      sleep=self.hardware.sleep))
        return self.crc_words(data, what)


@sensord.hookimpl
def sensord_register_sensors() -> list[type[sensord.Sensor]]:
    return [SCD30]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.scd30 import SCD30Model  # lazy: only the fake node asks

    return [SCD30Model]
