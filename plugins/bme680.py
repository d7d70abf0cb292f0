"""Bosch BME680 (temperature, humidity, pressure and a heated metal-oxide gas sensor), type `bme680`.

Each read runs one forced-mode TPHG cycle (datasheet §3.1, Table 10): temperature, pressure and
humidity conversions, then the hotplate heats to `heater_temperature_c` for
`heater_duration_ms` and the gas sensor's resistance is measured; then the chip sleeps again
and the heater is off. The driver waits the cycle's length, polls `new_data_0` (§5.3.5.1),
burst-reads the data registers and compensates them with the chip's calibration. Quantities:
`temperature` (°C), `humidity` (%), `pressure` (hPa) and `gas_resistance` (Ω): the raw
resistance, which falls as volatile organic compounds (and humidity) rise. Bosch's proprietary
BSEC library, which turns it into an "IAQ" index, is not used.

The gas reading is published only when the chip flags it valid (`gas_valid_r`, §5.3.5.5) and
the heater reached its target temperature in time (`heat_stab_r`, §5.3.5.6); otherwise the
other three are published alone and a warning is logged once (set a longer
`heater_duration_ms` or a lower temperature). The heater set-point (`res_heat_0`, §3.3.5) is
computed from the target and the ambient temperature, which is the chip's own last reading
(25 °C before the first). The resistance is stable after the hotplate has run for a while:
expect it to drift for the first minutes (hours, on a new sensor).

Wiring (I2C, enabled with `dtparam=i2c_arm=on`): VIN/VCC to 3.3 V (header pin 1), GND to pin 6,
SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). CSB high (or open on most breakouts) selects I2C.
Address: SDO to GND gives 0x76, SDO to VDDIO gives 0x77 (§6.2); Adafruit's boards strap 0x77,
Pimoroni's 0x76.

Datasheet: BME680, BST-BME680-DS001 (revision 1.0, July 2017),
https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme680-ds001.pdf
Gas: §3.3.5 (heater resistance, Table 11), §3.4.1 (gas resistance, Table 16), §5.3 (registers).
The datasheet leaves the temperature, pressure and humidity compensation to Bosch's BME68x API
(§3.4); the integer formulas and calibration layout here are those of that API (BSD-3-Clause).

Example::

    [[sensor]]
    name = "lounge"
    type = "bme680"
    interval_s = 60
    address = 0x77
    ## Samples averaged per measurement: 1, 2, 4, 8 or 16 (the datasheet's quick start, §3.2.1).
    # oversampling_temperature = 2
    # oversampling_pressure = 16
    # oversampling_humidity = 1
    ## The hotplate's target (200 to 400 °C) and how long it heats before the gas reading (1 to 4032 ms).
    # heater_temperature_c = 320
    # heater_duration_ms = 150
    ## false: no heating and no gas reading, only temperature, humidity and pressure.
    # gas = true
    # bus = 1
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, Reading, Sensor, field_range
from sensord.i2c import signed

from ._bosch import Oversampling, chip_id_in, osrs_code, soft_reset, trunc_div

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

log = logging.getLogger(__name__)

# Registers (§5.2, the memory map; §5.3, the register descriptions).
_REG_STATUS = 0x1D  # meas_status_0 (§5.3.5): new_data_0<7>, gas_measuring<6>, measuring<5>
_NEW_DATA, _GAS_MEASURING, _MEASURING = 0x80, 0x40, 0x20
_REG_FIELD0 = 0x1D  # field 0: meas_status_0 .. gas_r_lsb (0x2B), read in one burst (§5.3.5)
_FIELD0_LEN = 0x2B - 0x1D + 1
_REG_RES_HEAT_0 = 0x5A  # §5.3.3.2
_REG_GAS_WAIT_0 = 0x64  # §5.3.3.3
_REG_CTRL_GAS_0 = 0x70  # §5.3.3.4: heat_off<3>
_REG_CTRL_GAS_1 = 0x71  # §5.3.3.5/6: run_gas<4>, nb_conv<3:0> (set-point 0)
_RUN_GAS = 0x10
_REG_CTRL_HUM = 0x72  # §5.3.2.1: osrs_h<2:0>
_REG_CTRL_MEAS = 0x74  # §5.3.1.3, 5.3.2.2-3: osrs_t<7:5>, osrs_p<4:2>, mode<1:0>
_MODE_FORCED = 0b01
_REG_ID = 0xD0  # §5.3.4: chip_id
_CHIP_ID = 0x61
# The BME688 has the same chip id and variant_id 0x01 here (BME688 datasheet); its gas ADC sits in
# other registers with another formula. The BME680 reads 0x00.
_REG_VARIANT = 0xF0
_REG_RESET = 0xE0  # §5.3.4: writing 0xB6 (`_bosch.SOFT_RESET`) resets
_GAS_VALID, _HEAT_STAB = 0x20, 0x10  # gas_r_lsb (0x2B) bits (§5.3.5.5, §5.3.5.6)
# Calibration blocks (Bosch's BME68x API: coefficient areas 1, 2 and 3).
_REG_CALIB_1, _CALIB_1_LEN = 0x8A, 23  # 0x8A..0xA0: par_t2, par_t3, par_p1..par_p10
_REG_CALIB_2, _CALIB_2_LEN = 0xE1, 14  # 0xE1..0xEE: par_h1..par_h7, par_t1, par_g2, par_g1, par_g3
_REG_CALIB_3, _CALIB_3_LEN = 0x00, 5  # 0x00..0x04: res_heat_val, res_heat_range, range_switching_error
_SKIPPED_20BIT = 0x80000  # a skipped (or never run) temperature/pressure conversion

_STARTUP_S = 0.010  # after a soft reset, as Bosch's API waits
_POLL_S = 0.005
_POLLS = 20
_AMBIENT_DEFAULT_C = 25.0

# §3.4.1, Table 16: the gas range constants of the integer formula.
_GAS_ARRAY_1 = (2147483647, 2147483647, 2147483647, 2147483647, 2147483647, 2126008810, 2147483647, 2130303777,
                2147483647, 2147483647, 2143188679, 2136746228, 2147483647, 2126008810, 2147483647, 2147483647)
_GAS_ARRAY_2 = (4096000000, 2048000000, 1024000000, 512000000, 255744255, 127110228, 64000000, 32258064, 16016016,
                8000000, 4000000, 2000000, 1000000, 500000, 250000, 125000)


@dataclass(frozen=True)
class Calibration:
    """The chip's trimming parameters (Bosch's BME68x API; gas ones: datasheet Table 11)."""

    par_t1: int
    par_t2: int
    par_t3: int
    par_p1: int
    par_p2: int
    par_p3: int
    par_p4: int
    par_p5: int
    par_p6: int
    par_p7: int
    par_p8: int
    par_p9: int
    par_p10: int
    par_h1: int
    par_h2: int
    par_h3: int
    par_h4: int
    par_h5: int
    par_h6: int
    par_h7: int
    par_g1: int
    par_g2: int
    par_g3: int
    res_heat_range: int
    res_heat_val: int
    range_switching_error: int


def parse_calibration(block1: bytes | list[int], block2: bytes | list[int], block3: bytes | list[int]) -> Calibration:
    """Calibration from the 23 bytes at 0x8A, the 14 at 0xE1 and the 5 at 0x00."""
    b1, b2, b3 = bytes(block1), bytes(block2), bytes(block3)
    # 0x8A: t2 (s16), t3 (s8), -, p1 (u16), p2 (s16), p3 (s8), -, p4, p5 (s16), p7, p6 (s8), -, -, p8, p9 (s16),
    # p10 (u8)
    t2, t3, p1, p2, p3, p4, p5, p7, p6, p8, p9, p10 = struct.unpack("<hbxHhbxhhbbxxhhB", b1)
    # 0xE1: h2 msb, h2/h1 shared nibbles (0xE2), h1 msb, h3..h7, t1 (u16), g2 (s16), g1 (s8), g3 (s8)
    h3, h4, h5, h6, h7, t1, g2, g1, g3 = struct.unpack("<bbbBbHhbb", b2[3:])
    return Calibration(
        par_t1=t1, par_t2=t2, par_t3=t3, par_p1=p1, par_p2=p2, par_p3=p3, par_p4=p4, par_p5=p5, par_p6=p6,
        par_p7=p7, par_p8=p8, par_p9=p9, par_p10=p10,
        par_h1=b2[2] << 4 | b2[1] & 0x0F, par_h2=b2[0] << 4 | b2[1] >> 4,
        par_h3=h3, par_h4=h4, par_h5=h5, par_h6=h6, par_h7=h7, par_g1=g1, par_g2=g2, par_g3=g3,
        res_heat_val=signed(b3[0], 8), res_heat_range=(b3[2] >> 4) & 0x03,
        range_switching_error=signed(b3[4] >> 4, 4))


def compensate_temperature(adc_t: int, cal: Calibration) -> tuple[int, int]:
    """Temperature in 0.01 °C, and t_fine, which pressure and humidity need."""
    var1 = (adc_t >> 3) - (cal.par_t1 << 1)
    var2 = (var1 * cal.par_t2) >> 11
    var3 = ((((var1 >> 1) * (var1 >> 1)) >> 12) * (cal.par_t3 << 4)) >> 14
    t_fine = var2 + var3
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_pressure(adc_p: int, t_fine: int, cal: Calibration) -> int:
    """Pressure in Pa (32-bit integer formula)."""
    var1 = (t_fine >> 1) - 64000
    var2 = ((((var1 >> 2) * (var1 >> 2)) >> 11) * cal.par_p6) >> 2
    var2 = var2 + ((var1 * cal.par_p5) << 1)
    var2 = (var2 >> 2) + (cal.par_p4 << 16)
    var1 = (((((var1 >> 2) * (var1 >> 2)) >> 13) * (cal.par_p3 << 5)) >> 3) + ((cal.par_p2 * var1) >> 1)
    var1 = var1 >> 18
    var1 = ((32768 + var1) * cal.par_p1) >> 15
    if var1 == 0:
        return 0  # an all-zero calibration would divide by zero
    pressure = (1048576 - adc_p - (var2 >> 12)) * 3125
    # The API's order of operations keeps the 32-bit unsigned intermediate from overflowing.
    pressure = (pressure // var1) << 1 if pressure >= 1 << 30 else (pressure << 1) // var1
    var1 = (cal.par_p9 * (((pressure >> 3) * (pressure >> 3)) >> 13)) >> 12
    var2 = ((pressure >> 2) * cal.par_p8) >> 13
    var3 = ((pressure >> 8) * (pressure >> 8) * (pressure >> 8) * cal.par_p10) >> 17
    return pressure + ((var1 + var2 + var3 + (cal.par_p7 << 7)) >> 4)


def compensate_humidity(adc_h: int, t_fine: int, cal: Calibration) -> int:
    """Relative humidity in 0.001 %, clamped to 0..100 %."""
    temp_scaled = (t_fine * 5 + 128) >> 8
    var1 = adc_h - (cal.par_h1 << 4) - (trunc_div(temp_scaled * cal.par_h3, 100) >> 1)
    var2 = (cal.par_h2 * (trunc_div(temp_scaled * cal.par_h4, 100)
                          + trunc_div((temp_scaled * trunc_div(temp_scaled * cal.par_h5, 100)) >> 6, 100)
                          + (1 << 14))) >> 10
    var3 = var1 * var2
    var4 = ((cal.par_h6 << 7) + trunc_div(temp_scaled * cal.par_h7, 100)) >> 4
    var5 = ((var3 >> 14) * (var3 >> 14)) >> 10
    var6 = (var4 * var5) >> 1
    humidity = (((var3 + var6) >> 10) * 1000) >> 12
    return min(max(humidity, 0), 100000)


def gas_resistance_ohm(gas_adc: int, gas_range: int, cal: Calibration) -> int:
    """§3.4.1: the gas sensor's resistance in Ω from gas_r (10 bits) and gas_range (Table 16)."""
    var1 = ((1340 + 5 * cal.range_switching_error) * _GAS_ARRAY_1[gas_range]) >> 16
    var2 = (gas_adc << 15) - (1 << 24) + var1
    return ((_GAS_ARRAY_2[gas_range] * var1 >> 9) + (var2 >> 1)) // var2


