"""Sensirion SGP40 VOC sensor (metal-oxide gas sensor with a hotplate), type `sgp40`.

Each read sends sgp40_measure_raw (datasheet §3.1, Table 9) and, 30 ms later, reads the raw
signal SRAW: a 16-bit number of ticks proportional to the logarithm of the resistance of the
sensing layer, with a CRC-8. The first measurement switches the hotplate on, and it stays on
between reads (about 3 mA); closing the sensor switches it off (sgp40_heater_off, Table 14).
At start the sensor's serial number is read and its built-in self-test run (§3.3, Table 13).
Quantities: `voc_raw` (ticks) and, see below, `voc_index` (1 to 500, 100 is the average of the
last day's air).

Humidity compensation (§3.1, Table 10): the sensor corrects SRAW for humidity when it is told
the relative humidity and temperature. Set both `humidity_pct` and `temperature_c` to fixed
values that describe the room; sensord cannot yet hand one sensor's readings to another, so
they are not taken from a neighbouring BME280 or SHT4x. Unset, compensation stays off (the
sensor's defaults, 50 % and 25 °C, are sent).

VOC index: Sensirion's gas index algorithm turns SRAW into the VOC index. It is published under
the BSD-3-Clause licence as the PyPI package `sensirion-gas-index-algorithm` (not in Debian);
sensord uses it when it is installed (`pip install 'sensord[voc]'`, or into the same environment)
and otherwise publishes `voc_raw` only. It is a C extension published as source only, so pip
compiles it: install a compiler and Python's headers first (`apt install build-essential
python3-dev`). The algorithm expects one sample every `voc_sampling_s`
seconds (Sensirion: 1 s), so set `interval_s` to the same value. It learns the room's baseline
for hours; for its first 45 samples it has no index, and none is published. Its state lives in
memory, so a restart of sensord begins the learning again.

Wiring: VDD to 3.3 V (header pin 1), GND, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
address is fixed at 0x59 (§4.2).

Datasheet: "SGP40 Indoor Air Quality Sensor for VOC Measurements" (Sensirion, version 1.0,
July 2020, https://sensirion.com/products/catalog/SGP40). Commands: §4, Tables 9-15.

Example::

    [[sensor]]
    name = "living_voc"
    type = "sgp40"
    interval_s = 1
    ## Fixed relative humidity (%) and temperature (°C) for the humidity compensation; both or neither.
    # humidity_pct = 45
    # temperature_c = 21
    ## The VOC index: unset when sensirion-gas-index-algorithm is installed, true requires it, false never.
    # voc_index = true
    ## Seconds between samples the VOC index algorithm expects (1 to 10): interval_s above.
    # voc_sampling_s = 1.0
    # self_test = true
    # address = 0x59
    # bus = 1
"""

from __future__ import annotations

import importlib
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

# Commands, 16 bits, MSB first, never followed by a CRC (§4.1).
_CMD_MEASURE_RAW = 0x260F  # Table 9: two argument words, humidity and temperature ticks
_CMD_SELF_TEST = 0x280E  # Table 12
_CMD_HEATER_OFF = 0x3615  # Table 14: back to idle mode
# Not in datasheet version 1.0; Sensirion's SGP40 driver and the SGP41 datasheet give it: 3 words.
_CMD_SERIAL_NUMBER = 0x3682

_MEASURE_S = 0.030  # §3.1: SRAW is returned after 30 ms; the sensor NACKs until then (§4.5)
# §3.3: the result is readable after 250 ms; Sensirion's driver waits 320 ms.
_SELF_TEST_S = 0.320
_SERIAL_S = 0.001
_SELF_TEST_PASSED, _SELF_TEST_FAILED = 0xD400, 0x4B00  # Table 13

VOC_PACKAGE = "sensirion_gas_index_algorithm"  # PyPI: sensirion-gas-index-algorithm


def humidity_ticks(humidity_pct: float) -> int:
    """Table 10: RH in ticks = RH / % × 65535 / 100 (50 % → 0x8000)."""
    return round(humidity_pct * 65535 / 100)


def temperature_ticks(temperature_c: float) -> int:
    """Table 10: T in ticks = (T / °C + 45) × 65535 / 175 (25 °C → 0x6666)."""
    return round((temperature_c + 45) * 65535 / 175)


def serial_number(words: list[int]) -> int:
    """The 48-bit serial number from its three words, first word most significant."""
    return words[0] << 32 | words[1] << 16 | words[2]


def voc_algorithm_class() -> Any | None:
    """Sensirion's `VocAlgorithm` class when its package imports, else None."""
    try:
        module = importlib.import_module(f"{VOC_PACKAGE}.voc_algorithm")
    except ImportError:
        return None
    return module.VocAlgorithm


