"""Sensirion SCD40 / SCD41 CO2, temperature and humidity sensor, type `scd4x`.

The sensor runs in periodic measurement mode and produces a new sample every 5 s (datasheet
§3.5.1); each read returns the newest one, waiting up to one measurement period for it when
the last sample was already read, so keep `timeout_s` above 6 s. Quantities: `carbon_dioxide`
(ppm), `temperature` (°C) and `humidity` (% relative humidity). Settings are sent at every
start and never written to the sensor's EEPROM (no `persist_settings`, §3.9.1), so nothing
wears out.

Wiring: VDD to 3.3 V (header pin 1), GND, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
address is fixed at 0x62 (§3, Table 8).

Datasheet: "SCD4x CO2 sensor" (Sensirion, version 1.3, September 2022,
https://sensirion.com/products/catalog/SCD41). Commands and their execution times: §3.4, Table 9.

Example::

    [[sensor]]
    name = "office"
    type = "scd4x"
    interval_s = 60
    ## Height above sea level in metres, for the pressure compensation of CO2 (0 to 3000).
    altitude_m = 520
    ## Degrees the sensor reads too warm in its enclosure (0 to 20); the sensor's own default is 4.
    # temperature_offset_c = 4.0
    # address = 0x62
    # bus = 1
"""

from __future__ import annotations

import logging
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

# Commands (§3.4, Table 9), 16 bits, MSB first.
_CMD_START_PERIODIC = 0x21B1  # §3.5.1: idle only
_CMD_READ_MEASUREMENT = 0xEC05  # §3.5.2: 3 words; NACK when there is no new sample
_CMD_STOP_PERIODIC = 0x3F86  # §3.5.3: the sensor answers again only after 500 ms
_CMD_SET_TEMPERATURE_OFFSET = 0x241D  # §3.6.1: idle only
_CMD_SET_SENSOR_ALTITUDE = 0x2427  # §3.6.3: idle only
_CMD_GET_DATA_READY = 0xE4B8  # §3.8.2: 1 word; also while measuring
_CMD_GET_SERIAL_NUMBER = 0x3682  # §3.9.2: 3 words; idle only

_EXECUTION_S = 0.001  # read commands: wait before reading the answer (§3.3, Table 9)
_STOP_S = 0.5  # §3.5.3
_PERIOD_S = 5.0  # §3.5.1: signal update interval
_READY_POLL_S = 0.25
_READY_WAIT_S = _PERIOD_S + 0.5  # one period and some slack for the sensor's clock


def temperature_c(raw: int) -> float:
    """§3.5.2: T = -45 + 175 × word / (2**16 - 1). (Version 1.3 of the datasheet divides by 2**16,
    Sensirion's drivers by 2**16 - 1; they differ by less than one step.)"""
    return -45 + 175 * raw / 65535


def humidity_pct(raw: int) -> float:
    """§3.5.2: RH = 100 × word / (2**16 - 1)."""
    return 100 * raw / 65535


def temperature_offset_word(offset_c: float) -> int:
    """§3.6.1: the set_temperature_offset argument, offset × (2**16 - 1) / 175 (5.4 °C → 0x07E6)."""
    return round(offset_c * 65535 / 175)


def data_ready(status: int) -> bool:
    """§3.8.2: a new sample is waiting unless the low 11 bits of get_data_ready_status are 0."""
    return status & 0x07FF != 0


def serial_number(words: list[int]) -> int:
    """§3.9.2: the 48-bit serial number from its three words, first word most significant."""
    return words[0] << 32 | words[1] << 16 | words[2]


@dataclass(frozen=True)
class SCD4xConfig(I2CConfig):
    """`[[sensor]]` keys of type `scd4x`."""

    address: int = field_range(0x62, ge=0x62, le=0x62)
    altitude_m: int | None = field_range(None, ge=0, le=3000)  # §3.6.3: 0 to 3000 m
    # §3.6.1; the sensor's default is 4 °C. Beyond 20 °C, move the sensor away from the heat instead.
    temperature_offset_c: float | None = field_range(None, ge=0, le=20)