def heater_resistance_code(target_c: float, ambient_c: float, cal: Calibration) -> int:
    """§3.3.5: the res_heat_x register value for a hotplate target temperature, with the
    datasheet's floating-point formula (its integer one scales the ambient term differently;
    both give the same code within a step or two)."""
    var1 = cal.par_g1 / 16.0 + 49.0
    var2 = cal.par_g2 / 32768.0 * 0.0005 + 0.00235
    var3 = cal.par_g3 / 1024.0
    var4 = var1 * (1.0 + var2 * target_c)
    var5 = var4 + var3 * ambient_c
    code = 3.4 * (var5 * (4.0 / (4.0 + cal.res_heat_range)) * (1.0 / (1.0 + cal.res_heat_val * 0.002)) - 25)
    return max(0, min(0xFF, int(code)))  # the datasheet's (uint8_t) cast truncates


def gas_wait_code(duration_ms: int) -> int:
    """§5.3.3.3: gas_wait_x, 6 bits of 1 ms steps times a factor of 1, 4, 16 or 64 (bits 7:6);
    100 ms → 0x59 (25 × 4, as in the quick start of §3.2.1); 4032 ms at most."""
    factor = 0
    while duration_ms > 0x3F:
        duration_ms //= 4
        factor += 1
    return factor << 6 | duration_ms


