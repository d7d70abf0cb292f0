"""Texas Instruments INA219 current, voltage and power monitor, type `ina219`.

The chip measures the voltage across a shunt resistor in the supply line (the current) and the
bus voltage on the load side of it, and multiplies them into power. It converts continuously;
each read takes the latest conversion. Quantities: `voltage` (bus voltage, V), `current` (A,
negative when it flows from IN- to IN+) and `power` (W, never negative: the power register
is unsigned).

Wiring: VCC to 3.3 V (header pin 1), GND to GND (shared with the measured circuit), SDA to GPIO2
(pin 3), SCL to GPIO3 (pin 5); the supply goes into VIN+ and leaves VIN- towards the load. The
A0 and A1 pins set the address, 0x40 to 0x4F (§8.5.5.1); breakout boards default to 0x40 and
most carry a 0.1 Ω shunt.

Datasheet: "INA219 Zerø-Drift, Bidirectional Current/Power Monitor With I2C Interface" (TI
SBOS448G, https://www.ti.com/lit/ds/symlink/ina219.pdf). The current and power scale follow
§8.5.1: Current_LSB = max_current_a / 2**15 (equation 2), calibration = trunc(0.04096 /
(Current_LSB × shunt_ohms)) (equation 1), Power_LSB = 20 × Current_LSB (equation 3).

Example::

    [[sensor]]
    name = "solar"
    type = "ina219"
    interval_s = 10
    ## The shunt resistor on the board, in ohms.
    shunt_ohms = 0.1
    ## The largest current to measure, in amperes; sets the current step (max / 32768). The
    ## voltage it drops across the shunt must stay within 0.32 V.
    max_current_a = 2.0
    ## Bus voltage range, 16 or 32 volts (the pins take at most 26 V).
    # bus_voltage_range_v = 32
    ## Conversions averaged per reading: 1, 2, 4, 8, 16, 32, 64 or 128.
    # samples = 1
    # address = 0x40
    # bus = 1
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, SensorConfig, field_range, signed, swap16

if TYPE_CHECKING:
    from sensord import Hardware
    from sensord.testing import I2CDeviceModel

log = logging.getLogger(__name__)

# Registers (§8.6, Register Maps): 16 bits each, MSB first (§8.5.6, writing to and reading from
# the INA219).
_REG_CONFIG = 0x00  # §8.6.2.1
_REG_SHUNT = 0x01  # §8.6.3.1: signed, 10 µV LSB
_REG_BUS = 0x02  # §8.6.3.2: bits 15:3 in 4 mV steps, CNVR bit 1, OVF bit 0
_REG_POWER = 0x03  # §8.6.3.3: Power_LSB steps; reading it clears CNVR
_REG_CURRENT = 0x04  # §8.6.3.4: signed, Current_LSB steps
_REG_CALIBRATION = 0x05  # §8.6.3.5: 0 after reset, then current and power read 0

# Configuration register fields (§8.6.2.1).
_CONFIG_RESET = 0x8000  # bit 15, RST: resets every register; clears itself
_CONFIG_DEFAULT = 0x399F  # the reset value
_CONFIG_UNUSED = 0x4000  # bit 14 reads 0
_BRNG_32V = 0x2000  # bit 13: 32 V bus range (0: 16 V)
_PG_SHIFT = 11  # bits 12:11: shunt range 40, 80, 160, 320 mV
_BADC_SHIFT = 7  # bits 10:7: bus ADC resolution / averaging
_SADC_SHIFT = 3  # bits 6:3: shunt ADC resolution / averaging
_MODE_CONTINUOUS = 0b111  # bits 2:0: shunt and bus, continuous

_BUS_RESERVED = 0x0004  # bus voltage register bit 2 reads 0
_BUS_CNVR = 0x0002  # conversion ready
_BUS_OVF = 0x0001  # math overflow: current or power out of range
_CAL_VOID = 0x0001  # calibration bit 0 (FS0) cannot be set (§8.6.3.5)

_SHUNT_LSB_V = 10e-6
_BUS_LSB_V = 0.004
_CAL_SCALE = 0.04096  # the fixed value in equation 1 (§8.5.1)
_SHUNT_RANGES_V = (0.04, 0.08, 0.16, 0.32)  # by PG code
# ADC code and conversion time by samples averaged (§8.6.2.1, ADC settings table): 12 bits each.
_ADC: dict[int, tuple[int, float]] = {
    1: (0b0011, 532e-6), 2: (0b1001, 1.06e-3), 4: (0b1010, 2.13e-3), 8: (0b1011, 4.26e-3),
    16: (0b1100, 8.51e-3), 32: (0b1101, 17.02e-3), 64: (0b1110, 34.05e-3), 128: (0b1111, 68.10e-3),
}
_CNVR_POLLS = 3  # conversions to wait for CNVR before giving up




def to_signed16(word: int) -> int:
    """A 16-bit two's complement register value as an int."""
    return signed(word, 16)


