"""Microchip MCP3008 (10-bit) and MCP3208 (12-bit) eight-input SPI ADCs, types `mcp3008` and
`mcp3208`: voltages.

Each read converts every configured input once. An input is one pin against AGND ("ch0" to
"ch7") or a pseudo-differential pair ("ch0-ch1": CH0 minus CH1; only the pairs 0/1, 2/3, 4/5,
6/7, either way round); each becomes a quantity `voltage_<input>` in volts, e.g. `voltage_ch0`
and `voltage_ch0_ch1`. Volts = code × vref / 2^bits (equation 4-2 of both datasheets: code =
1024 × VIN / VREF on the MCP3008, 4096 × VIN / VREF on the MCP3208), so set `vref_v` to the
voltage on the VREF pin. A pair whose IN- is above IN+ reads 0 V: the chips are not bipolar.

Wiring to SPI0: VDD and VREF to 3.3 V (pin 1), AGND and DGND to GND (pin 6), CLK to SCLK
(GPIO11, pin 23), DOUT to MISO (GPIO9, pin 21), DIN to MOSI (GPIO10, pin 19), CS/SHDN to CE0
(GPIO8, pin 24) or CE1 (GPIO7, pin 26): `chip_select = 0` or `1`, so two chips can share the bus.
Enable SPI with `dtparam=spi=on` in /boot/firmware/config.txt (or raspi-config); the service's
user needs group `spi` for /dev/spidev0.*. Keep every input between AGND and VREF (VDD + 0.6 V
at most); powering the chip from 5 V needs a level shifter on DOUT.

The SPI transfer is gpiozero's (`gpiozero.MCP3008`, `MCP3208`) on the injected pin factory: it
uses the kernel's /dev/spidev0.N through the `spidev` module when that is installed (Debian's
`python3-spidev`, which python3-gpiozero recommends), and otherwise clocks the same four pins
itself (slower, a few ms per conversion; gpiozero then warns once, logged here). Either way
sensord itself needs no SPI module.

Datasheets: Microchip "MCP3004/3008 2.7V 4-Channel/8-Channel 10-Bit A/D Converters with SPI
Serial Interface" (DS21295): Figure 6-1 and section 6.1 (start bit, SGL/DIFF, D2-D0, a null bit,
B9-B0), Table 5-2 (input configurations), equation 4-2; "MCP3204/3208 2.7V 4-Channel/8-Channel
12-Bit A/D Converters with SPI Serial Interface" (DS21298): Figure 5-1 (the same with B11-B0),
Table 5-2, equation 4-2.

The chips have no id to check. A frame whose null bit reads high cannot come from an MCP3x08
(DOUT floating high, or wired to another pin): that read is an error. An unplugged chip on a
Pi reads 0 V (GPIO9 has a pull-down); nothing can tell it from a grounded input.

Example::

    [[sensor]]
    name = "soil"
    type = "mcp3008"
    interval_s = 60
    ## The inputs to convert: "ch0" to "ch7" against AGND, or the pairs "ch0-ch1", "ch1-ch0",
    ## "ch2-ch3", ... "ch7-ch6" (the first input minus the second).
    channels = ["ch0", "ch1", "ch2-ch3"]
    ## The voltage on the VREF pin, in volts: full scale.
    vref_v = 3.3
    ## 0: CS on CE0 (GPIO8, pin 24); 1: on CE1 (GPIO7, pin 26).
    # chip_select = 0
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, SensorError, field_range

if TYPE_CHECKING:
    from sensord import Hardware

log = logging.getLogger(__name__)

_INPUT = re.compile(r"ch([0-7])(?:-ch([0-7]))?")
# gpiozero's software SPI bus builds its Device base (and, in gpiozero 1.6, its clock, MOSI and
# MISO pins) on the global default pin factory rather than the one passed in; the driver lends it
# the injected factory while it builds, one driver at a time.
_LEND = threading.Lock()


@dataclass(frozen=True)
class MCP3008Config(SensorConfig):
    """`[[sensor]]` keys of types `mcp3008` and `mcp3208`."""

    #: Inputs: "ch0".."ch7", or pairs "ch0-ch1", "ch1-ch0", ... "ch7-ch6".
    channels: list[str] = field(default_factory=lambda: ["ch0"])
    #: The VREF pin's voltage: the full scale, in volts (VREF may be 0.25 V to VDD, at most 5.5 V).
    vref_v: float = field_range(3.3, ge=0.25, le=5.5)
    #: CE0 (0) or CE1 (1) of SPI0.
    chip_select: Literal[0, 1] = 0

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("channels: expected at least one input, found []")
        for name in self.channels:
            if input_code(name) is None:
                raise ValueError(f'channels: expected "ch0" to "ch7" or a pair "ch0-ch1", "ch1-ch0", '
                                 f'"ch2-ch3", ... "ch7-ch6", found "{name}"')
            if self.channels.count(name) > 1:
                raise ValueError(f'channels: expected each input once, found "{name}" more than once')


def input_code(name: str) -> tuple[bool, int] | None:
    """(single-ended, D2..D0) for an input name (Table 5-2): "ch5" -> (True, 5), "ch0-ch1" ->
    (False, 0b000), "ch1-ch0" -> (False, 0b001), "ch7-ch6" -> (False, 0b111); None for a name
    that is neither, or a pair the chip cannot convert ("ch0-ch2")."""
    match = _INPUT.fullmatch(name)
    if match is None:
        return None
    plus, minus = int(match[1]), match[2]
    if minus is None:
        return True, plus
    if plus // 2 != int(minus) // 2 or plus == int(minus):
        return None
    return False, plus  # the pair's code: CH(2k) as IN+ is 2k, CH(2k+1) as IN+ is 2k+1


def quantity_name(name: str) -> str:
    """The quantity of an input: "ch0" -> "voltage_ch0", "ch0-ch1" -> "voltage_ch0_ch1"."""
    return "voltage_" + name.replace("-", "_")


def volts(code: int, *, bits: int, vref_v: float) -> float:
    """Equation 4-2 solved for VIN: code × vref / 2^bits. MCP3008 at 3.3 V: 512 -> 1.65 V."""
    return code * vref_v / (1 << bits)


@contextmanager
def _lent_default_factory(factory: Any) -> Iterator[None]:
    from gpiozero import Device  # lazy: sensord imports without gpiozero

    with _LEND:
        lend = Device.pin_factory is None
        if lend:
            Device.pin_factory = factory
        try:
            yield
        finally:
            if lend:
                Device.pin_factory = None


class MCP3008(Sensor):
    """Microchip MCP3008: up to eight voltages, 10 bits."""

    type_name = "mcp3008"
    Config = MCP3008Config
    config: MCP3008Config
    bits = 10
    chip = "MCP3008"

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        self._devices: dict[str, Any] = {}

    def describe(self) -> str:
        return f'sensor "{self.name}" ({self.type_name} on SPI0 CE{self.config.chip_select})'

    def channels(self) -> list[Channel]:
        lsb = self.config.vref_v / (1 << self.bits)
        return [Channel(quantity_name(name), "V", lsb) for name in self.config.channels]

    def open(self) -> None:
        import gpiozero  # lazy

        cls = getattr(gpiozero, self.chip)
        cfg = self.config
        factory = self.hardware.pin_factory
        try:
            with _lent_default_factory(factory), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", gpiozero.SPISoftwareFallback)
                for name in cfg.channels:
                    single_ended, code = input_code(name) or (True, 0)
                    self._devices[name] = cls(channel=code, differential=not single_ended, max_voltage=cfg.vref_v,
                                              port=0, device=cfg.chip_select, pin_factory=factory)
        except Exception as exc:  # gpiozero and the pin libraries raise their own types
            self.close()
            raise SensorError(f"{self.describe()}: cannot open the SPI interface: {exc}") from exc
        for warning in caught[:1]:
            log.info("%s: %s", self.describe(), warning.message)

    def read(self) -> list[Reading]:
        cfg = self.config
        readings = []
        for name in cfg.channels:
            code = self._convert(name)
            readings.append(Reading(quantity_name(name), volts(code, bits=self.bits, vref_v=cfg.vref_v), "V"))
        return readings

    def _convert(self, name: str) -> int:
        device = self._devices.get(name)
        if device is None:
            raise SensorError(f"{self.describe()}: read before open")
        # The frame as gpiozero's MCP3xxx sends and receives it (its _read() keeps only the
        # result bits), so that the null bit just before the result can be checked too.
        words = device._spi.transfer(device._send())
        frame = device._words_to_int(words[-2:], self.bits + 1)
        if frame >> self.bits:
            raise SensorError(f"{self.describe()}: {name}: DOUT high in the null bit before the result: "
                              f"no {self.chip} answering (is DOUT wired to MISO, GPIO9, and CS to "
                              f"CE{self.config.chip_select}?)")
        return int(frame & ((1 << self.bits) - 1))

    def close(self) -> None:
        devices, self._devices = self._devices, {}
        for device in devices.values():
            device.close()


class MCP3208(MCP3008):
    """Microchip MCP3208: up to eight voltages, 12 bits."""

    type_name = "mcp3208"
    bits = 12
    chip = "MCP3208"


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [MCP3008, MCP3208]
