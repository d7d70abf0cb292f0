"""Models of the Bosch BME280 and BMP280 for `FakeI2CBus`.

The chips as their datasheets describe them (BME280 BST-BME280-DS002, BMP280 BST-BMP280-DS001):
chip id at 0xD0, calibration NVM at 0x88..0xA1 and 0xE1..0xE7, a write to ctrl_meas (0xF4)
with mode forced starts a measurement, `status.measuring` (0xF3 bit 3) stays set for
`busy_reads` reads of the status register, then the data registers (0xF7..0xFE) hold the
result and the mode falls back to sleep. Writing 0xB6 to 0xE0 resets the registers. A skipped
conversion (oversampling 0) reads 0x80000 (0x8000 for humidity), as on the chip.

Set `temperature_c`, `pressure_pa` and `humidity_pct`: the model finds raw ADC values that give
them, inverting the datasheet's floating-point compensation (BME280 §8.1) by bisection, so a
driver using the integer formulas (§4.2.3) reads them back within their resolution. Or set
`raw_temperature`, `raw_pressure`, `raw_humidity` to put exact ADC values in the registers.
The default calibration is the BMP280 datasheet's example (§3.12), with humidity trimming
from a real BME280 (the datasheet gives no humidity example).

    >>> from sensord.testing import FakeI2CBus
    >>> bus = FakeI2CBus([BME280Model(temperature_c=21.5)])
    >>> hex(bus.read_byte_data(0x76, 0xD0))
    '0x60'
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from sensord.testing.conversion import PolledConversion
from sensord.testing.i2c import RegisterMapDevice

_REG_CALIB_TP = 0x88
_REG_CALIB_H = 0xE1
_REG_ID = 0xD0
_REG_RESET = 0xE0
_REG_CTRL_HUM = 0xF2
_REG_STATUS = 0xF3
_REG_CTRL_MEAS = 0xF4
_REG_CONFIG = 0xF5
_REG_DATA = 0xF7
_MEASURING = 0x08
_SKIPPED_20BIT = 0x80000
_SKIPPED_16BIT = 0x8000

#: BMP280 datasheet §3.12, the compensation example: dig_T1..dig_T3, dig_P1..dig_P9.
DATASHEET_T = (27504, 26435, -1000)
DATASHEET_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
#: dig_H1..dig_H6 as read from a real BME280.
TYPICAL_H = (75, 362, 0, 313, 50, 30)
#: The raw values of the BMP280 datasheet's example: 25.08 °C and 100653 Pa.
DATASHEET_ADC_T = 519888
DATASHEET_ADC_P = 415148


def t_fine_float(adc_t: float, t: tuple[int, ...]) -> float:
    """The datasheet's double-precision t_fine (BME280 §8.1); °C is t_fine / 5120."""
    var1 = (adc_t / 16384.0 - t[0] / 1024.0) * t[1]
    var2 = (adc_t / 131072.0 - t[0] / 8192.0) ** 2 * t[2]
    return var1 + var2


def pressure_pa_float(adc_p: float, t_fine: float, p: tuple[int, ...]) -> float:
    """The datasheet's double-precision pressure in Pa (BME280 §8.1)."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * p[5] / 32768.0
    var2 = var2 + var1 * p[4] * 2.0
    var2 = var2 / 4.0 + p[3] * 65536.0
    var1 = (p[2] * var1 * var1 / 524288.0 + p[1] * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p[0]
    pa = 1048576.0 - adc_p
    pa = (pa - var2 / 4096.0) * 6250.0 / var1
    return pa + (p[8] * pa * pa / 2147483648.0 + pa * p[7] / 32768.0 + p[6]) / 16.0


def humidity_pct_float(adc_h: float, t_fine: float, h: tuple[int, ...]) -> float:
    """The datasheet's double-precision relative humidity in %, not clamped (BME280 §8.1)."""
    var = t_fine - 76800.0
    var = (adc_h - (h[3] * 64.0 + h[4] / 16384.0 * var)) * (
        h[1] / 65536.0 * (1.0 + h[5] / 67108864.0 * var * (1.0 + h[2] / 67108864.0 * var)))
    return var * (1.0 - h[0] * var / 524288.0)


def invert_monotonic(f: Callable[[int], float], target: float, high: int, *, rising: bool) -> int:
    """The raw value in 0..high whose f is closest to target, f monotonic (rising or falling):
    a model's ADC value for a physical value, by bisection."""
    lo, hi = 0, high
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda raw: abs(f(raw) - target))


