"""Fake INA226 and INA260 current/power monitors (TI SBOS547, SBOS656) for `FakeI2CBus`.

Set the physical values; the registers follow from them and from what the driver programmed,
computed as the chips do:

    ina = INA226Model(bus_voltage_v=12.0, current_a=10.0, shunt_ohms=0.002)
    bus = FakeI2CBus([ina])

- INA226: shunt voltage = current × shunt resistance in 2.5 µV steps, clipped to ±81.92 mV;
  current register = trunc(shunt × CAL / 2048) (equation 3), power = trunc(|current| × bus /
  20000); both 0 while the calibration is 0 (after reset).
- INA260: current in 1.25 mA steps through its 2 mΩ shunt (specified to ±15 A),
  power = trunc(|current| × bus / 6400), i.e. 10 mW steps.
- Both: bus voltage in 1.25 mV steps (0 to 40.96 V in the register); OVF (mask/enable bit 2)
  when current or power leave their 16-bit range (they are then clipped).

The first byte of a write is the register pointer, then 16 bits MSB first; other lengths and
pointers the chip does not have are NACKed. Reads return the selected register MSB first.
Writing RST (configuration bit 15) resets every register, as does `power_cycle()`.
Configuration bits 14:12 are read-only (100b on the INA226, 110b on the INA260).

Conversion ready (CVRF, mask/enable bit 3): with `clock` (seconds, e.g. `FakeClock().monotonic`)
a result completes every conversion period (2 × 1.1 ms × the averaged samples) from the last
configuration write; CVRF reads 1 when one completed since mask/enable was last read, and
reading mask/enable clears it. Without a clock it always reads 1. `stalled=True` keeps it 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sensord.testing.pointer import PointerWordModel

_CONFIG, _SHUNT, _BUS, _POWER, _CURRENT, _CALIBRATION, _MASK, _ALERT = range(8)
_MANUFACTURER, _DIE = 0xFE, 0xFF
_CVRF, _OVF = 0x0008, 0x0004
_MASK_WRITABLE = 0xFC03  # alert function bits 15:10, APOL bit 1, LEN bit 0
_AVG = (1, 4, 16, 64, 128, 256, 512, 1024)
_CT_S = (140e-6, 204e-6, 332e-6, 588e-6, 1.1e-3, 2.116e-3, 4.156e-3, 8.244e-3)


class INA226Model(PointerWordModel):
    """An INA226 with a settable bus voltage and current through a settable shunt."""

    DEFAULT_ADDRESS = 0x40
    #: A1 and A0 select 16 addresses; the fake node takes the first free one.
    ADDRESSES = tuple(range(0x40, 0x50))
    address = DEFAULT_ADDRESS
    RESET_CONFIG = 0x4127
    DIE_ID = 0x2260
    REGISTERS: tuple[int, ...] = (_CONFIG, _SHUNT, _BUS, _POWER, _CURRENT, _CALIBRATION, _MASK, _ALERT,
                                  _MANUFACTURER, _DIE)

    def __init__(self, *, address: int | None = None, bus_voltage_v: float = 12.0, current_a: float = 0.5,
                 shunt_ohms: float = 0.002, die_id: int | None = None, manufacturer_id: int = 0x5449,
                 stalled: bool = False, clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        #: Volts at VBUS against GND.
        self.bus_voltage_v = bus_voltage_v
        #: Amperes flowing from IN+ to IN- through the shunt.
        self.current_a = current_a
        #: The shunt resistor fitted (INA226), in ohms.
        self.shunt_ohms = shunt_ohms
        self.die_id = self.DIE_ID if die_id is None else die_id
        self.manufacturer_id = manufacturer_id
        #: Whether conversions never complete (CVRF stays 0).
        self.stalled = stalled
        #: How many times the chip was reset (RST or `power_cycle()`).
        self.resets = 0
        self._clock = clock
        self.power_cycle()
        self.resets = 0

    def power_cycle(self) -> None:
        """Reset every register, as after a brown-out."""
        self.resets += 1
        self.config = self.RESET_CONFIG
        self.calibration = 0
        self.mask = 0
        self.alert = 0
        self._restart()

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def _restart(self) -> None:
        self._started = self._cleared = self._now()

    @property
    def samples(self) -> int:
        """The AVG setting as a number of samples."""
        return _AVG[self.config >> 9 & 0b111]

    def conversion_period_s(self) -> float:
        """Bus plus shunt conversion time, times the samples averaged."""
        return (_CT_S[self.config >> 6 & 0b111] + _CT_S[self.config >> 3 & 0b111]) * self.samples

    def _ready(self) -> bool:
        if self.stalled:
            return False
        if self._clock is None:
            return True
        period = self.conversion_period_s()
        done = math.floor((self._now() - self._started) / period + 1e-9)
        return done > math.floor((self._cleared - self._started) / period + 1e-9)

    def _measurement(self) -> tuple[int, int, int, int, bool]:
        """(shunt, bus, current, power) registers and the overflow flag, INA226 arithmetic."""
        shunt = max(-0x7FFF, min(0x7FFF, round(self.current_a * self.shunt_ohms / 2.5e-6)))
        volts = max(0, min(0x7FFF, round(self.bus_voltage_v / 0.00125)))
        current = int(shunt * self.calibration / 2048)
        power = int(abs(current) * volts / 20000)
        return shunt, volts, current, power, False

    def registers(self) -> dict[int, int]:
        """Every register as the chip would show it now (reading them here clears nothing)."""
        shunt, volts, current, power, overflow = self._measurement()
        overflow = overflow or not -0x8000 <= current <= 0x7FFF or power > 0xFFFF
        current = max(-0x8000, min(0x7FFF, current))
        power = min(0xFFFF, power)
        mask = self.mask | (_CVRF if self._ready() else 0) | (_OVF if overflow else 0)
        return {_CONFIG: self.config, _SHUNT: shunt & 0xFFFF, _BUS: volts, _POWER: power,
                _CURRENT: current & 0xFFFF, _CALIBRATION: self.calibration, _MASK: mask, _ALERT: self.alert,
                _MANUFACTURER: self.manufacturer_id, _DIE: self.die_id}

    # -- PointerWordModel ----------------------------------------------------------------------

    def check_pointer(self, pointer: int) -> None:
        if pointer not in self.REGISTERS:
            raise self.nack(f"no register 0x{pointer:02x}")

    def write_word(self, register: int, value: int) -> None:
        if register == _CONFIG:
            if value & 0x8000:
                self.power_cycle()
            else:
                self.config = value & 0x0FFF | self.RESET_CONFIG & 0x7000
                self._restart()
        elif register == _CALIBRATION:
            self.calibration = value & 0x7FFF  # bit 15 is reserved
        elif register == _MASK:
            self.mask = value & _MASK_WRITABLE
        elif register == _ALERT:
            self.alert = value
        # The measurement and id registers are read-only: writes are ignored.

    def read_word(self, register: int) -> int:
        value = self.registers()[register]
        if register == _MASK:
            self._cleared = self._now()  # reading mask/enable clears CVRF
        return value


class INA260Model(INA226Model):
    """An INA260: the current through its 2 mΩ shunt in 1.25 mA steps, no calibration."""

    RESET_CONFIG = 0x6127
    DIE_ID = 0x2270
    REGISTERS = (_CONFIG, _SHUNT, _BUS, _POWER, _MASK, _ALERT, _MANUFACTURER, _DIE)

    def _measurement(self) -> tuple[int, int, int, int, bool]:
        raw = round(self.current_a / 0.00125)
        current = max(-0x8000, min(0x7FFF, raw))
        volts = max(0, min(0x7FFF, round(self.bus_voltage_v / 0.00125)))
        power = int(abs(current) * volts / 6400)
        # On the INA260 register 01h is the current.
        return current, volts, current, power, raw != current

    def registers(self) -> dict[int, int]:
        regs = super().registers()
        del regs[_CURRENT], regs[_CALIBRATION]
        return regs
