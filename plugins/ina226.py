"""Texas Instruments INA226 and INA260 current, voltage and power monitors, types `ina226` and
`ina260`.

Both measure the current through a shunt in the supply line and the bus voltage on the load side
(up to 36 V), and multiply them into power; they convert continuously and a read takes the
latest conversion. Quantities: `voltage` (bus voltage, V), `current` (A, negative when it flows
from IN- to IN+) and `power` (W, never negative: the power register holds the magnitude). The
INA226 works with the shunt on your board (`shunt_ohms`, at most 81.92 mV across it), its
current and power scale set by a calibration from `max_current_a`, as the INA219's; the INA260
has a 2 mΩ shunt inside (up to 15 A) and fixed steps, nothing to calibrate.

Wiring: VS to 3.3 V (header pin 1), GND to GND (shared with the measured circuit), SDA to GPIO2
(pin 3), SCL to GPIO3 (pin 5); the supply goes into IN+ and leaves IN- towards the load (on the
INA226 the shunt sits between them, and VBUS goes to the load side). A0 and A1 select the address,
0x40 to 0x4F (16 combinations of GND, VS, SDA and SCL); boards default to 0x40, which the
HTU21D/Si7021, HDC1080 and INA219 also use.

Datasheets: "INA226 High-Side or Low-Side Measurement, Bi-Directional Current and Power Monitor
with I2C Compatible Interface" (TI SBOS547): §7.5 register map (configuration 00h reset 4127h,
shunt voltage 01h in 2.5 µV steps, bus voltage 02h in 1.25 mV steps, power 03h, current 04h,
calibration 05h, mask/enable 06h with CVRF bit 3 and OVF bit 2, manufacturer id FEh = 5449h,
die id FFh = 2260h), §7.5.1 programming: CAL = 0.00512 / (Current_LSB × R_SHUNT) (equation 1),
Current_LSB = maximum expected current / 2^15 (equation 2), current = shunt voltage × CAL / 2048
(equation 3), Power_LSB = 25 × Current_LSB (equation 4). "INA260 Precision Digital Current and
Power Monitor With Low-Drift, Precision Integrated Shunt" (TI SBOS656): the same registers
without shunt voltage and calibration; current 1.25 mA, bus voltage 1.25 mV and power 10 mW per
step; configuration reset 6127h; die id 2270h. Both: averaging (AVG, bits 11:9) of 1 to 1024
samples, 1.1 ms per bus and per shunt conversion (the reset setting).

`open()` checks the manufacturer and die ids, resets the chip, and programs averaging (and on
the INA226 the calibration). A read waits for CVRF (conversion ready) in the mask/enable
register, which reading that register clears, then reads bus voltage, current and power. A
calibration found lost (a brown-out resets the chip) is programmed again, as for the INA219.
The kernel's `ina2xx` driver (`dtoverlay=i2c-sensor,ina226`) is the other way to read them,
through the `hwmon` type.

`sensord detect` recognises both by their ids.

Example::

    [[sensor]]
    name = "battery"
    type = "ina226"
    interval_s = 10
    ## The shunt resistor on the board, in ohms.
    shunt_ohms = 0.002
    ## The largest current to measure, in amperes; sets the current step (max / 32768). The
    ## voltage it drops across the shunt must stay within 81.92 mV.
    max_current_a = 20.0
    ## Conversions averaged per result: 1, 4, 16, 64, 128, 256, 512 or 1024.
    # samples = 16
    # address = 0x40
    # bus = 1

    [[sensor]]
    name = "charger"
    type = "ina260"
    interval_s = 10
    address = 0x41
    # samples = 16
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, SensorConfig, field_range, signed
from sensord.i2c import read_id_words

if TYPE_CHECKING:
    from sensord import Hardware
    from sensord.testing import I2CDeviceModel

log = logging.getLogger(__name__)

ADDRESSES = tuple(range(0x40, 0x50))

# Registers (SBOS547 §7.5, SBOS656 §7.6): 16 bits each, most significant byte first.
_REG_CONFIG = 0x00
_REG_SHUNT = 0x01  # INA226: 2.5 µV steps, signed. INA260: the current register, 1.25 mA steps.
_REG_BUS = 0x02  # 1.25 mV steps, bit 15 reads 0
_REG_POWER = 0x03
_REG_CURRENT = 0x04  # INA226 only: Current_LSB steps, signed
_REG_CALIBRATION = 0x05  # INA226 only: bit 15 reads 0; 0 after reset, then current and power read 0
_REG_MASK_ENABLE = 0x06
_REG_MANUFACTURER_ID = 0xFE
_REG_DIE_ID = 0xFF

MANUFACTURER_ID = 0x5449  # "TI"
_CONFIG_RESET = 0x8000  # bit 15, RST: resets every register; clears itself
_AVG_SHIFT = 9  # bits 11:9
_CT_1100US = 0b100  # bus and shunt conversion time 1.1 ms (the reset value)
_VBUSCT_SHIFT, _VSHCT_SHIFT = 6, 3
_MODE_CONTINUOUS = 0b111  # shunt (current) and bus, continuous
_CVRF = 0x0008  # mask/enable bit 3: conversion ready; cleared by reading mask/enable
_OVF = 0x0004  # mask/enable bit 2: math overflow

_BUS_LSB_V = 0.00125
_SHUNT_LSB_V = 2.5e-6
_SHUNT_FULL_V = 0.08192  # ±81.92 mV
_CAL_SCALE = 0.00512  # equation 1
_CAL_MAX = 0x7FFF  # bit 15 of the calibration register is reserved
_POWER_PER_CURRENT = 25  # equation 4
_INA260_CURRENT_LSB_A = 0.00125
_INA260_POWER_LSB_W = 0.010

#: AVG code by samples averaged (configuration bits 11:9).
_AVG = {1: 0b000, 4: 0b001, 16: 0b010, 64: 0b011, 128: 0b100, 256: 0b101, 512: 0b110, 1024: 0b111}
_CONVERSION_S = 0.0011  # one bus or shunt conversion at the reset conversion time
_CVRF_POLLS = 3  # conversion periods to wait for CVRF before giving up

Samples = Literal[1, 4, 16, 64, 128, 256, 512, 1024]


def calibration_value(max_current_a: float, shunt_ohms: float) -> int:
    """Equations 1 and 2: trunc(0.00512 / (max_current_a / 2**15 × shunt_ohms)). 1e-9 keeps
    float error from truncating 2560.0 to 2559. 32.768 A and 2 mΩ: Current_LSB 1 mA, CAL 2560."""
    current_lsb = max_current_a / 32768
    return int(_CAL_SCALE / (current_lsb * shunt_ohms) + 1e-9)


def current_lsb_a(calibration: int, shunt_ohms: float) -> float:
    """Amperes per step of the current register for a programmed calibration: the chip computes
    current = shunt × CAL / 2048 (equation 3) with the shunt in 2.5 µV steps, so one step is
    0.00512 / (CAL × shunt_ohms). Equals equation 2's Current_LSB but for the truncation."""
    return _CAL_SCALE / (calibration * shunt_ohms)


