"""BH1750FVI ambient light sensor (Rohm), type `bh1750`: illuminance in lux.

Wiring: VCC to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). ADDR
to GND (or open, on most GY-30/GY-302 boards) gives address 0x23; ADDR to VCC gives 0x5C.

Datasheet: Rohm "BH1750FVI" Technical Note: Instruction Set Architecture (opcodes),
Measurement mode explanation, Electrical Characteristics (H-resolution measurement time 120 ms
typ / 180 ms max, L-resolution 16 / 24 ms, measurement accuracy 1.2 typ), "Measurement
sequence example" (lx = count / 1.2), and "Adjust measurement result for influence of optical
window" (MTreg 31..254, default 69).

Each read powers the chip on, sets MTreg (unless it is the default), starts a one-time
measurement, waits the maximum measurement time scaled by MTreg / 69, and reads two bytes.
After a one-time measurement the chip powers itself down (under 1 µA).

Modes: "high" (1 lx steps), "high2" (0.5 lx steps, half the range), "low" (4 lx steps, 24 ms
instead of 180 ms). A larger `mtreg` lengthens the measurement and raises the sensitivity (for
dim light, or behind a tinted window); a smaller one extends the range. The chip saturates at
count 0xFFFF: 54612 lx in mode "high" at MTreg 69, 121557 lx at MTreg 31 (direct sunlight
reaches 100000 lx).

The BH1750 has no id register; `sensord detect` cannot tell it from other chips at 0x23/0x5C.

Example::

    [[sensor]]
    name = "window"
    type = "bh1750"
    interval_s = 60
    ## 0x23 with ADDR low or open, 0x5c with ADDR high.
    address = 0x23
    ## "high" (1 lx), "high2" (0.5 lx, up to 27306 lx) or "low" (4 lx, faster).
    # mode = "high"
    ## Measurement time register, 31..254; lux scale by 69 / mtreg.
    # mtreg = 69
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, LockedBus, Reading, Sensor, field_range, read_bytes

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

ADDRESS_LOW, ADDRESS_HIGH = 0x23, 0x5C  # ADDR pin low / high (datasheet "Slave Address")
DEFAULT_ADDRESS = ADDRESS_LOW

# Opcodes: datasheet "Instruction Set Architecture".
_POWER_DOWN = 0x00
_POWER_ON = 0x01
_ONE_TIME = {"high": 0x20, "high2": 0x21, "low": 0x23}  # then power down by itself
_MTREG_HIGH = 0x40  # 01000_MT[7,6,5]
_MTREG_LOW = 0x60  # 011_MT[4,3,2,1,0]

Mode = Literal["high", "high2", "low"]

MTREG_DEFAULT, MTREG_MIN, MTREG_MAX = 69, 31, 254  # "Adjust measurement result ..."
# Electrical Characteristics: maximum measurement times at MTreg 69.
_MAX_TIME_S = {"high": 0.180, "high2": 0.180, "low": 0.024}
_ACCURACY = 1.2  # "Measurement Accuracy (sensor out / actual lux)": 1.2 typ
_COUNT_STEP = {"high": 1, "high2": 1, "low": 4}  # 1 lx vs 4 lx resolution at MTreg 69


@dataclass(frozen=True)
class BH1750Config(I2CConfig):
    """`[[sensor]]` keys of type `bh1750`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=ADDRESS_LOW, le=ADDRESS_HIGH)
    mode: Mode = "high"
    mtreg: int = field_range(MTREG_DEFAULT, ge=MTREG_MIN, le=MTREG_MAX)

    def __post_init__(self) -> None:
        if self.address not in (ADDRESS_LOW, ADDRESS_HIGH):
            raise ValueError(f"address: expected 0x23 (ADDR low) or 0x5c (ADDR high), "
                             f"found 0x{self.address:02x}")


def illuminance_lux(raw: int, *, mode: Mode = "high", mtreg: int = MTREG_DEFAULT) -> float:
    """Illuminance in lx from the 16-bit count: count / 1.2 * (69 / MTreg), halved in mode
    "high2" (datasheet "Measurement sequence example", "Adjust measurement result ...")."""
    lux = raw / _ACCURACY * (MTREG_DEFAULT / mtreg)
    return lux / 2 if mode == "high2" else lux


def measurement_time_s(mode: Mode, mtreg: int) -> float:
    """The maximum measurement time in s, which scales with MTreg ("Adjust measurement result ...")."""
    return _MAX_TIME_S[mode] * mtreg / MTREG_DEFAULT


def mtreg_opcodes(mtreg: int) -> tuple[int, int]:
    """The two opcodes that set MTreg: its 3 high bits, then its 5 low bits."""
    if not MTREG_MIN <= mtreg <= MTREG_MAX:
        raise ValueError(f"mtreg {mtreg} out of range {MTREG_MIN}..{MTREG_MAX}")
    return _MTREG_HIGH | mtreg >> 5, _MTREG_LOW | mtreg & 0x1F



class BH1750(I2CSensor):
    """Rohm BH1750FVI: illuminance (lx)."""

    type_name = "bh1750"
    Config = BH1750Config
    config: BH1750Config
    i2c_addresses = (ADDRESS_LOW, ADDRESS_HIGH)

    def channels(self) -> list[Channel]:
        cfg = self.config
        return [Channel("illuminance", "lx", illuminance_lux(_COUNT_STEP[cfg.mode], mode=cfg.mode,
                                                             mtreg=cfg.mtreg))]

    def probe(self) -> None:
        """Check that the chip answers, with the one command that changes nothing: power down
        (it is in power down after every one-time measurement anyway)."""
        self.transfer(lambda bus: bus.write_byte(self.address, _POWER_DOWN))

    def read(self) -> list[Reading]:
        cfg = self.config

        def measure(bus: LockedBus) -> bytes:
            bus.write_byte(self.address, _POWER_ON)
            if cfg.mtreg != MTREG_DEFAULT:
                # Sent every time: a brown-out resets MTreg to 69 without a trace.
                for opcode in mtreg_opcodes(cfg.mtreg):
                    bus.write_byte(self.address, opcode)
            bus.write_byte(self.address, _ONE_TIME[cfg.mode])
            self.hardware.sleep(measurement_time_s(cfg.mode, cfg.mtreg))
            return read_bytes(bus, self.address, 2)

        data = self.transfer(measure)
        raw = data[0] << 8 | data[1]  # high byte first ("Measurement sequence example")
        return [Reading("illuminance", illuminance_lux(raw, mode=cfg.mode, mtreg=cfg.mtreg), "lx")]

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Always None: the BH1750 has no id register, and every opcode changes some chip's
        state (0x23 and 0x5C are shared with other parts), so it cannot be detected safely."""
        return None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [BH1750]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.bh1750 import BH1750Model  # lazy: only the fake node asks

    return [BH1750Model]