def gas_wait_ms(code: int) -> int:
    """The heating duration a gas_wait_x value stands for."""
    return (code & 0x3F) << 2 * (code >> 6)


def measurement_time_s(samples_t: int, samples_p: int, samples_h: int, heater_ms: int) -> float:
    """How long a forced TPHG cycle takes: about 1.963 ms per sample, 4.3 ms of switching and
    gas conversion and 0.5 ms wake-up (Bosch's BME68x API's estimate), plus the heating (§3.3.5)."""
    return ((samples_t + samples_p + samples_h) * 1963 + 477 * 9 + 500) / 1e6 + heater_ms / 1000


@dataclass(frozen=True)
class BME680Config(I2CConfig):
    """`[[sensor]]` keys of type `bme680`."""

    address: int = field_range(0x77, ge=0x76, le=0x77)
    oversampling_temperature: Oversampling = 2  # the quick start's ×2 (§3.2.1)
    oversampling_pressure: Oversampling = 16  # ×16
    oversampling_humidity: Oversampling = 1  # ×1
    heater_temperature_c: int = field_range(320, ge=200, le=400)  # §3.3.5: typically 200 to 400 °C
    heater_duration_ms: int = field_range(150, ge=1, le=4032)  # §3.3.5: 1 to 4032 ms, 20-30 ms to heat up
    gas: bool = True