def calibration_value(max_current_a: float, shunt_ohms: float) -> int:
    """Equations 1 and 2 (§8.5.1): trunc(0.04096 / (max_current_a / 2**15 × shunt_ohms)), bit 0
    cleared as the chip does. 1e-9 keeps float error from truncating 20480.0 to 20479."""
    current_lsb = max_current_a / 32768
    return int(_CAL_SCALE / (current_lsb * shunt_ohms) + 1e-9) & ~_CAL_VOID


def current_lsb_a(calibration: int, shunt_ohms: float) -> float:
    """The amperes per step of the current register for a programmed calibration: the chip
    computes current = shunt × calibration / 4096 (equation 4), so one step is
    0.04096 / (calibration × shunt_ohms). Equals equation 2's Current_LSB but for the truncation."""
    return _CAL_SCALE / (calibration * shunt_ohms)


def power_lsb_w(current_lsb: float) -> float:
    """Watts per step of the power register: 20 × Current_LSB (equation 3)."""
    return 20 * current_lsb


def bus_voltage_v(register: int) -> float:
    """The bus voltage of a bus voltage register value: bits 15:3 in 4 mV steps (§8.6.3.2)."""
    return (register >> 3) * _BUS_LSB_V


def shunt_range_code(max_shunt_v: float) -> int:
    """The PG code of the smallest shunt range that holds `max_shunt_v` (at most 0.32 V)."""
    return next(code for code, full in enumerate(_SHUNT_RANGES_V) if max_shunt_v <= full + 1e-9)


@dataclass(frozen=True)
class INA219Config(I2CConfig):
    """`[[sensor]]` keys of type `ina219`."""

    address: int = field_range(0x40, ge=0x40, le=0x4F)
    shunt_ohms: float = field_range(0.1, gt=0)
    max_current_a: float = field_range(3.2, gt=0)
    bus_voltage_range_v: Literal[16, 32] = 32
    samples: Literal[1, 2, 4, 8, 16, 32, 64, 128] = 1

    def __post_init__(self) -> None:
        drop_v = self.max_current_a * self.shunt_ohms
        if drop_v > _SHUNT_RANGES_V[-1] + 1e-9:
            raise ValueError(f"max_current_a: {self.max_current_a:g} A drops {drop_v * 1000:g} mV across "
                             f"shunt_ohms = {self.shunt_ohms:g}, expected at most 320 mV (the shunt range)")
        calibration = calibration_value(self.max_current_a, self.shunt_ohms)
        if calibration > 0xFFFE:
            raise ValueError(f"max_current_a: {self.max_current_a:g} A with shunt_ohms = {self.shunt_ohms:g} "
                             f"needs calibration {calibration}, expected at most 65534: raise max_current_a")