class SCD4x(I2CSensor):
    """An SCD40 or SCD41 in periodic measurement mode."""

    type_name = "scd4x"
    Config = SCD4xConfig
    config: SCD4xConfig
    i2c_addresses = (0x62,)
    serial_number: int | None = None

    def channels(self) -> list[Channel]:
        return [Channel("carbon_dioxide", "ppm", 1.0), Channel("temperature", "°C", 175 / 65535),
                Channel("humidity", "%", 100 / 65535)]

    def probe(self) -> None:
        # After a restart of sensord the sensor may still be measuring, and then refuses every
        # command but a few (Table 9): stop first. An idle sensor takes the stop too.
        try:
            self._send(_CMD_STOP_PERIODIC)
        except sensord.SensorError as exc:
            log.debug("%s: stop_periodic_measurement: %s", self.describe(), exc)  # absent: next step says so
        self.hardware.sleep(_STOP_S)
        self.serial_number = serial_number(self._read_words(_CMD_GET_SERIAL_NUMBER, 3, "serial number"))
        cfg = self.config
        if cfg.temperature_offset_c is not None:
            self._send(_CMD_SET_TEMPERATURE_OFFSET, temperature_offset_word(cfg.temperature_offset_c))
        if cfg.altitude_m is not None:
            self._send(_CMD_SET_SENSOR_ALTITUDE, cfg.altitude_m)
        self._send(_CMD_START_PERIODIC)

    def read(self) -> list[Reading]:
        waited = 0.0
        while not data_ready(self._read_words(_CMD_GET_DATA_READY, 1, "data ready status")[0]):
            if waited >= _READY_WAIT_S:
                raise self.error(f"no new measurement after waiting {waited:g} s (one comes every "
                                 f"{_PERIOD_S:g} s in periodic mode)")
            self.hardware.sleep(_READY_POLL_S)
            waited += _READY_POLL_S
        co2, t_raw, rh_raw = self._read_words(_CMD_READ_MEASUREMENT, 3, "measurement")
        return [Reading("carbon_dioxide", co2, "ppm"), Reading("temperature", round(temperature_c(t_raw), 3), "°C"),
                Reading("humidity", round(humidity_pct(rh_raw), 3), "%")]

    def close(self) -> None:
        # Idle, the sensor draws a fraction of its measuring current (§2.1).
        try:
            self._send(_CMD_STOP_PERIODIC)
        except sensord.SensorError as exc:
            log.warning("%s: cannot stop periodic measurement: %s", self.describe(), exc)

    @classmethod
    def identify(cls, bus: Any, address: int, *, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Ask get_serial_number (§3.9.2), or, if the sensor is measuring and refuses it,
        get_data_ready_status (§3.8.2); answers with valid CRCs identify an SCD4x. Both commands
        only read. `sleep` waits the 1 ms execution time (the hook runs in `sensord detect`,
        where there is no `Hardware`). Beware: another chip at 0x62 takes the command bytes as
        a write; an MCP4725 DAC would power its output down."""
        for command, count in ((_CMD_GET_SERIAL_NUMBER, 3), (_CMD_GET_DATA_READY, 1)):
            try:
                data = read_command(bus, address, command, count, wait_s=_EXECUTION_S, sleep=sleep)
                words_with_crc(data, "answer")
            except (OSError, ValueError):
                continue
            return {"type": cls.type_name, "address": address}
        return None

    # -- bus access ---------------------------------------------------------------------------

    def _send(self, command: int, *words: int) -> None:
        self.transfer(lambda bus: send_command(bus, self.address, command, *words))

    def _read_words(self, command: int, count: int, what: str) -> list[int]:
        # The bus lock is held over the 1 ms wait so no other driver's transaction comes between.
        data = self.transfer(lambda bus: read_command(bus, self.address, command, count, wait_s=_EXECUTION_S,
                                                        sleep=self.hardware.sleep))
        return self.crc_words(data, what)


@sensord.hookimpl
def sensord_register_sensors() -> list[type[sensord.Sensor]]:
    return [SCD4x]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.scd4x import SCD4xModel  # lazy: only the fake node asks

    return [SCD4xModel]
