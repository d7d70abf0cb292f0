"""VEML7700 ambient light sensor (Vishay), type `veml7700`: illuminance in lux.

Wiring: VIN (or VDD) to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5).
The address is fixed at 0x10. The chip runs at 2.5 to 3.6 V: do not power a bare chip from 5 V.

Datasheet: Vishay "VEML7700 High Accuracy Ambient Light Sensor With I2C Interface" (document
84286): Table 1 (command codes), "Command register format" (ALS_CONF_0 bits: ALS_GAIN 12:11,
ALS_IT 9:6, ALS_PERS 5:4, ALS_INT_EN 1, ALS_SD 0; power saving register 0x03; ALS output 0x04;
ID register 0x07), and the table of resolution and maximum range by gain and integration time
(0.0042 lx per count at gain 2 and 800 ms). Application note "Designing the VEML7700 Into an
Application" (document 84323) on choosing gain and integration time.

Registers are 16 bits, least significant byte first, which is the SMBus word order: no byte
swap. `open()` checks the device id (low byte 0x81 of register 0x07), writes ALS_CONF_0 with the
configured gain and integration time, interrupts off and the chip powered on, switches power
saving off, and waits one integration time (plus 10 % for the internal oscillator) for the
first result. The chip then converts back to back; a read fetches the latest ALS count and
multiplies it by the resolution of the configured gain and integration time.

Gain "1/8" or "1/4" suits most light (up to 140000 lx at "1/8" and 25 ms); "1" and "2" only dim
rooms (under about 100 lx), where they resolve finer steps. A longer integration time both
refines the step and averages flicker. A count of 0xFFFF means the chip saturated: that read is
an error, with a hint to lower the gain or shorten the integration time. The non-linearity
correction of the application note (above about 1000 lx at gain 1/8 and 1/4) is not applied.

`sensord detect` recognises the chip by its id register.

Example::

    [[sensor]]
    name = "desk"
    type = "veml7700"
    interval_s = 30
    ## "1/8", "1/4", "1" or "2": lower for bright light, higher for dim rooms.
    gain = "1/4"
    ## Integration time in ms: 25, 50, 100, 200, 400 or 800.
    integration_ms = 100
    # bus = 1
    # address = 0x10
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, LockedBus, Reading, Sensor, field_range

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x10  # fixed (datasheet "Slave address")

# Command codes: datasheet Table 1.
_REG_ALS_CONF = 0x00
_REG_POWER_SAVING = 0x03
_REG_ALS = 0x04
_REG_ID = 0x07

# ID register: low byte the device id code, high byte the slave address option code.
_DEVICE_ID = 0x81

# ALS_CONF_0 ("Command register format"): gain in bits 12:11, integration time in bits 9:6.
_GAIN_SHIFT = 11
_IT_SHIFT = 6
_ALS_SD = 0x0001  # bit 0: 1 = shut down
_GAIN_CODE = {"1": 0b00, "2": 0b01, "1/8": 0b10, "1/4": 0b11}
_GAIN_FACTOR = {"1": 1.0, "2": 2.0, "1/8": 0.125, "1/4": 0.25}
_IT_CODE = {25: 0b1100, 50: 0b1000, 100: 0b0000, 200: 0b0001, 400: 0b0010, 800: 0b0011}

# Resolution table: lx per count at the highest sensitivity, gain 2 and 800 ms; it doubles with
# every halving of gain or integration time (2.1504 lx at gain 1/8 and 25 ms). The current
# datasheet revision gives 0.0042 (range up to about 140 klx); older revisions and the
# application note gave 0.0036 (120 klx), so readings from drivers using that are 14 % lower.
_FINEST_LUX = 0.0042
_SATURATED = 0xFFFF
_OSCILLATOR_MARGIN = 1.1

Gain = Literal["1/8", "1/4", "1", "2"]
IntegrationMs = Literal[25, 50, 100, 200, 400, 800]


@dataclass(frozen=True)
class VEML7700Config(I2CConfig):
    """`[[sensor]]` keys of type `veml7700`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=DEFAULT_ADDRESS, le=DEFAULT_ADDRESS)
    #: ALS_GAIN: "1/8", "1/4", "1" or "2".
    gain: Gain = "1/4"
    #: ALS_IT in milliseconds.
    integration_ms: IntegrationMs = 100