def config_word(samples: int) -> int:
    """The configuration register: averaging, 1.1 ms conversions, shunt and bus continuous."""
    return (_AVG[samples] << _AVG_SHIFT | _CT_1100US << _VBUSCT_SHIFT | _CT_1100US << _VSHCT_SHIFT
            | _MODE_CONTINUOUS)


def conversion_period_s(samples: int) -> float:
    """How long one result takes: a bus and a shunt conversion per sample, `samples` of them."""
    return 2 * _CONVERSION_S * samples


def bus_voltage_v(register: int) -> float:
    """The bus voltage of a bus voltage register value, 1.25 mV steps: 0x2580 (9600) -> 12 V."""
    return (register & 0x7FFF) * _BUS_LSB_V


@dataclass(frozen=True)
class INA226Config(I2CConfig):
    """`[[sensor]]` keys of type `ina226`."""

    address: int = field_range(0x40, ge=0x40, le=0x4F)
    shunt_ohms: float = field_range(0.002, gt=0)
    max_current_a: float = field_range(20.0, gt=0)
    samples: Samples = 16

    def __post_init__(self) -> None:
        drop_v = self.max_current_a * self.shunt_ohms
        if drop_v > _SHUNT_FULL_V + 1e-9:
            raise ValueError(f"max_current_a: {self.max_current_a:g} A drops {drop_v * 1000:g} mV across "
                             f"shunt_ohms = {self.shunt_ohms:g}, expected at most 81.92 mV (the shunt range)")
        calibration = calibration_value(self.max_current_a, self.shunt_ohms)
        if calibration > _CAL_MAX:
            raise ValueError(f"max_current_a: {self.max_current_a:g} A with shunt_ohms = {self.shunt_ohms:g} "
                             f"needs calibration {calibration}, expected at most 32767: raise max_current_a")


@dataclass(frozen=True)
class INA260Config(I2CConfig):
    """`[[sensor]]` keys of type `ina260`."""

    address: int = field_range(0x40, ge=0x40, le=0x4F)
    samples: Samples = 16


