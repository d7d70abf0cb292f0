"""TSL2591 light-to-digital converter (ams), type `tsl2591`: illuminance in lux, and the raw counts
of its two photodiodes, full spectrum (CH0, visible plus infrared) and infrared (CH1).

Wiring: VIN to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
address is fixed at 0x29. A bare chip runs at 2.7 to 3.6 V; breakouts with a regulator take 5 V.

Datasheet: ams "TSL2591 Light-to-Digital Converter" (v2-04, 2018-06-05; the Apr. 2013 revision
has the same register map): "Command Register" (every access starts with a command byte, CMD bit
7 set and TRANSACTION 6:5 = 01 for normal operation: 0xA0 | register), "Enable Register" 0x00
(AEN bit 1, PON bit 0), "Control Register" 0x01 (SRESET bit 7, AGAIN bits 5:4, ATIME bits 2:0),
"ID Register" 0x12 (0x50), "Status Register" 0x13 (AVALID bit 0) and the data registers
0x14-0x17 (C0DATAL/H, C1DATAL/H, low byte first; a block read from 0x14 gives both channels of
the same integration cycle).

`open()` checks the ID register, writes the gain and integration time, powers the chip on with
the ADCs enabled, and waits one integration time (plus 10 %) for the first cycle. The chip then
integrates back to back. A read checks AVALID (a cycle completed since the ADCs were enabled;
when clear, it waits up to one more integration time, then fails), reads both channels in one
block, and computes lux. A channel at the largest count of the integration time (36863 at
100 ms, 65535 from 200 ms) means the chip saturated: that read is an error with a hint to lower
the gain or shorten the integration time.

Lux: the datasheet gives no equation ("lux is derived using an empirical formula"). sensord
uses the form ams publishes for its two-diode light sensors (e.g. the TSL2572 datasheet's "Lux
Equation"; ams's design note DN40 uses the same counts per lux for its colour sensors): counts
per lux CPL = ATIME_ms x AGAIN / (GA x DF),
Lux1 = (C0 - B x C1) / CPL, Lux2 = (C x C0 - D x C1) / CPL, lux = max(Lux1, Lux2, 0). For the
TSL2591 the coefficients B = 1.64, C = 0.59, D = 0.86 and GA x DF = 408 (LUX_DF) are those of
the first open driver (Adafruit's); ams has not published TSL2591 coefficients, so treat
the result as an approximation and calibrate against a lux meter where it matters. The gain
factors are the typical ones every open driver uses (1, 25, 428, 9876); the datasheet's
operating characteristics allow a spread of several percent around them.
Others: Adafruit's library since 2018, and the Linux kernel's iio driver which took it, use
lux = (C0 - C1) x (1 - C1/C0) / CPL with the same CPL, a user's suggestion (Adafruit issue 14)
without an ams source. It reads up to about 5 % lower under light with little infrared (C1/C0
up to 0.25, fluorescent and LED light: 640 against 672 for C0 = 1000, C1 = 200) and higher in
infrared-rich light (incandescent, sunlight: 250 against 180 for C0 = 1000, C1 = 500).

`sensord detect` recognises the chip by its ID register.

Example::

    [[sensor]]
    name = "window"
    type = "tsl2591"
    interval_s = 30
    ## "low" (1x) for daylight, "medium" (25x) indoors, "high" (428x) or "max" (9876x) for dim light.
    gain = "medium"
    ## Integration time in ms: 100, 200, 300, 400, 500 or 600. Longer is finer and slower.
    integration_ms = 100
    # bus = 1
    # address = 0x29
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, LockedBus, Reading, Sensor, field_range

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x29  # fixed ("I2C Protocol": slave address 0x29)

# Command register: CMD (bit 7) and TRANSACTION 01, normal operation (bits 6:5), then the register.
_COMMAND = 0xA0
_REG_ENABLE = 0x00
_REG_CONTROL = 0x01
_REG_ID = 0x12
_REG_STATUS = 0x13
_REG_C0DATAL = 0x14  # C0DATAL, C0DATAH, C1DATAL, C1DATAH

_DEVICE_ID = 0x50
_ENABLE_PON = 0x01  # power on the oscillator
_ENABLE_AEN = 0x02  # enable the ALS ADCs
_STATUS_AVALID = 0x01  # a full integration cycle completed since AEN was set

_GAIN_CODE = {"low": 0b00, "medium": 0b01, "high": 0b10, "max": 0b11}  # AGAIN, bits 5:4
#: Typical gain relative to "low": the values every open driver uses (see the module docstring).
_GAIN_FACTOR = {"low": 1.0, "medium": 25.0, "high": 428.0, "max": 9876.0}
_ATIME_CODE = {100: 0b000, 200: 0b001, 300: 0b010, 400: 0b011, 500: 0b100, 600: 0b101}  # bits 2:0
#: The largest count a channel reaches: at 100 ms 36 ADC cycles of 1024 counts, less one (0x8FFF).
_MAX_COUNT_100MS = 36863
_MAX_COUNT = 0xFFFF

# Lux equation (see the module docstring): GA x DF, and the coefficients B, C, D.
_LUX_DF = 408.0
_LUX_B, _LUX_C, _LUX_D = 1.64, 0.59, 0.86
_OSCILLATOR_MARGIN = 1.1

Gain = Literal["low", "medium", "high", "max"]
IntegrationMs = Literal[100, 200, 300, 400, 500, 600]


@dataclass(frozen=True)
class TSL2591Config(I2CConfig):
    """`[[sensor]]` keys of type `tsl2591`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=DEFAULT_ADDRESS, le=DEFAULT_ADDRESS)
    #: AGAIN: "low" (1x), "medium" (25x), "high" (428x) or "max" (9876x).
    gain: Gain = "medium"
    #: ATIME in milliseconds.
    integration_ms: IntegrationMs = 100


