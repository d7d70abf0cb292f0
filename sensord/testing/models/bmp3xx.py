"""Models of the Bosch BMP388 and BMP390 for `FakeI2CBus`.

The chips as their datasheets describe them (BMP388 BST-BMP388-DS001, BMP390 BST-BMP390-DS002;
one register map): chip id at 0x00 (0x50, 0x60), ERR_REG 0x02 (fatal_err bit 0; cmd_err bit 1
and conf_err bit 2 clear when read), STATUS 0x03 (cmd_rdy bit 4, drdy_press bit 5, drdy_temp bit
6), data 0x04-0x09 (pressure then temperature, 24 bits, least significant byte first; reading
them clears the drdy bits), EVENT 0x10 (por_detected bit 0, set by a reset, cleared when read),
PWR_CTRL 0x1B, OSR 0x1C, ODR 0x1D, CONFIG 0x1F, the calibration NVM at 0x31-0x45 and CMD 0x7E.
Writing 0xB6 to CMD soft-resets the registers; another command sets cmd_err. A write of PWR_CTRL
with mode forced (01 or 10) starts a measurement of the enabled quantities, which takes the
conversion time of the datasheet's measurement-time formula on `clock` (at once without one),
then sets drdy_press and drdy_temp, fills the data registers and falls back to sleep mode. An
OSR with a code above 5 (x32) sets conf_err. Writes to registers the map does not have are
NACKed, so driver bugs show.

Set `temperature_c` and `pressure_pa`: the model finds raw ADC values that give them, inverting
the datasheet's floating-point compensation (§9.2, §9.3) by bisection. Or set `raw_temperature`
and `raw_pressure` to put exact ADC values in the registers. The default calibration is that of a
real BMP388 (the datasheet has no numeric example): with raw pressure 7184279 and temperature
8771699 it gives 100876.006 Pa and 30.4993 °C. Error knobs: `fatal` sets fatal_err (until a soft
reset), `stuck` keeps a measurement from ever finishing, `power_on_reset()` resets the chip as a
brown-out would.

    >>> from sensord.testing import FakeI2CBus
    >>> bus = FakeI2CBus([BMP390Model(temperature_c=21.5)])
    >>> hex(bus.read_byte_data(0x77, 0x00))
    '0x60'
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from sensord.testing.i2c import RegisterMapDevice

from .bme280 import invert_monotonic

_CHIP_ID, _REV_ID, _ERR, _STATUS, _DATA, _EVENT = 0x00, 0x01, 0x02, 0x03, 0x04, 0x10
_PWR_CTRL, _OSR, _ODR, _CONFIG, _NVM, _CMD = 0x1B, 0x1C, 0x1D, 0x1F, 0x31, 0x7E
_FATAL, _CMD_ERR, _CONF_ERR = 0x01, 0x02, 0x04
_CMD_RDY, _DRDY_PRESS, _DRDY_TEMP = 0x10, 0x20, 0x40
_EVENT_POR = 0x01
_WRITABLE = frozenset([*range(0x15, 0x1E), _CONFIG, _CMD])  # FIFO_WTM_0 .. ODR, CONFIG, CMD
_READABLE = frozenset([*range(0x00, 0x0A), 0x0C, 0x0D, 0x0E, 0x10, 0x11, 0x12, 0x13, 0x14, *_WRITABLE,
                       *range(_NVM, _NVM + 21)])

#: The NVM_PAR_T1..P11 of a real BMP388 (u16 T1 T2, s8 T3, s16 P1 P2, s8 P3 P4, u16 P5 P6,
#: s8 P7 P8, s16 P9, s8 P10 P11), and raw values it turned into 100876.006 Pa and 30.4993 °C.
REAL_NVM = (27427, 18776, -10, -164, -2866, 35, 0, 25578, 31086, -13, -10, 17322, 18, -60)
REAL_RAW_PRESSURE = 7184279
REAL_RAW_TEMPERATURE = 8771699


def quantized(nvm: tuple[int, ...]) -> tuple[float, ...]:
    """PAR_T1..PAR_P11 as the datasheet's §9.1 defines them from the NVM integers."""
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11 = nvm
    return (t1 * 2.0**8, t2 / 2.0**30, t3 / 2.0**48, (p1 - 16384) / 2.0**20, (p2 - 16384) / 2.0**29,
            p3 / 2.0**32, p4 / 2.0**37, p5 * 2.0**3, p6 / 2.0**6, p7 / 2.0**8, p8 / 2.0**15, p9 / 2.0**48,
            p10 / 2.0**48, p11 / 2.0**65)


def temperature_float(raw: float, par: tuple[float, ...]) -> float:
    """§9.2: t_lin in °C."""
    d = raw - par[0]
    return d * par[1] + d * d * par[2]


def pressure_float(raw: float, t_lin: float, par: tuple[float, ...]) -> float:
    """§9.3: pressure in Pa."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11 = par[3:]
    offset = p5 + p6 * t_lin + p7 * t_lin**2 + p8 * t_lin**3
    sensitivity = raw * (p1 + p2 * t_lin + p3 * t_lin**2 + p4 * t_lin**3)
    return offset + sensitivity + raw * raw * (p9 + p10 * t_lin) + raw**3 * p11


def conversion_s(osr_p: int, osr_t: int, *, press: bool = True, temp: bool = True) -> float:
    """The datasheet's measurement-time formula: the conversion time for the OSR codes of the enabled quantities."""
    us = 234 + (392 + 2**osr_p * 2020 if press else 0) + (163 + 2**osr_t * 2020 if temp else 0)
    return us / 1e6


