"""A model of the Bosch BME680 (datasheet BST-BME680-DS001) for `FakeI2CBus`.

Registers as on the chip: chip id 0x61 at 0xD0, variant id 0x00 at 0xF0, calibration at
0x8A..0xA0, 0xE1..0xEE and 0x00..0x04, soft reset by 0xB6 to 0xE0, the gas set-points
(idac_heat_x 0x50.., res_heat_x 0x5A.., gas_wait_x 0x64..), ctrl_gas_0/1 (0x70, 0x71), ctrl_hum
(0x72), ctrl_meas (0x74) and field 0 (0x1D..0x2B). A multi-byte write is taken as
register/value pairs, as the chip does (§6.2), not as consecutive registers.

Writing mode forced to ctrl_meas runs one TPHG cycle: meas_status_0 (0x1D) shows `measuring`
(and `gas_measuring` when run_gas is set) for `busy_reads` reads of it, then `new_data_0`, the
data registers hold the result and the mode falls back to sleep. A skipped conversion reads
0x80000 (temperature, pressure) or 0x8000 (humidity). The gas result has `gas_valid_r` set when
run_gas was set with nb_conv 0, and `heat_stab_r` when moreover res_heat_0 is not 0 and
gas_wait_0 lasts at least `heat_up_ms` (the datasheet: 20 to 30 ms to reach the target, §3.3.5).

Values: by default the raw ADC values of an example worked out with a real BME680's trimming
(`REAL_CALIBRATION`), which the float formulas turn into 19.31 °C, 100977.5 Pa, 25.2 % and
20467.3 Ω (`EXAMPLE`). Set `temperature_c`, `pressure_pa`, `humidity_pct` or `gas_ohm` and the
model finds the raw values that give them, inverting the floating-point compensation by
bisection, so a driver using the integer formulas reads them back within their resolution.

    >>> from sensord.testing import FakeI2CBus
    >>> bus = FakeI2CBus([BME680Model()])
    >>> hex(bus.read_byte_data(0x77, 0xD0))
    '0x61'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sensord.testing.i2c import RegisterMapDevice
from sensord.testing.models.bme280 import invert_monotonic

_REG_STATUS = 0x1D
_REG_DATA = 0x1F  # press 0x1F..0x21, temp 0x22..0x24, hum 0x25..0x26
_REG_GAS_R = 0x2A
_REG_RES_HEAT_0 = 0x5A
_REG_GAS_WAIT_0 = 0x64
_REG_CTRL_GAS_0 = 0x70
_REG_CTRL_GAS_1 = 0x71
_REG_CTRL_HUM = 0x72
_REG_CTRL_MEAS = 0x74
_REG_CONFIG = 0x75
_REG_ID = 0xD0
_REG_RESET = 0xE0
_REG_VARIANT = 0xF0
_NEW_DATA, _GAS_MEASURING, _MEASURING = 0x80, 0x40, 0x20
_GAS_VALID, _HEAT_STAB = 0x20, 0x10
_SKIPPED_20BIT = 0x80000
_SKIPPED_16BIT = 0x8000

# §3.4.1, Table 16: the gas range constants of the floating-point formula.
GAS_ARRAY_1 = (1, 1, 1, 1, 1, 0.99, 1, 0.992, 1, 1, 0.998, 0.995, 1, 0.99, 1, 1)
GAS_ARRAY_2 = (8000000, 4000000, 2000000, 1000000, 499500.4995, 248262.1648, 125000, 63004.03226, 31281.28128,
               15625, 7812.5, 3906.25, 1953.125, 976.5625, 488.28125, 244.140625)


@dataclass(frozen=True)
class Trimming:
    """The calibration a model holds, named as the datasheet and Bosch's API name it."""

    t: tuple[int, int, int]  # par_t1..par_t3
    p: tuple[int, ...]  # par_p1..par_p10
    h: tuple[int, ...]  # par_h1..par_h7
    g: tuple[int, int, int]  # par_g1..par_g3
    res_heat_range: int = 0
    res_heat_val: int = 0
    range_switching_error: int = 0


#: A real BME680's trimming, as published with a worked example by an independent driver's tests.
REAL_CALIBRATION = Trimming(t=(26195, 26290, 3), p=(35395, -10405, 88, 4836, -118, 30, 26, -765, -3367, 30),
                            h=(717, 1021, 0, 45, 20, 120, -100), g=(-30, -5969, 18))
#: That example: raw temperature, pressure, humidity, gas ADC and gas range, and what they give.
EXAMPLE = {"adc_t": 480732, "adc_p": 393705, "adc_h": 16820, "gas_adc": 195, "gas_range": 9,
           "temperature_c": 19.3113, "pressure_pa": 100977.52, "humidity_pct": 25.2, "gas_ohm": 20467.2644}