class INA226(I2CSensor):
    """An INA226 converting continuously, its calibration programmed from the config."""

    type_name = "ina226"
    Config: ClassVar[type[SensorConfig]] = INA226Config
    config: INA226Config | INA260Config
    i2c_addresses = ADDRESSES
    #: The die id register's device id (bits 15:4) and the chip's name.
    DIE_ID: ClassVar[int] = 0x226
    CHIP: ClassVar[str] = "INA226"
    RESET_CONFIG: ClassVar[int] = 0x4127

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        self.config_word = config_word(self.config.samples)
        self._conversion_s = conversion_period_s(self.config.samples)
        self.calibration, self.current_lsb, self.power_lsb = self._scale()

    def _scale(self) -> tuple[int, float, float]:
        cfg = self.config
        assert isinstance(cfg, INA226Config)
        calibration = calibration_value(cfg.max_current_a, cfg.shunt_ohms)
        current_lsb = current_lsb_a(calibration, cfg.shunt_ohms)
        return calibration, current_lsb, _POWER_PER_CURRENT * current_lsb

    def channels(self) -> list[Channel]:
        return [Channel("voltage", "V", _BUS_LSB_V), Channel("current", "A", self.current_lsb),
                Channel("power", "W", self.power_lsb)]

    def probe(self) -> None:
        manufacturer = self._read(_REG_MANUFACTURER_ID)
        if manufacturer != MANUFACTURER_ID:
            raise self.error(f"manufacturer id 0x{manufacturer:04x}, expected 0x{MANUFACTURER_ID:04x} "
                             f"(Texas Instruments)")
        die = self._read(_REG_DIE_ID)
        if die >> 4 != self.DIE_ID:
            raise self.error(f"die id 0x{die:04x}, expected 0x{self.DIE_ID:03x}x ({self.CHIP})")
        self._write(_REG_CONFIG, _CONFIG_RESET)
        got = self._read(_REG_CONFIG)
        if got != self.RESET_CONFIG:
            raise self.error(f"configuration register 0x{got:04x} after reset, expected 0x{self.RESET_CONFIG:04x}")
        self._program()

    def read(self) -> list[Reading]:
        if self._lost_calibration():
            log.warning("%s: calibration lost (chip reset?), programming it again", self.describe())
            self._program()
        flags = self._wait_for_conversion()
        if flags & _OVF:
            limit = self.config.max_current_a if isinstance(self.config, INA226Config) else 15.0
            raise self.error(f"math overflow (OVF): current or power out of range; is the current above "
                             f"{limit:g} A?")
        bus = bus_voltage_v(self._read(_REG_BUS))
        current = signed(self._read(self._current_register()), 16) * self.current_lsb
        power = self._read(_REG_POWER) * self.power_lsb
        return [Reading("voltage", round(bus, 5), "V"), Reading("current", round(current, 9), "A"),
                Reading("power", round(power, 9), "W")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the manufacturer and die ids are this chip's. Reads the
        configuration register (00h) first and goes on only when it answers with bit 15 (RST)
        clear: the pointer FEh that selects the manufacturer id is the soft-reset command of an
        HTU21D/Si7021, which does not answer a read of 00h. Only reads."""
        ids = read_id_words(bus, address, _REG_MANUFACTURER_ID, _REG_DIE_ID, guard=(_REG_CONFIG, _CONFIG_RESET))
        if ids is None or ids[0] != MANUFACTURER_ID or ids[1] >> 4 != cls.DIE_ID:
            return None
        return {"type": cls.type_name, "address": address}

    # -- bus access ---------------------------------------------------------------------------

    def _read(self, register: int) -> int:
        data = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, register, 2))
        return int(data[0]) << 8 | int(data[1])

    def _write(self, register: int, value: int) -> None:
        data = [value >> 8, value & 0xFF]
        self.transfer(lambda bus: bus.write_i2c_block_data(self.address, register, data))

    def _current_register(self) -> int:
        return _REG_CURRENT

    def _lost_calibration(self) -> bool:
        return self._read(_REG_CALIBRATION) != self.calibration

    def _program(self) -> None:
        self._write(_REG_CALIBRATION, self.calibration)
        self._write(_REG_CONFIG, self.config_word)  # starts a new conversion period

    def _wait_for_conversion(self) -> int:
        """The mask/enable register once CVRF says a conversion finished since it was last read
        (reading it clears the flag)."""
        for _ in range(_CVRF_POLLS):
            flags = self._read(_REG_MASK_ENABLE)
            if flags & _CVRF:
                return flags
            self.hardware.sleep(self._conversion_s)
        raise self.error(f"no conversion ready (CVRF still 0) after {_CVRF_POLLS} conversion periods of "
                         f"{self._conversion_s * 1000:.1f} ms")


class INA260(INA226):
    """An INA260: the INA226 with its 2 mΩ shunt inside and fixed steps, nothing to calibrate."""

    type_name = "ina260"
    Config = INA260Config
    DIE_ID = 0x227
    CHIP = "INA260"
    RESET_CONFIG = 0x6127

    def _scale(self) -> tuple[int, float, float]:
        return 0, _INA260_CURRENT_LSB_A, _INA260_POWER_LSB_W

    def _current_register(self) -> int:
        return _REG_SHUNT  # the INA260's current register is 01h

    def _lost_calibration(self) -> bool:
        # Nothing to lose but the averaging: a reset brings back AVG 1 (configuration 6127h).
        return self._read(_REG_CONFIG) != self.config_word | 0x6000

    def _program(self) -> None:
        self._write(_REG_CONFIG, self.config_word)


@sensord.hookimpl
def sensord_register_sensors() -> list[type[sensord.Sensor]]:
    return [INA226, INA260]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.ina226 import INA226Model, INA260Model  # lazy: only the fake node asks

    return [INA226Model, INA260Model]
