"""HDC1080 temperature and relative-humidity sensor (Texas Instruments), type `hdc1080`.

Wiring: VDD to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
address is fixed at 0x40, which HTU21D/Si7021, INA219/INA226 and PCA9685 boards also use by
default: to run an HDC1080 beside one of those, put it on a second bus (a Pi 4 or 5 has
`dtoverlay=i2c3`; `dtoverlay=i2c-gpio` adds one on any two free GPIOs, usually /dev/i2c-3) and set
`bus`, or behind an I2C multiplexer.

Datasheet: Texas Instruments "HDC1080 Low Power, High Accuracy Digital Humidity Sensor with
Temperature Sensor" (SNAS672): §8.5.1 (register map: temperature 0x00, humidity 0x01,
configuration 0x02, serial id 0xFB-0xFD, manufacturer id 0xFE = 0x5449, device id 0xFF =
0x1050), §8.6.1 and §8.6.2 (temperature = raw / 2^16 × 165 - 40 °C, humidity = raw / 2^16 ×
100 %RH), §8.6.3 (configuration: RST bit 15, HEAT 13, MODE 12, BTST 11, TRES 10, HRES 9:8;
reset value 0x1000), §8.4.2 (a measurement starts when the pointer 0x00 is written; the data
is read after the conversion, reads are NACKed until then), and the electrical
characteristics' conversion times (temperature 6.35 ms at 14 bits, 3.65 ms at 11; humidity
6.50, 3.85 and 2.50 ms at 14, 11 and 8 bits, typical).

`open()` checks the manufacturer and device ids and writes the configuration: heater off,
temperature and humidity measured in one sequence (MODE 1), the configured resolutions. A read
writes the pointer 0x00, waits both conversion times plus a quarter (the datasheet gives them as
typical) and reads four bytes, temperature then humidity, most significant byte first. There is
no CRC. When BTST says the supply is below 2.8 V, the read is an error: the accuracy is then
not specified.

`sensord detect` recognises the chip by its id registers.

Example::

    [[sensor]]
    name = "pantry"
    type = "hdc1080"
    interval_s = 60
    ## Resolution in bits: temperature 14 or 11, humidity 14, 11 or 8 (fewer bits convert faster).
    # temperature_bits = 14
    # humidity_bits = 14
    # bus = 1
    # address = 0x40
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, LockedBus, Reading, Sensor, field_range, read_bytes
from sensord.i2c import read_id_words

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x40  # fixed (§8.5.1)

# Register pointers (§8.5.1).
_REG_TEMPERATURE = 0x00
_REG_CONFIG = 0x02
_REG_MANUFACTURER_ID = 0xFE
_REG_DEVICE_ID = 0xFF

MANUFACTURER_ID = 0x5449  # "TI"
DEVICE_ID = 0x1050

# Configuration register (§8.6.3).
_MODE_SEQUENCE = 0x1000  # bit 12: temperature and humidity in one sequence, temperature first
_BTST = 0x0800  # bit 11, read-only: supply below 2.8 V
_TRES = {14: 0, 11: 1}  # bit 10
_HRES = {14: 0b00, 11: 0b01, 8: 0b10}  # bits 9:8
_CONFIG_RESERVED = 0x40FF  # bit 14 and bits 7:0 read 0

#: Typical conversion times in seconds (electrical characteristics), by resolution in bits.
_TEMPERATURE_S = {14: 0.00635, 11: 0.00365}
_HUMIDITY_S = {14: 0.0065, 11: 0.00385, 8: 0.0025}
_CONVERSION_MARGIN = 1.25

TemperatureBits = Literal[14, 11]
HumidityBits = Literal[14, 11, 8]


@dataclass(frozen=True)
class HDC1080Config(I2CConfig):
    """`[[sensor]]` keys of type `hdc1080`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=DEFAULT_ADDRESS, le=DEFAULT_ADDRESS)
    #: Temperature resolution, TRES: 14 or 11 bits.
    temperature_bits: TemperatureBits = 14
    #: Humidity resolution, HRES: 14, 11 or 8 bits.
    humidity_bits: HumidityBits = 14