class BMP388Model(RegisterMapDevice):
    """A BMP388 on a fake bus: forced mode, status and error registers, por_detected."""

    DEFAULT_ADDRESS = 0x77
    #: SDO high or low: on the fake node, where a BMP280 and a BME280 hold both, bus 3.
    ADDRESSES = (0x77, 0x76)
    CHIP_ID = 0x50

    def __init__(self, *, address: int | None = None, chip_id: int | None = None,
                 temperature_c: float = 30.5, pressure_pa: float = 100876.0, nvm: tuple[int, ...] = REAL_NVM,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=self.DEFAULT_ADDRESS if address is None else address)
        #: Values the next measurement measures.
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        #: Exact ADC values for the next measurement, instead of the physical values above.
        self.raw_temperature: int | None = None
        self.raw_pressure: int | None = None
        #: fatal_err stays set until a soft reset; a stuck measurement never finishes.
        self.fatal = False
        self.stuck = False
        #: Measurements started so far, and soft resets.
        self.measurements = 0
        self.resets = 0
        self.nvm = nvm
        self._par = quantized(nvm)
        self._clock = clock
        self._done_at: float | None = None
        self._enabled = (False, False)
        self._chip_id = self.CHIP_ID if chip_id is None else chip_id
        self.poke(_NVM, struct.pack("<HHbhhbbHHbbhbb", *nvm))
        self._reset_registers()

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def _reset_registers(self) -> None:
        # Register map (§4): reset values; the data registers read 0 until a measurement.
        self.poke(_CHIP_ID, [self._chip_id, 0x01, 0x00, _CMD_RDY])
        self.poke(_DATA, bytes(6))
        self.poke(_EVENT, _EVENT_POR)
        self.poke(_PWR_CTRL, [0x00, 0x02, 0x00])  # PWR_CTRL sleep, OSR x4/x1, ODR 0
        self.poke(_CONFIG, 0x00)
        self._done_at = None

    def power_on_reset(self) -> None:
        """Reset as a brown-out would: settings lost, por_detected set."""
        self._reset_registers()

    def read(self, register: int, length: int) -> bytearray:
        if any((register + i) & 0xFF not in _READABLE for i in range(length)):
            raise self.nack(f"read of {length} from 0x{register:02x} reaches a register the map does not have")
        return bytearray(super().read(register, length))

    def write(self, register: int, data: bytes) -> None:
        if any((register + i) & 0xFF not in _WRITABLE for i in range(len(data))):
            raise self.nack(f"write of {data.hex(' ')} to 0x{register:02x}: not a writable register")
        super().write(register, data)

    def on_read(self, register: int) -> int:
        self._finish()
        value = self.regs[register]
        if register == _ERR:
            self.regs[_ERR] &= _FATAL  # cmd_err and conf_err clear on read
            return value | (_FATAL if self.fatal else 0)
        if register == _EVENT:
            self.regs[_EVENT] = 0
        elif _DATA <= register < _DATA + 6:
            self.regs[_STATUS] &= ~(_DRDY_PRESS if register < _DATA + 3 else _DRDY_TEMP) & 0xFF
        return value

    def on_write(self, register: int, value: int) -> None:
        if register == _CMD:
            if value == 0xB6:
                self.resets += 1
                self.fatal = False
                self._reset_registers()
            else:
                self.regs[_ERR] |= _CMD_ERR
        elif register == _OSR and (value & 0x07 > 5 or value >> 3 & 0x07 > 5):
            self.regs[_ERR] |= _CONF_ERR
        elif register == _PWR_CTRL and value >> 4 & 0x03 in (0b01, 0b10):
            self._start((bool(value & 0x01), bool(value & 0x02)))

    def _start(self, enabled: tuple[bool, bool]) -> None:
        self.measurements += 1
        self._enabled = enabled
        self.regs[_STATUS] &= ~(_DRDY_PRESS | _DRDY_TEMP) & 0xFF
        osr = self.regs[_OSR]
        took = conversion_s(osr & 0x07, osr >> 3 & 0x07, press=enabled[0], temp=enabled[1])
        self._done_at = self._now() + (took if self._clock else 0.0)

    def _finish(self) -> None:
        """End the running measurement if its time has come: latch results, back to sleep."""
        if self._done_at is None or self.stuck or self._now() < self._done_at:
            return
        self._done_at = None
        press_en, temp_en = self._enabled
        raw_t = self.raw_temperature
        if raw_t is None:
            raw_t = invert_monotonic(lambda raw: temperature_float(raw, self._par), self.temperature_c,
                                     0xFFFFFF, rising=True)
        t_lin = temperature_float(raw_t, self._par)
        raw_p = self.raw_pressure
        if raw_p is None:
            raw_p = invert_monotonic(lambda raw: pressure_float(raw, t_lin, self._par), self.pressure_pa,
                                     0xFFFFFF, rising=False)
        if press_en:
            self.poke(_DATA, raw_p.to_bytes(3, "little"))
            self.regs[_STATUS] |= _DRDY_PRESS
        if temp_en:
            self.poke(_DATA + 3, raw_t.to_bytes(3, "little"))
            self.regs[_STATUS] |= _DRDY_TEMP
        self.regs[_PWR_CTRL] &= 0x0F  # mode back to sleep (§3.3)



class BMP390Model(BMP388Model):
    """A BMP390 on a fake bus: a BMP388 with chip id 0x60."""

    CHIP_ID = 0x60