def t_fine_float(adc_t: float, cal: Trimming) -> float:
    """The floating-point t_fine; °C is t_fine / 5120."""
    t1, t2, t3 = cal.t
    var1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    var2 = (adc_t / 131072.0 - t1 / 8192.0) ** 2 * (t3 * 16.0)
    return var1 + var2


def pressure_pa_float(adc_p: float, t_fine: float, cal: Trimming) -> float:
    """The floating-point pressure in Pa."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9, p10 = cal.p
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * (p6 / 131072.0)
    var2 = var2 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 16384.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    pa = (1048576.0 - adc_p - var2 / 4096.0) * 6250.0 / var1
    var1 = p9 * pa * pa / 2147483648.0
    var2 = pa * (p8 / 32768.0)
    var3 = (pa / 256.0) ** 3 * (p10 / 131072.0)
    return pa + (var1 + var2 + var3 + p7 * 128.0) / 16.0


def humidity_pct_float(adc_h: float, t_fine: float, cal: Trimming) -> float:
    """The floating-point relative humidity in %, not clamped."""
    h1, h2, h3, h4, h5, h6, h7 = cal.h
    temp = t_fine / 5120.0
    var1 = adc_h - (h1 * 16.0 + h3 / 2.0 * temp)
    var2 = var1 * (h2 / 262144.0 * (1.0 + h4 / 16384.0 * temp + h5 / 1048576.0 * temp * temp))
    return var2 + (h6 / 16384.0 + h7 / 2097152.0 * temp) * var2 * var2


def gas_ohm_float(gas_adc: int, gas_range: int, cal: Trimming) -> float:
    """§3.4.1: the floating-point gas resistance in Ω."""
    var1 = (1340.0 + 5.0 * cal.range_switching_error) * GAS_ARRAY_1[gas_range]
    return var1 * GAS_ARRAY_2[gas_range] / (gas_adc - 512.0 + var1)


def gas_raw(ohm: float, cal: Trimming) -> tuple[int, int]:
    """The gas ADC value and range that give `ohm`: the most sensitive range it fits."""
    for gas_range in range(16):
        var1 = (1340.0 + 5.0 * cal.range_switching_error) * GAS_ARRAY_1[gas_range]
        adc = round(var1 * GAS_ARRAY_2[gas_range] / ohm + 512.0 - var1)
        if 0 <= adc <= 1023:
            return adc, gas_range
    return 1023, 15


class BME680Model(RegisterMapDevice):
    """A BME680 on a fake bus: forced TPHG cycles, status polling, the gas flags."""

    DEFAULT_ADDRESS = 0x77
    #: The addresses SDO selects (§6.2): where the fake node may put one (`fake_node_buses`).
    ADDRESSES = (0x76, 0x77)
    CHIP_ID = 0x61

    def __init__(self, *, address: int | None = None, chip_id: int = CHIP_ID, variant_id: int = 0x00,
                 calibration: Trimming = REAL_CALIBRATION,
                 temperature_c: float | None = None, pressure_pa: float | None = None,
                 humidity_pct: float | None = None, gas_ohm: float | None = None, busy_reads: int = 1,
                 heat_up_ms: int = 20) -> None:
        super().__init__(address=self.DEFAULT_ADDRESS if address is None else address,
                         read_only=[_REG_ID, _REG_RESET, _REG_VARIANT, *range(0x00, 0x05), *range(0x1D, 0x3B),
                                    *range(0x8A, 0xA1), *range(0xE1, 0xEF)])
        self.calibration = calibration
        #: Values the next cycle measures; None: the example's raw values.
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        self.humidity_pct = humidity_pct
        self.gas_ohm = gas_ohm
        #: How many reads of meas_status_0 after a cycle starts still show it running.
        self.busy_reads = busy_reads
        #: The shortest gas_wait_0 after which the heater is stable (heat_stab_r).
        self.heat_up_ms = heat_up_ms
        #: Cycles started so far, soft resets, and the res_heat_0 of the last cycle.
        self.cycles = 0
        self.resets = 0
        self.last_res_heat: int | None = None
        self._busy = 0
        self._pending = False
        self.poke(_REG_ID, chip_id)
        self.poke(_REG_VARIANT, variant_id)  # 0x01 on a BME688
        self._poke_calibration()
        self._reset_registers()

    def _poke_calibration(self) -> None:
        cal = self.calibration
        t1, t2, t3 = cal.t
        p1, p2, p3, p4, p5, p6, p7, p8, p9, p10 = cal.p
        h1, h2, h3, h4, h5, h6, h7 = cal.h
        g1, g2, g3 = cal.g
        self.poke(0x8A, struct.pack("<hbxHhbxhhbbxxhhB", t2, t3, p1, p2, p3, p4, p5, p7, p6, p8, p9, p10))
        self.poke(0xE1, bytes([h2 >> 4, (h2 & 0x0F) << 4 | h1 & 0x0F, h1 >> 4])
                  + struct.pack("<bbbBbHhbb", h3, h4, h5, h6, h7, t1, g2, g1, g3))
        self.poke(0x00, [cal.res_heat_val & 0xFF, 0, (cal.res_heat_range & 0x03) << 4, 0,
                         (cal.range_switching_error & 0x0F) << 4])

    def _reset_registers(self) -> None:
        # §5.2: control registers reset to 0; the data registers read "skipped" until a cycle.
        for register in (*range(0x50, 0x6E), _REG_CTRL_GAS_0, _REG_CTRL_GAS_1, _REG_CTRL_HUM, 0x73, _REG_CTRL_MEAS,
                         _REG_CONFIG):
            self.poke(register, 0)
        self.poke(_REG_STATUS, [0, 0, 0x80, 0, 0, 0x80, 0, 0, 0x80, 0, 0, 0, 0, 0, 0])
        self._busy = 0
        self._pending = False

    # -- the bus ----------------------------------------------------------------------------

    def write(self, register: int, data: bytes) -> None:
        # §6.2: a multi-byte write is register/value pairs, not an auto-incremented run.
        pairs = [(register, data[0])] if data else []
        pairs += list(zip(data[1::2], data[2::2], strict=False))
        for reg, value in pairs:
            self.pointer = reg
            self._write_at_pointer(bytes([value]))

    def write_raw(self, data: bytes) -> None:
        if len(data) <= 1:
            super().write_raw(data)
        else:
            self.write(data[0], data[1:])

    def on_read(self, register: int) -> int:
        if register == _REG_STATUS:
            if self._busy:
                self._busy -= 1
                return _MEASURING | (_GAS_MEASURING if self.regs[_REG_CTRL_GAS_1] & 0x10 else 0)
            self._finish()
        return self.regs[register]

    def on_write(self, register: int, value: int) -> None:
        if register == _REG_RESET and value == 0xB6:
            self.resets += 1
            self._reset_registers()
        elif register == _REG_CTRL_MEAS and value & 0x03 == 0b01:  # forced mode (§3.1)
            self.cycles += 1
            self._pending = True
            self.poke(_REG_STATUS, 0)  # new_data_0 clears as the cycle starts
            self._busy = self.busy_reads
            if not self._busy:
                self._finish()

    def _finish(self) -> None:
        """End the running cycle: latch the results into field 0, fall back to sleep."""
        if not self._pending:
            return
        self._pending = False
        cal = self.calibration
        ctrl_meas = self.regs[_REG_CTRL_MEAS]
        osrs_t, osrs_p, osrs_h = ctrl_meas >> 5, (ctrl_meas >> 2) & 0x07, self.regs[_REG_CTRL_HUM] & 0x07
        adc_t = EXAMPLE["adc_t"] if self.temperature_c is None else invert_monotonic(
            lambda raw: t_fine_float(raw, cal) / 5120.0, self.temperature_c, 0xFFFFF, rising=True)
        t_fine = t_fine_float(adc_t, cal)
        adc_p = EXAMPLE["adc_p"] if self.pressure_pa is None else invert_monotonic(
            lambda raw: pressure_pa_float(raw, t_fine, cal), self.pressure_pa, 0xFFFFF, rising=False)
        adc_h = EXAMPLE["adc_h"] if self.humidity_pct is None else invert_monotonic(
            lambda raw: humidity_pct_float(raw, t_fine, cal), self.humidity_pct, 0xFFFF, rising=True)
        adc_t, adc_p = (int(adc_t) if osrs_t else _SKIPPED_20BIT), (int(adc_p) if osrs_p else _SKIPPED_20BIT)
        adc_h = int(adc_h) if osrs_h else _SKIPPED_16BIT
        self.poke(_REG_DATA, bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
                                    adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4]) + adc_h.to_bytes(2, "big"))
        ctrl_gas_1 = self.regs[_REG_CTRL_GAS_1]
        gas_adc, gas_range = (int(EXAMPLE["gas_adc"]), int(EXAMPLE["gas_range"])) if self.gas_ohm is None \
            else gas_raw(self.gas_ohm, cal)
        flags = 0
        if ctrl_gas_1 & 0x10 and ctrl_gas_1 & 0x0F == 0:
            self.last_res_heat = self.regs[_REG_RES_HEAT_0]
            flags = _GAS_VALID
            wait = self.regs[_REG_GAS_WAIT_0]
            if self.last_res_heat and (wait & 0x3F) << 2 * (wait >> 6) >= self.heat_up_ms:
                flags |= _HEAT_STAB
        else:
            gas_adc = gas_range = 0
        self.poke(_REG_GAS_R, [gas_adc >> 2, (gas_adc & 0x03) << 6 | flags | gas_range])
        self.poke(_REG_STATUS, _NEW_DATA)  # gas_meas_index 0
        self.poke(_REG_CTRL_MEAS, ctrl_meas & ~0x03)  # back to sleep