def temperature_celsius(raw: int) -> float:
    """°C from the temperature register (§8.6.1): raw / 2^16 × 165 - 40. 0x0000 -> -40,
    0x6000 -> 21.875, 0x8000 -> 42.5."""
    return raw / 65536 * 165.0 - 40.0


def humidity_percent(raw: int) -> float:
    """%RH from the humidity register (§8.6.2): raw / 2^16 × 100. 0x8000 -> 50."""
    return raw / 65536 * 100.0


def config_word(temperature_bits: int, humidity_bits: int) -> int:
    """The configuration register for a measurement sequence at these resolutions, heater off."""
    return _MODE_SEQUENCE | _TRES[temperature_bits] << 10 | _HRES[humidity_bits] << 8


def conversion_s(temperature_bits: int, humidity_bits: int) -> float:
    """How long to wait after starting a sequence: both typical conversion times, plus a quarter."""
    return (_TEMPERATURE_S[temperature_bits] + _HUMIDITY_S[humidity_bits]) * _CONVERSION_MARGIN


def _word(data: bytes | list[int]) -> int:
    return data[0] << 8 | data[1]


class HDC1080(I2CSensor):
    """Texas Instruments HDC1080: temperature (°C) and relative humidity (%)."""

    type_name = "hdc1080"
    Config = HDC1080Config
    config: HDC1080Config
    i2c_addresses = (DEFAULT_ADDRESS,)

    def channels(self) -> list[Channel]:
        cfg = self.config
        return [Channel("temperature", "°C", 165.0 / 2**cfg.temperature_bits),
                Channel("humidity", "%", 100.0 / 2**cfg.humidity_bits)]

    def _read_register(self, register: int) -> int:
        return _word(self.transfer(lambda bus: bus.read_i2c_block_data(self.address, register, 2)))

    def probe(self) -> None:
        """Check the ids, then set measurement sequence and resolutions with the heater off."""
        manufacturer = self._read_register(_REG_MANUFACTURER_ID)
        if manufacturer != MANUFACTURER_ID:
            raise self.error(f"manufacturer id 0x{manufacturer:04x}, expected 0x{MANUFACTURER_ID:04x} "
                             f"(Texas Instruments)")
        device = self._read_register(_REG_DEVICE_ID)
        if device != DEVICE_ID:
            raise self.error(f"device id 0x{device:04x}, expected 0x{DEVICE_ID:04x} (HDC1080)")
        word = config_word(self.config.temperature_bits, self.config.humidity_bits)
        data = list(word.to_bytes(2, "big"))
        self.transfer(lambda bus: bus.write_i2c_block_data(self.address, _REG_CONFIG, data))

    def read(self) -> list[Reading]:
        cfg = self.config
        if self._read_register(_REG_CONFIG) & _BTST:
            raise self.error("supply below 2.8 V (BTST set): readings would be out of specification")

        def measure(bus: LockedBus) -> bytes:
            bus.write_byte(self.address, _REG_TEMPERATURE)  # starts the sequence
            self.hardware.sleep(conversion_s(cfg.temperature_bits, cfg.humidity_bits))
            return read_bytes(bus, self.address, 4)

        data = self.transfer(measure)
        return [Reading("temperature", temperature_celsius(_word(data[0:2])), "°C"),
                Reading("humidity", humidity_percent(_word(data[2:4])), "%")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the manufacturer and device ids are the HDC1080's.

        Reads the configuration register (0x02) first and goes on only when it answers with its
        reserved bits 0: the pointer 0xFE that selects the manufacturer id is the soft-reset
        command of an HTU21D/Si7021 at the same address, which does not answer a read of 0x02.
        Only reads: pointer writes other than 0x00 and 0x01 start nothing."""
        if address != DEFAULT_ADDRESS:
            return None
        ids = read_id_words(bus, address, _REG_MANUFACTURER_ID, _REG_DEVICE_ID, guard=(_REG_CONFIG, _CONFIG_RESERVED))
        if ids != [MANUFACTURER_ID, DEVICE_ID]:
            return None
        return {"type": cls.type_name, "address": address}


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [HDC1080]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.hdc1080 import HDC1080Model  # lazy: only the fake node asks

    return [HDC1080Model]
