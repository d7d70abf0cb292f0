"""Bosch BMP388 and BMP390 barometric pressure sensors (temperature and pressure), types `bmp388`
and `bmp390`.

Wiring (I2C, enabled with `dtparam=i2c_arm=on`): VIN/VCC to 3.3 V (header pin 1), GND to pin 6,
SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). CSB high (or open on most breakouts) selects I2C.
Address: SDO to GND gives 0x76, SDO to VDDIO gives 0x77 (datasheet, I2C interface); most breakouts
pull SDO up (0x77), `sensord detect` tells. The two chips share the register map and the
compensation; the chip id at register 0x00 tells them apart (0x50 BMP388, 0x60 BMP390), and a
config naming the other type gets an error saying which one is there.

Each read starts one forced-mode measurement (§3.3, power modes: PWR_CTRL with press_en, temp_en
and mode forced), waits the conversion time by the datasheet's measurement-time formula (234 µs
+ 392 µs + 2^osr_p x 2020 µs for pressure + 163 µs + 2^osr_t x 2020 µs for temperature: 4.8 ms
at x1/x1, 130 ms at x32/x32), polls the
status register (0x03) until drdy_press and drdy_temp are set, checks the error register (0x02:
fatal_err, cmd_err, conf_err), burst-reads the six data registers (0x04-0x09, pressure then
temperature, 24 bits each, least significant byte first) and compensates them with the
datasheet's floating-point formulas (§9.2, §9.3) from the calibration NVM (NVM_PAR_T1..P11 at
0x31-0x45, scaled to PAR_T1..P11 by the powers of two of §9.1). Between reads the chip sleeps.
A fatal error makes the driver soft-reset and reconfigure the chip before failing that read;
a power-on reset behind its back (EVENT.por_detected) makes it rewrite its settings first.

The IIR filter (§3.4) smooths pressure across measurements; in forced mode each read is one
filter step, so coefficient 3 at a 60 s interval follows a change over a few minutes. The
datasheet's recommended setting for weather monitoring is x1/x1 without the filter, the
defaults here.

Datasheets: BMP388 BST-BMP388-DS001,
https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp388-ds001.pdf;
BMP390 BST-BMP390-DS002,
https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp390-ds002.pdf
(the same sections; the register map is §4, the compensation formulas §9).

Example::

    [[sensor]]
    name = "barometer"
    type = "bmp390"
    interval_s = 60
    address = 0x77
    ## Samples averaged per measurement: 1, 2, 4, 8, 16 or 32. More is less noisy and slower.
    oversampling_pressure = 8
    # oversampling_temperature = 1
    ## IIR filter coefficient: 0 (off), 1, 3, 7, 15, 31, 63 or 127.
    # iir_filter = 0
    # bus = 1

    [[sensor]]
    name = "loft"
    type = "bmp388"
    interval_s = 60
    address = 0x76
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range

from ._bosch import chip_id_in, describe_ids, poll_register, soft_reset

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

# Registers (BMP388 datasheet §4, register map; the BMP390's map is the same).
_REG_CHIP_ID = 0x00
_REG_ERR = 0x02  # ERR_REG: fatal_err bit 0, cmd_err bit 1, conf_err bit 2 (the last two clear on read)
_REG_STATUS = 0x03  # STATUS: cmd_rdy bit 4, drdy_press bit 5, drdy_temp bit 6
_REG_DATA = 0x04  # DATA_0..DATA_5: pressure xlsb, lsb, msb, then temperature
_REG_EVENT = 0x10  # EVENT: por_detected bit 0, cleared on read
_REG_PWR_CTRL = 0x1B  # PWR_CTRL: press_en bit 0, temp_en bit 1, mode bits 5:4
_REG_OSR = 0x1C  # OSR: osr_p bits 2:0, osr_t bits 5:3
_REG_CONFIG = 0x1F  # CONFIG: iir_filter bits 3:1
_REG_NVM = 0x31  # NVM_PAR_T1..NVM_PAR_P11 (§9.1)
_NVM_LEN = 21
_REG_CMD = 0x7E  # CMD: 0xB6 soft reset

_ERR_BITS = ((0x01, "fatal_err"), (0x02, "cmd_err"), (0x04, "conf_err"))
_STATUS_CMD_RDY = 0x10
_STATUS_DRDY = 0x20 | 0x40  # drdy_press, drdy_temp
_EVENT_POR = 0x01
_PWR_FORCED = 0x01 | 0x02 | 0b01 << 4  # press_en, temp_en, mode forced
_IIR_CODE = {0: 0, 1: 1, 3: 2, 7: 3, 15: 4, 31: 5, 63: 6, 127: 7}

BMP388_ID = 0x50  # CHIP_ID of the BMP388
BMP390_ID = 0x60  # CHIP_ID of the BMP390
_STARTUP_S = 0.002  # start-up time (electrical specification): 2 ms, after power-on and soft reset
_POLL_S = 0.001
_POLLS = 20  # status polls before giving up: the conversion time already passed once

Oversampling = Literal[1, 2, 4, 8, 16, 32]
IIRFilter = Literal[0, 1, 3, 7, 15, 31, 63, 127]


@dataclass(frozen=True)
class BMP3Config(I2CConfig):
    """`[[sensor]]` keys of types `bmp388` and `bmp390`."""

    address: int = field_range(0x77, ge=0x76, le=0x77)
    oversampling_pressure: Oversampling = 1  # x1 for weather monitoring (recommended settings)
    oversampling_temperature: Oversampling = 1  # x1 up to x8 on pressure, x2 above (same table)
    iir_filter: IIRFilter = 0


@dataclass(frozen=True)
class Calibration:
    """The trimming parameters PAR_T1..PAR_P11 (§9.1): the NVM integers scaled by powers of two."""

    par_t1: float
    par_t2: float
    par_t3: float
    par_p1: float
    par_p2: float
    par_p3: float
    par_p4: float
    par_p5: float
    par_p6: float
    par_p7: float
    par_p8: float
    par_p9: float
    par_p10: float
    par_p11: float


# §9.1: NVM_PAR_x little-endian at 0x31.., u16 T1 T2, s8 T3, s16 P1 P2, s8 P3 P4,
# u16 P5 P6, s8 P7 P8, s16 P9, s8 P10 P11.
_NVM_FORMAT = "<HHbhhbbHHbbhbb"
# PAR_x = (NVM_PAR_x - offset) / 2**exponent (the offset is 2**14 for P1 and P2 only).
_SCALING = ((-8, 0), (30, 0), (48, 0), (20, 2**14), (29, 2**14), (32, 0), (37, 0), (-3, 0), (6, 0), (8, 0),
            (15, 0), (48, 0), (48, 0), (65, 0))


def nvm_parameters(nvm: bytes | list[int]) -> tuple[int, ...]:
    """NVM_PAR_T1..NVM_PAR_P11 as the integers the 21 bytes at 0x31..0x45 hold."""
    return struct.unpack(_NVM_FORMAT, bytes(nvm[:_NVM_LEN]))


def parse_calibration(nvm: bytes | list[int]) -> Calibration:
    """PAR_T1..PAR_P11 from the 21 NVM bytes at 0x31..0x45 (§9.1)."""
    raw = nvm_parameters(nvm)
    return Calibration(*((value - offset) / 2.0**exponent for value, (exponent, offset) in zip(raw, _SCALING,
                                                                                              strict=True)))


def compensate_temperature(uncomp_temp: int, cal: Calibration) -> float:
    """Temperature in °C (t_lin, which the pressure formula needs too), §9.2."""
    partial1 = uncomp_temp - cal.par_t1
    partial2 = partial1 * cal.par_t2
    return partial2 + partial1 * partial1 * cal.par_t3


def compensate_pressure(uncomp_press: int, t_lin: float, cal: Calibration) -> float:
    """Pressure in Pa, §9.3."""
    out1 = cal.par_p5 + cal.par_p6 * t_lin + cal.par_p7 * t_lin**2 + cal.par_p8 * t_lin**3
    out2 = uncomp_press * (cal.par_p1 + cal.par_p2 * t_lin + cal.par_p3 * t_lin**2 + cal.par_p4 * t_lin**3)
    p2 = float(uncomp_press) * uncomp_press
    out3 = p2 * (cal.par_p9 + cal.par_p10 * t_lin) + p2 * uncomp_press * cal.par_p11
    return out1 + out2 + out3


def measurement_time_s(oversampling_pressure: int, oversampling_temperature: int) -> float:
    """The conversion time of one forced measurement of both, by the datasheet's measurement-time
    formula, from the oversampling factors: 234 µs + (392 µs + osr_p x 2020 µs) + (163 µs + osr_t
    x 2020 µs)."""
    us = 234 + 392 + oversampling_pressure * 2020 + 163 + oversampling_temperature * 2020
    return us / 1e6


def osr_code(samples: int) -> int:
    """Register code of an oversampling factor: x1 → 0, x2 → 1, ... x32 → 5 (OSR register)."""
    return samples.bit_length() - 1


def error_names(err_reg: int) -> list[str]:
    """The bits set in ERR_REG, by the datasheet's names."""
    return [name for bit, name in _ERR_BITS if err_reg & bit]