class BME680(I2CSensor):
    """A BME680 in forced mode."""

    type_name = "bme680"
    Config = BME680Config
    config: BME680Config
    i2c_addresses = (0x76, 0x77)
    _calibration: Calibration | None = None
    _ambient_c = _AMBIENT_DEFAULT_C
    _gas_warned = False

    def channels(self) -> list[Channel]:
        gas = [Channel("gas_resistance", "Ω", 1.0)] if self.config.gas else []
        return [Channel("temperature", "°C", 0.01), Channel("humidity", "%", 0.001), Channel("pressure", "hPa", 0.01),
                *gas]

    def probe(self) -> None:
        """Check the chip id, reset the chip, load its calibration and set the heater duration."""
        chip_id = self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_ID))
        if chip_id != _CHIP_ID:
            raise self.error(f"chip id 0x{chip_id:02x}, expected 0x{_CHIP_ID:02x}{_other_chip_hint(chip_id)}")
        variant = self.transfer(lambda bus: bus.read_byte_data(self.address, _REG_VARIANT))
        if variant != 0x00:
            raise self.error(f"variant id 0x{variant:02x}, expected 0x00" + (
                " (a BME688, whose gas sensor reads differently: not supported)" if variant == 0x01 else ""))
        soft_reset(self, _REG_RESET, _STARTUP_S)
        cal = parse_calibration(self._read_block(_REG_CALIB_1, _CALIB_1_LEN),
                                self._read_block(_REG_CALIB_2, _CALIB_2_LEN),
                                self._read_block(_REG_CALIB_3, _CALIB_3_LEN))
        if cal.par_t1 == 0 or cal.par_p1 == 0:
            raise self.error(f"calibration NVM invalid (par_t1={cal.par_t1}, par_p1={cal.par_p1}, expected non-zero)")
        self._calibration = cal
        self._ambient_c = _AMBIENT_DEFAULT_C
        if self.config.gas:
            self._write(_REG_GAS_WAIT_0, gas_wait_code(self.config.heater_duration_ms))

    def read(self) -> list[Reading]:
        """One forced TPHG cycle, compensated."""
        cal = self._calibration
        if cal is None:
            raise self.error("read() before open()")
        cfg = self.config
        heater_ms = gas_wait_ms(gas_wait_code(cfg.heater_duration_ms)) if cfg.gas else 0
        with self.bus.lock:  # one cycle is one transaction: nobody else starts one meanwhile
            # All control registers before the mode (§3.1): writes during a cycle are ignored.
            self._write(_REG_CTRL_HUM, osrs_code(cfg.oversampling_humidity))
            if cfg.gas:
                target = heater_resistance_code(cfg.heater_temperature_c, self._ambient_c, cal)
                self._write(_REG_RES_HEAT_0, target)
                self._write(_REG_CTRL_GAS_1, _RUN_GAS)  # nb_conv 0: set-point 0
            else:
                self._write(_REG_CTRL_GAS_1, 0)
            ctrl_meas = (osrs_code(cfg.oversampling_temperature) << 5 | osrs_code(cfg.oversampling_pressure) << 2
                         | _MODE_FORCED)
            self._write(_REG_CTRL_MEAS, ctrl_meas)
            self.hardware.sleep(measurement_time_s(cfg.oversampling_temperature, cfg.oversampling_pressure,
                                                   cfg.oversampling_humidity, heater_ms))
            data = self._wait_new_data()
        adc_p = data[2] << 12 | data[3] << 4 | data[4] >> 4
        adc_t = data[5] << 12 | data[6] << 4 | data[7] >> 4
        adc_h = data[8] << 8 | data[9]
        if adc_t == _SKIPPED_20BIT or adc_p == _SKIPPED_20BIT:
            raise self.error(f"no measurement in the data registers (raw temperature 0x{adc_t:05x}, "
                             f"pressure 0x{adc_p:05x}; 0x80000 means skipped): did the chip reset?")
        centi_c, t_fine = compensate_temperature(adc_t, cal)
        self._ambient_c = centi_c / 100
        readings = [Reading("temperature", centi_c / 100, "°C"),
                    Reading("humidity", compensate_humidity(adc_h, t_fine, cal) / 1000, "%"),
                    Reading("pressure", round(compensate_pressure(adc_p, t_fine, cal) / 100, 2), "hPa")]
        if cfg.gas:
            readings += self._gas(data[13], data[14], cal)
        return readings

    def _gas(self, msb: int, lsb: int, cal: Calibration) -> list[Reading]:
        """The gas reading of field 0, or none with a warning when the chip flags it unusable."""
        problem = ""
        if not lsb & _GAS_VALID:
            problem = "gas_valid_r clear: no gas conversion ran"
        elif not lsb & _HEAT_STAB:
            problem = (f"heat_stab_r clear: the hotplate did not reach {self.config.heater_temperature_c} °C in "
                       f"{self.config.heater_duration_ms} ms (a longer heater_duration_ms or a lower "
                       f"heater_temperature_c helps)")
        if problem:
            (log.debug if self._gas_warned else log.warning)("%s: no gas reading: %s", self.describe(), problem)
            self._gas_warned = True
            return []
        self._gas_warned = False
        ohm = gas_resistance_ohm(msb << 2 | lsb >> 6, lsb & 0x0F, cal)
        return [Reading("gas_resistance", ohm, "Ω")]

    def _read_block(self, register: int, length: int) -> list[int]:
        return self.transfer(lambda bus: bus.read_i2c_block_data(self.address, register, length))

    def _wait_new_data(self) -> list[int]:
        for _ in range(_POLLS):
            data = self._read_block(_REG_FIELD0, _FIELD0_LEN)
            status = data[0]
            if status & _NEW_DATA and not status & (_MEASURING | _GAS_MEASURING):
                return data
            self.hardware.sleep(_POLL_S)
        raise self.error(f"measurement not finished: meas_status_0 0x{status:02x} after {_POLLS} polls "
                         f"(expected new_data_0 set, measuring and gas_measuring clear)")

    def _write(self, register: int, value: int) -> None:
        # One register per write: the chip takes a multi-byte I2C write as register/value pairs
        # (§6.2), not as consecutive registers.
        self.transfer(lambda bus: bus.write_byte_data(self.address, register, value))

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the chip id register (0xD0) holds 0x61."""
        return {"type": cls.type_name, "address": address} if chip_id_in(bus, address, _REG_ID, [_CHIP_ID]) else None


def _other_chip_hint(chip_id: int) -> str:
    if chip_id == 0x60:
        return ' (a BME280, without the gas sensor: use type = "bme280")'
    if chip_id in (0x56, 0x57, 0x58):
        return ' (a BMP280: use type = "bmp280")'
    return ""


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [BME680]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.bme680 import BME680Model  # lazy: only the fake node asks

    return [BME680Model]