class INA219(I2CSensor):
    """An INA219 converting continuously, its calibration programmed from the config."""

    type_name = "ina219"
    Config = INA219Config
    config: INA219Config
    i2c_addresses = tuple(range(0x40, 0x50))

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        cfg = self.config
        self.calibration = calibration_value(cfg.max_current_a, cfg.shunt_ohms)
        self.current_lsb = current_lsb_a(self.calibration, cfg.shunt_ohms)
        self.power_lsb = power_lsb_w(self.current_lsb)
        adc, adc_s = _ADC[cfg.samples]
        pg = shunt_range_code(cfg.max_current_a * cfg.shunt_ohms)
        self.config_word = ((_BRNG_32V if cfg.bus_voltage_range_v == 32 else 0) | pg << _PG_SHIFT
                            | adc << _BADC_SHIFT | adc << _SADC_SHIFT | _MODE_CONTINUOUS)
        self._conversion_s = 2 * adc_s  # one bus and one shunt conversion per cycle

    def channels(self) -> list[Channel]:
        return [Channel("voltage", "V", _BUS_LSB_V), Channel("current", "A", self.current_lsb),
                Channel("power", "W", self.power_lsb)]

    def probe(self) -> None:
        self._write(_REG_CONFIG, _CONFIG_RESET)
        got = self._read(_REG_CONFIG)
        if got != _CONFIG_DEFAULT:
            raise self.error(f"configuration register 0x{got:04x} after reset, expected 0x{_CONFIG_DEFAULT:04x}: "
                             f"is it an INA219?")
        self._program()

    def read(self) -> list[Reading]:
        if self._read(_REG_CALIBRATION) != self.calibration:
            # A brown-out resets the chip, and with calibration 0 current and power read 0.
            log.warning("%s: calibration lost (chip reset?), programming it again", self.describe())
            self._program()
        bus = self._wait_for_conversion()
        if bus & _BUS_OVF:
            raise self.error(f"math overflow (OVF): current or power out of range; is the current above "
                             f"max_current_a = {self.config.max_current_a:g} A?")
        current = to_signed16(self._read(_REG_CURRENT)) * self.current_lsb
        power = self._read(_REG_POWER) * self.power_lsb
        return [Reading("voltage", round(bus_voltage_v(bus), 3), "V"), Reading("current", round(current, 9), "A"),
                Reading("power", round(power, 9), "W")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The INA219 has no id register. Recognise it by bits that always read 0 (configuration
        15:14, bus voltage bit 2, calibration bit 0), a shunt reading within the configured shunt
        range (§8.6.3.1: sign bits fill the rest), and zero current and power while uncalibrated.
        Only reads (the pointer byte before each read selects a register)."""
        try:
            config, shunt, volts, calibration = (
                swap16(bus.read_word_data(address, reg)) for reg in (_REG_CONFIG, _REG_SHUNT, _REG_BUS,
                                                                     _REG_CALIBRATION))
            if calibration == 0 and (bus.read_word_data(address, _REG_CURRENT)
                                     or bus.read_word_data(address, _REG_POWER)):
                return None
        except OSError:
            return None
        if config & (_CONFIG_RESET | _CONFIG_UNUSED) or volts & _BUS_RESERVED or calibration & _CAL_VOID:
            return None
        pg = (config >> _PG_SHIFT) & 0b11
        if abs(to_signed16(shunt)) > round(_SHUNT_RANGES_V[pg] / _SHUNT_LSB_V):
            return None
        return {"type": cls.type_name, "address": address}

    # -- bus access ---------------------------------------------------------------------------

    def _read(self, register: int) -> int:
        return swap16(self.transfer(lambda bus: bus.read_word_data(self.address, register)))

    def _write(self, register: int, value: int) -> None:
        self.transfer(lambda bus: bus.write_word_data(self.address, register, swap16(value)))

    def _program(self) -> None:
        self._write(_REG_CALIBRATION, self.calibration)
        self._write(_REG_CONFIG, self.config_word)  # also clears CNVR: the next read waits for fresh data

    def _wait_for_conversion(self) -> int:
        """The bus voltage register once CNVR says a conversion finished since the last read of
        the power register or configuration write (§8.6.3.2)."""
        for _ in range(_CNVR_POLLS):
            bus = self._read(_REG_BUS)
            if bus & _BUS_CNVR:
                return bus
            self.hardware.sleep(self._conversion_s)
        raise self.error(f"no conversion ready (CNVR still 0) after {_CNVR_POLLS} conversion times of "
                         f"{self._conversion_s * 1000:.2f} ms")


@sensord.hookimpl
def sensord_register_sensors() -> list[type[sensord.Sensor]]:
    return [INA219]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.ina219 import INA219Model  # lazy: only the fake node asks

    return [INA219Model]