@dataclass(frozen=True)
class SGP40Config(I2CConfig):
    """`[[sensor]]` keys of type `sgp40`."""

    address: int = field_range(0x59, ge=0x59, le=0x59)
    # Table 10's range: 0 to 100 % and -45 to 130 °C (the compensation is tuned for Table 4's).
    humidity_pct: float | None = field_range(None, ge=0, le=100)
    temperature_c: float | None = field_range(None, ge=-45, le=130)
    voc_index: bool | None = None
    voc_sampling_s: float = field_range(1.0, ge=1.0, le=10.0)
    self_test: bool = True

    def __post_init__(self) -> None:
        if (self.humidity_pct is None) != (self.temperature_c is None):
            missing = "temperature_c" if self.temperature_c is None else "humidity_pct"
            raise ValueError(f"{missing}: needed too, the humidity compensation takes both humidity_pct and "
                             f"temperature_c")


class SGP40(I2CSensor):
    """An SGP40 in VOC measurement mode, with the VOC index when Sensirion's algorithm is installed."""

    type_name = "sgp40"
    Config = SGP40Config
    config: SGP40Config
    i2c_addresses = (0x59,)
    serial_number: int | None = None
    _voc: Any = None  # the VocAlgorithm instance, once open

    def _wants_voc(self) -> bool:
        return self.config.voc_index is not False and (self.config.voc_index or voc_algorithm_class() is not None)

    def channels(self) -> list[Channel]:
        index = [Channel("voc_index", "", 1.0)] if self._wants_voc() else []
        return [Channel("voc_raw", "", 1.0), *index]

    def probe(self) -> None:
        self.serial_number = serial_number(self._read_words(_CMD_SERIAL_NUMBER, 3, _SERIAL_S, "serial number"))
        if self.config.self_test:
            (result,) = self._read_words(_CMD_SELF_TEST, 1, _SELF_TEST_S, "self-test")
            if result != _SELF_TEST_PASSED:
                verdict = "one or more tests failed" if result == _SELF_TEST_FAILED else "an unknown result"
                raise self.error(f"self-test answered 0x{result:04x} ({verdict}), expected 0x{_SELF_TEST_PASSED:04x}: "
                                 f"hotplate or sensing layer damaged")
        self._voc = None
        if self._wants_voc():
            algorithm = voc_algorithm_class()
            if algorithm is None:
                raise self.error("voc_index = true needs Sensirion's gas index algorithm: pip install "
                                 "'sensord[voc]' (the package sensirion-gas-index-algorithm), or set voc_index = "
                                 "false for the raw signal only")
            self._voc = algorithm(self.config.voc_sampling_s)

    def read(self) -> list[Reading]:
        cfg = self.config
        humidity = 0x8000 if cfg.humidity_pct is None else humidity_ticks(cfg.humidity_pct)
        temperature = 0x6666 if cfg.temperature_c is None else temperature_ticks(cfg.temperature_c)
        (sraw,) = self._read_words(_CMD_MEASURE_RAW, 1, _MEASURE_S, "raw signal", humidity, temperature)
        readings = [Reading("voc_raw", sraw, "")]
        if self._voc is not None:
            index = int(self._voc.process(sraw))
            if index > 0:  # 0 while the algorithm has not yet seen enough samples
                readings.append(Reading("voc_index", index, ""))
        return readings

    def close(self) -> None:
        # The hotplate stays on until told otherwise (§3.1).
        try:
            self.transfer(lambda bus: send_command(bus, self.address, _CMD_HEATER_OFF))
        except sensord.SensorError as exc:
            log.warning("%s: cannot switch the hotplate off: %s", self.describe(), exc)

    @classmethod
    def identify(cls, bus: Any, address: int, *, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Ask the serial number, which only reads; three words with valid CRCs identify an
        SGP40 (or an SGP41, which answers the same at the same address). Another chip at 0x59
        receives the bytes 0x36 0x82 as a write."""
        try:
            data = read_command(bus, address, _CMD_SERIAL_NUMBER, 3, wait_s=_SERIAL_S, sleep=sleep)
            words_with_crc(data, "serial number")
        except (OSError, ValueError):
            return None
        return {"type": cls.type_name, "address": address}

    def _read_words(self, command: int, count: int, wait_s: float, what: str, *args: int) -> list[int]:
        # The bus lock is held over the wait: the sensor NACKs any transfer meanwhile (§4.5).
        data = self.transfer(lambda bus: read_command(bus, self.address, command, count, wait_s=wait_s,
                                                      sleep=self.hardware.sleep, words=args))
        return self.crc_words(data, what)


@sensord.hookimpl
def sensord_register_sensors() -> list[type[sensord.Sensor]]:
    return [SGP40]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.sgp40 import SGP40Model  # lazy: only the fake node asks

    return [SGP40Model]