class BMP388(I2CSensor):
    """A BMP388: temperature and pressure. `BMP390` is the same with another chip id."""

    type_name = "bmp388"
    Config = BMP3Config
    config: BMP3Config
    i2c_addresses = (0x76, 0x77)
    CHIP_ID: ClassVar[int] = BMP388_ID
    _calibration: Calibration | None = None

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", 0.01), Channel("pressure", "hPa", 0.01)]

    def probe(self) -> None:
        """Check the chip id, soft-reset it, load its calibration and write the settings."""
        chip_id = int(self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_CHIP_ID)))
        if chip_id != self.CHIP_ID:
            raise self.error(f"chip id 0x{chip_id:02x}, expected {describe_ids([self.CHIP_ID])}"
                             f"{_other_chip_hint(chip_id, self.type_name)}")
        self._reset()
        nvm = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, _REG_NVM, _NVM_LEN))
        if len(set(nvm)) == 1:
            # All 0x00 or all 0xFF: a bus or chip fault, not a calibration.
            raise self.error(f"calibration NVM invalid (21 bytes of 0x{nvm[0]:02x})")
        self._calibration = parse_calibration(nvm)
        self._configure()

    def _reset(self) -> None:
        """Soft reset, wait for cmd_rdy, check for a fatal error, clear por_detected."""
        soft_reset(self, _REG_CMD, _STARTUP_S)
        ready, status = poll_register(self, _REG_STATUS, lambda value: bool(value & _STATUS_CMD_RDY),
                                      polls=_POLLS, interval_s=_POLL_S)
        if not ready:
            raise self.error(f"not ready after a soft reset: status 0x{status:02x} has cmd_rdy (0x10) clear "
                             f"after {_POLLS} polls")
        self._check_errors("after a soft reset")
        self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_EVENT))

    def _write_settings(self) -> None:
        cfg = self.config
        osr = osr_code(cfg.oversampling_temperature) << 3 | osr_code(cfg.oversampling_pressure)
        iir = _IIR_CODE[cfg.iir_filter] << 1
        self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_OSR, osr))
        self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_CONFIG, iir))

    def _configure(self) -> None:
        self._write_settings()
        self._check_errors("after writing OSR and CONFIG")

    def _check_errors(self, when: str) -> None:
        err = int(self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_ERR)))
        if not err & 0x07:
            return
        names = ", ".join(error_names(err))
        if err & 0x01:
            # A fatal error needs a reset; do it now, so the next read can work.
            soft_reset(self, _REG_CMD, _STARTUP_S)
            self._write_settings()
            self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_EVENT))  # clears por_detected
            raise self.error(f"error register 0x{err:02x} ({names}) {when}: the chip was soft-reset")
        raise self.error(f"error register 0x{err:02x} ({names}) {when}")

    def read(self) -> list[Reading]:
        """One forced measurement, compensated."""
        cal = self._calibration
        if cal is None:
            raise self.error("read() before open()")
        cfg = self.config
        with self.bus.lock:  # one measurement is one transaction: nobody else starts one meanwhile
            event = int(self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_EVENT)))
            if event & _EVENT_POR:
                self._configure()  # the chip reset itself (brown-out): its settings are gone
            self.transfer(lambda bus: bus.write_byte_data(self.address, _REG_PWR_CTRL, _PWR_FORCED))
            self.hardware.sleep(measurement_time_s(cfg.oversampling_pressure, cfg.oversampling_temperature))
            ready, status = poll_register(self, _REG_STATUS, lambda value: value & _STATUS_DRDY == _STATUS_DRDY,
                                          polls=_POLLS, interval_s=_POLL_S)
            self._check_errors("after a forced measurement")
            if not ready:
                raise self.error(f"measurement not finished: status 0x{status:02x}, drdy_press (0x20) and "
                                 f"drdy_temp (0x40) not both set after {_POLLS} polls")
            data = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, _REG_DATA, 6))
        uncomp_press = data[0] | data[1] << 8 | data[2] << 16
        uncomp_temp = data[3] | data[4] << 8 | data[5] << 16
        t_lin = compensate_temperature(uncomp_temp, cal)
        pascal = compensate_pressure(uncomp_press, t_lin, cal)
        return [Reading("temperature", round(t_lin, 2), "°C"), Reading("pressure", round(pascal / 100, 2), "hPa")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the chip id register (0x00) holds `CHIP_ID`."""
        return {"type": cls.type_name, "address": address} if chip_id_in(bus, address, _REG_CHIP_ID,
                                                                         [cls.CHIP_ID]) else None


class BMP390(BMP388):
    """A BMP390: a BMP388 with less noise, chip id 0x60."""

    type_name = "bmp390"
    CHIP_ID = BMP390_ID


def _other_chip_hint(chip_id: int, type_name: str) -> str:
    if chip_id == BMP388_ID and type_name != "bmp388":
        return ' (a BMP388: use type = "bmp388")'
    if chip_id == BMP390_ID and type_name != "bmp390":
        return ' (a BMP390: use type = "bmp390")'
    return ""


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [BMP388, BMP390]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.bmp3xx import BMP388Model, BMP390Model  # lazy: only the fake node asks

    return [BMP388Model, BMP390Model]