def resolution_lux(gain: str, integration_ms: int) -> float:
    """lx per count for a gain and integration time (datasheet resolution table): 0.0042 at
    gain 2 and 800 ms, 0.0336 at gain 1 and 200 ms, 2.1504 at gain 1/8 and 25 ms."""
    if gain not in _GAIN_FACTOR:
        raise ValueError(f"gain {gain!r}: expected one of {', '.join(_GAIN_FACTOR)}")
    if integration_ms not in _IT_CODE:
        raise ValueError(f"integration time {integration_ms} ms: expected one of "
                         f"{', '.join(map(str, _IT_CODE))}")
    return _FINEST_LUX * (2.0 / _GAIN_FACTOR[gain]) * (800 / integration_ms)


def illuminance_lux(raw: int, *, gain: str, integration_ms: int) -> float:
    """Illuminance in lx from the 16-bit ALS count."""
    return raw * resolution_lux(gain, integration_ms)


def config_word(gain: str, integration_ms: int) -> int:
    """ALS_CONF_0 with this gain and integration time, persistence 1, interrupt off, powered on."""
    return _GAIN_CODE[gain] << _GAIN_SHIFT | _IT_CODE[integration_ms] << _IT_SHIFT


def settle_s(integration_ms: int) -> float:
    """How long after power-on the first result takes: one integration time, plus 10 %."""
    return integration_ms / 1000 * _OSCILLATOR_MARGIN


class VEML7700(I2CSensor):
    """Vishay VEML7700: illuminance (lx)."""

    type_name = "veml7700"
    Config = VEML7700Config
    config: VEML7700Config
    i2c_addresses = (DEFAULT_ADDRESS,)

    def channels(self) -> list[Channel]:
        cfg = self.config
        return [Channel("illuminance", "lx", resolution_lux(cfg.gain, cfg.integration_ms))]

    def probe(self) -> None:
        """Check the device id, configure and power on, and wait for the first result."""
        chip_id = int(self.transfer(lambda bus: bus.read_word_data(self.address, _REG_ID)))
        if chip_id & 0xFF != _DEVICE_ID:
            raise self.error(f"id register 0x{chip_id:04x}: device id 0x{chip_id & 0xFF:02x}, "
                             f"expected 0x{_DEVICE_ID:02x} (is this a VEML7700?)")
        cfg = self.config

        def configure(bus: LockedBus) -> None:
            bus.write_word_data(self.address, _REG_POWER_SAVING, 0x0000)
            bus.write_word_data(self.address, _REG_ALS_CONF, config_word(cfg.gain, cfg.integration_ms))

        self.transfer(configure)
        self.hardware.sleep(settle_s(cfg.integration_ms))

    def read(self) -> list[Reading]:
        cfg = self.config
        raw = int(self.transfer(lambda bus: bus.read_word_data(self.address, _REG_ALS)))
        if raw >= _SATURATED:
            limit = illuminance_lux(_SATURATED, gain=cfg.gain, integration_ms=cfg.integration_ms)
            raise self.error(f"ALS count 0x{raw:04x}: saturated above {limit:.0f} lx (use a "
                             f"lower gain or a shorter integration_ms)")
        return [Reading("illuminance", illuminance_lux(raw, gain=cfg.gain,
                                                       integration_ms=cfg.integration_ms), "lx")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The `[[sensor]]` keys when the low byte of the id register (0x07) is 0x81. One word
        read: the pointer byte written first selects a register and changes nothing else."""
        if address != DEFAULT_ADDRESS:
            return None
        try:
            chip_id = int(bus.read_word_data(address, _REG_ID))
        except OSError:
            return None
        return {"type": cls.type_name, "address": address} if chip_id & 0xFF == _DEVICE_ID else None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [VEML7700]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.veml7700 import VEML7700Model  # lazy: only the fake node asks

    return [VEML7700Model]
