"""Bosch BME280 (temperature, humidity, pressure) and BMP280 (temperature, pressure), types
`bme280` and `bmp280`.

Wiring (I2C, enabled with `dtparam=i2c_arm=on`): VIN/VCC to 3.3 V (header pin 1), GND to pin 6,
SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). CSB high (or open on most breakouts) selects I2C.
Address: SDO to GND gives 0x76, SDO to VDDIO gives 0x77 (BME280 datasheet §6.2); breakouts
differ in which one they strap, `sensord detect` tells.

Each read starts one forced-mode measurement (BME280 datasheet §3.3.2), waits the maximum
measurement time of Appendix B (§9.1), polls `status.measuring`, burst-reads the data registers
(§4.1: a burst read keeps them consistent) and compensates them with the chip's calibration
using the datasheet's integer formulas (§4.2.3; BMP280 datasheet §3.11.3). Between reads the
chip sleeps. Many boards sold as "BME280" carry a BMP280 (no humidity): the chip id tells.

Datasheets: BME280 BST-BME280-DS002,
https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf;
BMP280 BST-BMP280-DS001,
https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp280-ds001.pdf

Example::

    [[sensor]]
    name = "attic"
    type = "bme280"
    interval_s = 60
    address = 0x76
    ## Samples averaged per measurement: 1, 2, 4, 8 or 16. More is less noisy, slower
    ## (16 on all three takes up to 113 ms) and uses more energy.
    # oversampling_temperature = 1
    # oversampling_pressure = 1
    # oversampling_humidity = 1
    # bus = 1

    [[sensor]]
    name = "cellar"
    type = "bmp280"
    interval_s = 60
    address = 0x77
    oversampling_pressure = 4
"""

from __future__ import annotations

import dataclasses
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range

from ._bosch import Oversampling, chip_id_in, describe_ids, osrs_code, poll_register, soft_reset, trunc_div

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

# Registers (BME280 datasheet §5.3, Table 18; the BMP280 has the same map without humidity).
_REG_CALIB_TP = 0x88  # dig_T1..dig_P9, 0xA0 unused, dig_H1 at 0xA1 (§4.2.2, Table 16)
_CALIB_TP_LEN = 26
_REG_CALIB_H = 0xE1  # dig_H2..dig_H6 (§4.2.2, Table 16)
_CALIB_H_LEN = 7
_REG_ID = 0xD0  # §5.4.1
_REG_RESET = 0xE0  # §5.4.2: writing 0xB6 runs the power-on reset
_REG_CTRL_HUM = 0xF2  # §5.4.3: takes effect only at the next write to ctrl_meas
_REG_STATUS = 0xF3  # §5.4.4
_STATUS_MEASURING = 0x08  # bit 3: a conversion is running
_STATUS_IM_UPDATE = 0x01  # bit 0: NVM being copied to the image registers
_REG_CTRL_MEAS = 0xF4  # §5.4.5: osrs_t[7:5], osrs_p[4:2], mode[1:0]
_MODE_FORCED = 0b01  # §3.3.2: one measurement, then back to sleep
_REG_DATA = 0xF7  # press 0xF7..0xF9, temp 0xFA..0xFC, hum 0xFD..0xFE (§5.4.7-5.4.9)
_SKIPPED_20BIT = 0x80000  # what a skipped (or never run) temperature/pressure conversion reads
_SKIPPED_16BIT = 0x8000  # the same for humidity

_BME280_IDS = (0x60,)  # BME280 §5.4.1
# BMP280 §4.3.1: 0x58; Bosch's BMP280 driver also accepts 0x56 and 0x57 (engineering samples).
_BMP280_IDS = (0x56, 0x57, 0x58)
_STARTUP_S = 0.002  # BME280 §1, Table 1: start-up time after power-on (and soft reset) 2 ms
_POLL_S = 0.001  # between status polls
_POLLS = 20  # status polls before giving up: the measurement time already passed once

@dataclass(frozen=True)
class BMP280Config(I2CConfig):
    """`[[sensor]]` keys of a BMP280 (and the BME280's, which adds humidity)."""

    address: int = field_range(0x76, ge=0x76, le=0x77)
    oversampling_temperature: Oversampling = 1  # §3.5.1: ×1 suits weather monitoring
    oversampling_pressure: Oversampling = 1


@dataclass(frozen=True)
class BME280Config(BMP280Config):
    """`[[sensor]]` keys of a BME280."""

    oversampling_humidity: Oversampling = 1