def _check(gain: str, integration_ms: int) -> None:
    if gain not in _GAIN_FACTOR:
        raise ValueError(f"gain {gain!r}: expected one of {', '.join(_GAIN_FACTOR)}")
    if integration_ms not in _ATIME_CODE:
        raise ValueError(f"integration time {integration_ms} ms: expected one of "
                         f"{', '.join(map(str, _ATIME_CODE))}")


def counts_per_lux(gain: str, integration_ms: int) -> float:
    """CPL = ATIME_ms x AGAIN / 408: 6.127 at "medium" and 100 ms, 1.0 / 4.08 at "low" and 100 ms."""
    _check(gain, integration_ms)
    return integration_ms * _GAIN_FACTOR[gain] / _LUX_DF


def max_count(integration_ms: int) -> int:
    """The count at which a channel is saturated: 36863 at 100 ms, 65535 from 200 ms."""
    _check("low", integration_ms)
    return _MAX_COUNT_100MS if integration_ms == 100 else _MAX_COUNT


def illuminance_lux(ch0: int, ch1: int, *, gain: str, integration_ms: int) -> float:
    """Lux from the full-spectrum (CH0) and infrared (CH1) counts: max(Lux1, Lux2, 0)."""
    cpl = counts_per_lux(gain, integration_ms)
    lux1 = (ch0 - _LUX_B * ch1) / cpl
    lux2 = (_LUX_C * ch0 - _LUX_D * ch1) / cpl
    return max(lux1, lux2, 0.0)


def control_byte(gain: str, integration_ms: int) -> int:
    """CONTROL with this gain and integration time (SRESET clear)."""
    _check(gain, integration_ms)
    return _GAIN_CODE[gain] << 4 | _ATIME_CODE[integration_ms]


def settle_s(integration_ms: int) -> float:
    """How long one integration cycle takes at most: the integration time plus 10 %."""
    return integration_ms / 1000 * _OSCILLATOR_MARGIN