class BMP280Model(RegisterMapDevice):
    """A BMP280 on a fake bus: temperature and pressure, forced mode, status polling."""

    DEFAULT_ADDRESS = 0x76
    CHIP_ID = 0x58
    HUMIDITY = False

    def __init__(self, *, address: int | None = None, chip_id: int | None = None,
                 temperature_c: float = 25.08, pressure_pa: float = 100653.27, humidity_pct: float = 45.0,
                 busy_reads: int = 1, dig_t: tuple[int, ...] = DATASHEET_T,
                 dig_p: tuple[int, ...] = DATASHEET_P, dig_h: tuple[int, ...] = TYPICAL_H) -> None:
        super().__init__(address=self.DEFAULT_ADDRESS if address is None else address,
                         read_only=[_REG_ID, _REG_RESET, _REG_STATUS, *range(0x88, 0xA2),
                                    *range(0xE1, 0xE8), *range(_REG_DATA, 0x100)])
        #: Values the next conversion measures.
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        self.humidity_pct = humidity_pct
        #: Exact ADC values for the next conversion, instead of the physical values above.
        self.raw_temperature: int | None = None
        self.raw_pressure: int | None = None
        self.raw_humidity: int | None = None
        #: How many status reads after a conversion starts still show `measuring`.
        self.busy_reads = busy_reads
        #: Conversions started so far, and soft resets.
        self.conversions = 0
        self.resets = 0
        self.dig_t, self.dig_p, self.dig_h = dig_t, dig_p, dig_h
        self._conversion = PolledConversion(self._latch)
        self._osrs = (0, 0, 0)  # osrs_t, osrs_p, osrs_h of the running conversion
        self.poke(_REG_ID, self.CHIP_ID if chip_id is None else chip_id)
        self.poke(_REG_CALIB_TP, struct.pack("<Hhh", *dig_t) + struct.pack("<Hhhhhhhhh", *dig_p))
        if self.HUMIDITY:
            h1, h2, h3, h4, h5, h6 = dig_h
            self.poke(0xA1, h1)
            self.poke(_REG_CALIB_H, struct.pack("<hB", h2, h3) + bytes(
                [(h4 >> 4) & 0xFF, (h4 & 0x0F) | (h5 & 0x0F) << 4, (h5 >> 4) & 0xFF]) + struct.pack("<b", h6))
        self._reset_registers()

    def _reset_registers(self) -> None:
        # BME280 §5.3, Table 18: reset values; data registers read "skipped" until a conversion.
        self.poke(_REG_CTRL_HUM, [0, 0, 0, 0])  # ctrl_hum, status, ctrl_meas, config
        self.poke(_REG_DATA, [0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
        self._conversion.cancel()

    def on_read(self, register: int) -> int:
        if register == _REG_STATUS and self._conversion.poll():
            return _MEASURING
        return self.regs[register]

    def on_write(self, register: int, value: int) -> None:
        if register == _REG_RESET and value == 0xB6:  # §5.4.2: other values have no effect
            self.resets += 1
            self._reset_registers()
        elif register == _REG_CTRL_MEAS and value & 0x03 in (0b01, 0b10):  # forced mode (§3.3.2)
            self.conversions += 1
            self._osrs = (value >> 5, (value >> 2) & 0x07, self.regs[_REG_CTRL_HUM] & 0x07)
            self._conversion.start(self.busy_reads)

    def _latch(self) -> None:
        """End the running conversion: latch the results, fall back to sleep mode."""
        osrs_t, osrs_p, osrs_h = self._osrs
        adc_t = self.raw_temperature
        if adc_t is None:
            adc_t = invert_monotonic(lambda raw: t_fine_float(raw, self.dig_t) / 5120.0, self.temperature_c,
                            0xFFFFF, rising=True)
        t_fine = t_fine_float(adc_t, self.dig_t)
        adc_p = self.raw_pressure
        if adc_p is None:
            adc_p = invert_monotonic(lambda raw: pressure_pa_float(raw, t_fine, self.dig_p), self.pressure_pa,
                            0xFFFFF, rising=False)
        adc_t = adc_t if osrs_t else _SKIPPED_20BIT
        adc_p = adc_p if osrs_p else _SKIPPED_20BIT
        data = bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
                      adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4])
        if self.HUMIDITY:
            adc_h = self.raw_humidity
            if adc_h is None:
                adc_h = invert_monotonic(lambda raw: humidity_pct_float(raw, t_fine, self.dig_h), self.humidity_pct,
                                0xFFFF, rising=True)
            data += (adc_h if osrs_h else _SKIPPED_16BIT).to_bytes(2, "big")
        self.poke(_REG_DATA, data)
        self.poke(_REG_CTRL_MEAS, self.regs[_REG_CTRL_MEAS] & ~0x03)  # back to sleep (§3.3.2)


class BME280Model(BMP280Model):
    """A BME280 on a fake bus: a BMP280 plus humidity (ctrl_hum, calibration at 0xE1)."""

    CHIP_ID = 0x60
    HUMIDITY = True