@dataclass(frozen=True)
class Calibration:
    """The trimming parameters from the chip's NVM (BME280 §4.2.2, Table 16). The humidity
    ones stay 0 on a BMP280."""

    dig_T1: int
    dig_T2: int
    dig_T3: int
    dig_P1: int
    dig_P2: int
    dig_P3: int
    dig_P4: int
    dig_P5: int
    dig_P6: int
    dig_P7: int
    dig_P8: int
    dig_P9: int
    dig_H1: int = 0
    dig_H2: int = 0
    dig_H3: int = 0
    dig_H4: int = 0
    dig_H5: int = 0
    dig_H6: int = 0


def parse_calibration(tp: bytes | list[int], h: bytes | list[int] | None = None) -> Calibration:
    """Calibration from the 26 bytes at 0x88..0xA1 and, on a BME280, the 7 at 0xE1..0xE7."""
    cal = Calibration(*struct.unpack("<HhhHhhhhhhhh", bytes(tp[:24])))
    if h is None:
        return cal
    h = bytes(h)
    # dig_H4 and dig_H5 are signed 12-bit values sharing 0xE5 (Table 16): H4 = E4[7:0]:E5[3:0],
    # H5 = E6[7:0]:E5[7:4]; the sign comes from the whole byte.
    e4, e6 = struct.unpack("<bxb", h[3:6])
    return dataclasses.replace(cal, dig_H1=tp[25], dig_H2=struct.unpack("<h", h[0:2])[0], dig_H3=h[2],
                               dig_H4=e4 * 16 | (h[4] & 0x0F), dig_H5=e6 * 16 | (h[4] >> 4),
                               dig_H6=struct.unpack("<b", h[6:7])[0])