class TSL2591(I2CSensor):
    """ams TSL2591: illuminance (lx), full-spectrum and infrared counts."""

    type_name = "tsl2591"
    Config = TSL2591Config
    config: TSL2591Config
    i2c_addresses = (DEFAULT_ADDRESS,)

    def channels(self) -> list[Channel]:
        cfg = self.config
        return [Channel("illuminance", "lx", 1 / counts_per_lux(cfg.gain, cfg.integration_ms)),
                Channel("full_spectrum", "", 1.0), Channel("infrared", "", 1.0)]

    def probe(self) -> None:
        """Check the ID register, set gain and integration time, power on, wait one cycle."""
        chip_id = int(self.transfer(lambda bus: bus.read_byte_data(self.address, _COMMAND | _REG_ID)))
        if chip_id != _DEVICE_ID:
            raise self.error(f"ID register 0x{chip_id:02x}, expected 0x{_DEVICE_ID:02x} (is this a TSL2591?)")
        cfg = self.config

        def configure(bus: LockedBus) -> None:
            bus.write_byte_data(self.address, _COMMAND | _REG_CONTROL, control_byte(cfg.gain, cfg.integration_ms))
            bus.write_byte_data(self.address, _COMMAND | _REG_ENABLE, _ENABLE_PON | _ENABLE_AEN)

        self.transfer(configure)
        self.hardware.sleep(settle_s(cfg.integration_ms))

    def read(self) -> list[Reading]:
        cfg = self.config
        self._wait_valid()
        data = self.transfer(lambda bus: bus.read_i2c_block_data(self.address, _COMMAND | _REG_C0DATAL, 4))
        ch0, ch1 = data[0] | data[1] << 8, data[2] | data[3] << 8
        limit = max_count(cfg.integration_ms)
        if ch0 >= limit or ch1 >= limit:
            raise self.error(f"saturated: full spectrum {ch0}, infrared {ch1} counts, the most at "
                             f"{cfg.integration_ms} ms is {limit} (use a lower gain than {cfg.gain!r} "
                             f"or a shorter integration_ms)")
        lux = illuminance_lux(ch0, ch1, gain=cfg.gain, integration_ms=cfg.integration_ms)
        return [Reading("illuminance", lux, "lx"), Reading("full_spectrum", ch0, ""),
                Reading("infrared", ch1, "")]

    def _wait_valid(self) -> None:
        """Return once STATUS.AVALID is set; one more integration time at most."""
        cfg = self.config
        status = 0
        for attempt in range(2):
            status = int(self.transfer(lambda bus: bus.read_byte_data(self.address, _COMMAND | _REG_STATUS)))
            if status & _STATUS_AVALID:
                return
            if attempt == 0:
                self.hardware.sleep(settle_s(cfg.integration_ms))
        raise self.error(f"no valid result: STATUS 0x{status:02x} has AVALID clear one integration time "
                         f"({cfg.integration_ms} ms) after it was due (did the chip reset or power down?)")

    def close(self) -> None:
        """Power the chip down (3 µA instead of about 0.3 mA); a chip already gone is no error."""
        if self._bus is None:
            return
        with contextlib.suppress(sensord.SensorError):
            self.transfer(lambda bus: bus.write_byte_data(self.address, _COMMAND | _REG_ENABLE, 0x00),
                          attempts=1)

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the ID register (0x12, command byte 0xB2) holds 0x50.
        One byte read: the command byte selects a register and changes nothing else."""
        if address != DEFAULT_ADDRESS:
            return None
        try:
            chip_id = int(bus.read_byte_data(address, _COMMAND | _REG_ID))
        except OSError:
            return None
        return {"type": cls.type_name, "address": address} if chip_id == _DEVICE_ID else None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [TSL2591]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.tsl2591 import TSL2591Model  # lazy: only the fake node asks

    return [TSL2591Model]