def compensate_temperature(adc_t: int, cal: Calibration) -> tuple[int, int]:
    """Temperature in 0.01 °C and `t_fine`, which the other two formulas need (§4.2.3)."""
    var1 = (((adc_t >> 3) - (cal.dig_T1 << 1)) * cal.dig_T2) >> 11
    var2 = (((((adc_t >> 4) - cal.dig_T1) * ((adc_t >> 4) - cal.dig_T1)) >> 12) * cal.dig_T3) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_pressure(adc_p: int, t_fine: int, cal: Calibration) -> int:
    """Pressure in Pa as Q24.8 (divide by 256), with the 64-bit integer formula of §4.2.3.
    0 when dig_P1 is 0, as the datasheet's code returns (a division by zero otherwise)."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * cal.dig_P6
    var2 = var2 + ((var1 * cal.dig_P5) << 17)
    var2 = var2 + (cal.dig_P4 << 35)
    var1 = ((var1 * var1 * cal.dig_P3) >> 8) + ((var1 * cal.dig_P2) << 12)
    var1 = (((1 << 47) + var1) * cal.dig_P1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = trunc_div(((p << 31) - var2) * 3125, var1)
    var1 = (cal.dig_P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (cal.dig_P8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (cal.dig_P7 << 4)


def compensate_humidity(adc_h: int, t_fine: int, cal: Calibration) -> int:
    """Relative humidity in % as Q22.10 (divide by 1024), 0..100 %, formula of §4.2.3."""
    v = t_fine - 76800
    v = ((((adc_h << 14) - (cal.dig_H4 << 20) - (cal.dig_H5 * v)) + 16384) >> 15) * (
        ((((((v * cal.dig_H6) >> 10) * (((v * cal.dig_H3) >> 11) + 32768)) >> 10) + 2097152)
         * cal.dig_H2 + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * cal.dig_H1) >> 4)
    v = min(max(v, 0), 419430400)  # clamp to 0..100 %RH as the datasheet's code does
    return v >> 12


def measurement_time_s(samples_t: int, samples_p: int, samples_h: int = 0) -> float:
    """The longest a forced measurement takes (BME280 §9.1, t_measure,max), from the
    oversampling factors (1..16; 0 when that quantity is skipped)."""
    ms = 1.25 + 2.3 * samples_t
    if samples_p:
        ms += 2.3 * samples_p + 0.575
    if samples_h:
        ms += 2.3 * samples_h + 0.575
    return ms / 1000




class BMP280(I2CSensor):
    """A BMP280: temperature and pressure. `BME280` adds humidity."""

    type_name = "bmp280"
    Config = BMP280Config
    config: BMP280Config
    i2c_addresses = (0x76, 0x77)
    CHIP_IDS: ClassVar[tuple[int, ...]] = _BMP280_IDS
    _calibration: Calibration | None = None

    @property
    def _has_humidity(self) -> bool:
        return isinstance(self.config, BME280Config)

    def channels(self) -> list[Channel]:
        humidity = [Channel("humidity", "%", 0.01)] if self._has_humidity else []
        return [Channel("temperature", "°C", 0.01), *humidity, Channel("pressure", "hPa", 0.01)]

    def probe(self) -> None:
        """Check the chip id, reset the chip to a known state and load its calibration."""
        chip_id = self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_ID))
        if chip_id not in self.CHIP_IDS:
            raise self.error(f"chip id 0x{chip_id:02x}, expected {describe_ids(self.CHIP_IDS)}"
                             f"{_other_chip_hint(chip_id)}")
        soft_reset(self, _REG_RESET, _STARTUP_S)
        self._wait_status_clear(_STATUS_IM_UPDATE, "NVM copy after reset")
        tp = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, _REG_CALIB_TP, _CALIB_TP_LEN))
        h = None
        if self._has_humidity:
            h = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, _REG_CALIB_H, _CALIB_H_LEN))
        cal = parse_calibration(tp, h)
        if cal.dig_T1 == 0 or cal.dig_P1 == 0:
            # An NVM reading all zeros is a bus or chip fault, and dig_P1 = 0 divides by zero.
            raise self.error(f"calibration NVM invalid (dig_T1={cal.dig_T1}, dig_P1={cal.dig_P1}, "
                             f"expected non-zero)")
        self._calibration = cal

    def read(self) -> list[Reading]:
        """One forced measurement, compensated."""
        cal = self._calibration
        if cal is None:
            raise self.error("read() before open()")
        cfg = self.config
        osrs_t, osrs_p = osrs_code(cfg.oversampling_temperature), osrs_code(cfg.oversampling_pressure)
        samples_h = cfg.oversampling_humidity if isinstance(cfg, BME280Config) else 0
        osrs_h = osrs_code(samples_h)
        length = 8 if osrs_h else 6
        with self.bus.lock:  # one measurement is one transaction: nobody else starts one meanwhile
            if osrs_h:
                # ctrl_hum first: it takes effect only with the ctrl_meas write (§5.4.3). Written
                # every time so a chip that reset itself (brown-out) still measures humidity.
                self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_CTRL_HUM, osrs_h))
            ctrl_meas = osrs_t << 5 | osrs_p << 2 | _MODE_FORCED
            self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_CTRL_MEAS, ctrl_meas))
            self.hardware.sleep(measurement_time_s(cfg.oversampling_temperature, cfg.oversampling_pressure,
                                                   samples_h))
            self._wait_status_clear(_STATUS_MEASURING, "measurement")
            data = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, _REG_DATA, length))
        adc_p = data[0] << 12 | data[1] << 4 | data[2] >> 4
        adc_t = data[3] << 12 | data[4] << 4 | data[5] >> 4
        if adc_t == _SKIPPED_20BIT or adc_p == _SKIPPED_20BIT:
            raise self.error(f"no measurement in the data registers (raw temperature 0x{adc_t:05x}, "
                             f"pressure 0x{adc_p:05x}; 0x80000 means skipped): did the chip reset?")
        centi_c, t_fine = compensate_temperature(adc_t, cal)
        readings = [Reading("temperature", centi_c / 100, "°C")]
        if osrs_h:
            adc_h = data[6] << 8 | data[7]
            if adc_h == _SKIPPED_16BIT:
                raise self.error("no humidity in the data registers (raw 0x8000 means skipped)")
            readings.append(Reading("humidity", round(compensate_humidity(adc_h, t_fine, cal) / 1024, 2), "%"))
        pascal = compensate_pressure(adc_p, t_fine, cal) / 256
        readings.append(Reading("pressure", round(pascal / 100, 2), "hPa"))
        return readings

    def _wait_status_clear(self, bit: int, what: str) -> None:
        done, status = poll_register(self, _REG_STATUS, lambda value: not value & bit, polls=_POLLS,
                                     interval_s=_POLL_S)
        if done:
            return
        raise self.error(f"{what} not finished: status 0x{status:02x} still has bit 0x{bit:02x} set "
                         f"after {_POLLS} polls")

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the chip id register (0xD0) holds one of `CHIP_IDS`."""
        return {"type": cls.type_name, "address": address} if chip_id_in(bus, address, _REG_ID, cls.CHIP_IDS) else None


class BME280(BMP280):
    """A BME280: temperature, humidity and pressure."""

    type_name = "bme280"
    Config = BME280Config
    config: BME280Config
    CHIP_IDS = _BME280_IDS


def _other_chip_hint(chip_id: int) -> str:
    if chip_id in _BMP280_IDS:
        return ' (a BMP280, without humidity: use type = "bmp280")'
    if chip_id in _BME280_IDS:
        return ' (a BME280: use type = "bme280" to read humidity too)'
    return ""


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [BME280, BMP280]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.bme280 import BME280Model, BMP280Model  # lazy: only the fake node asks

    return [BMP280Model, BME280Model]
