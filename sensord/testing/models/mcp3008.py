"""Fake MCP3008 (10-bit) and MCP3208 (12-bit) eight-input ADCs on gpiozero mock pins, speaking
the chips' SPI protocol bit by bit, so that gpiozero's `MCP3008` / `MCP3208` classes (and the
`mcp3008` / `mcp3208` drivers on them) run unchanged against them.

Pins, as on a Pi's SPI0: SCLK GPIO11, MOSI GPIO10 (the chip's DIN), MISO GPIO9 (DOUT), chip
select CE0 GPIO8 or CE1 GPIO7 (`chip_select`). Create the model before the driver opens: it
makes SCLK and its CE pin gpiozero's `MockSPIClockPin` / `MockSPISelectPin`, whose changes it
follows; gpiozero's software SPI then clocks it (mode 0: the chip reads DIN and the master
reads DOUT on the rising edge).

The protocol (MCP3008 datasheet DS21295, Figure 6-1 and section 6.1; MCP3208 DS21298, Figure
5-1): with CS low, the first clock with DIN high is the start bit; the next four are SGL/DIFF
and D2, D1, D0. One more clock completes the sample; then DOUT gives a low null bit, the result
most significant bit first (10 or 12 bits), then, while the master keeps clocking, the result
again least significant bit first (without its MSB), then zeros. A single-ended input converts
`volts[channel]`; a differential pair converts IN+ minus IN- (Table 5-2 / 4-2: D2..D0 000 is
CH0+ CH1-, 001 CH0- CH1+, ... 111 CH6- CH7+), 0 when IN- is the higher (pseudo-differential).
Code = 2^bits × V / vref (equation 4-2), rounded down, clipped to 0 .. 2^bits - 1. Raising CS
ends a conversion.

Knobs: `volts` (set any time), `vref_v`, `stuck_high` (DOUT held high: no chip answering, MISO
pulled up), `conversions` (how many started), `commands` (the (single_ended, channel code) of
each).

    factory = mock_pin_factory()
    adc = MCP3008Model(factory, volts=[1.0, 2.5, 0, 0, 0, 0, 0, 3.3])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: SPI0 on the Pi header (BCM numbers): clock, MOSI, MISO, and chip select by CE number.
SCLK, MOSI, MISO = 11, 10, 9
CE = {0: 8, 1: 7}


class _MCP3x08Model:
    """The shared protocol; subclasses set `BITS`."""

    BITS = 10

    def __init__(self, pin_factory: Any, *, chip_select: int = 0, volts: Sequence[float] = (0.0,) * 8,
                 vref_v: float = 3.3, stuck_high: bool = False) -> None:
        from gpiozero.pins.mock import MockSPIClockPin, MockSPISelectPin

        if chip_select not in CE:
            raise ValueError(f"chip_select {chip_select}: expected 0 (CE0) or 1 (CE1)")
        #: Volts at CH0 .. CH7; set any time.
        self.volts = list(volts) + [0.0] * (8 - len(volts))
        self.vref_v = vref_v
        self.stuck_high = stuck_high
        self.conversions = 0
        #: (single_ended, D2..D0 code) of each conversion started.
        self.commands: list[tuple[bool, int]] = []
        self.clock = pin_factory.pin(SCLK, pin_class=MockSPIClockPin)
        self.mosi = pin_factory.pin(MOSI)
        self.miso = pin_factory.pin(MISO)
        self.select = pin_factory.pin(CE[chip_select], pin_class=MockSPISelectPin)
        if not hasattr(self.clock, "spi_devices") or not hasattr(self.select, "spi_device"):
            raise RuntimeError("create the ADC model before anything uses the SPI0 pins (GPIO7-11)")
        self.clock.spi_devices.append(self)
        self.select.spi_device = self
        self._reset()

    def close(self) -> None:
        """Detach from the pins."""
        if self in self.clock.spi_devices:
            self.clock.spi_devices.remove(self)
        if self.select.spi_device is self:
            self.select.spi_device = None

    def _reset(self) -> None:
        self._started = False
        self._command: list[bool] = []
        self._out: list[int] = []

    def code(self, single_ended: bool, channel: int) -> int:
        """The conversion result for an input selection (SGL/DIFF and D2..D0)."""
        if single_ended:
            volts = self.volts[channel]
        else:
            pair = channel & 0b110
            plus, minus = (pair, pair + 1) if not channel & 1 else (pair + 1, pair)
            volts = self.volts[plus] - self.volts[minus]
        full = 1 << self.BITS
        return max(0, min(full - 1, int(full * volts / self.vref_v)))

    # -- called by gpiozero's mock pins -------------------------------------------------------

    def on_select(self) -> None:
        self._reset()  # CS falling starts a frame; CS rising ends (and aborts) a conversion

    def on_clock(self) -> None:
        if self.select.state or not self.clock.state:
            return  # not selected, or a falling edge
        din = bool(self.mosi.state)
        bit = self._out.pop(0) if self._out else 0
        if self.stuck_high or bit:
            self.miso.drive_high()
        else:
            self.miso.drive_low()
        if not self._started:
            self._started = din  # leading zeros before the start bit are ignored
            return
        if len(self._command) < 4:
            self._command.append(din)
            if len(self._command) == 4:
                single_ended = self._command[0]
                channel = self._command[1] << 2 | self._command[2] << 1 | self._command[3]
                self._convert(single_ended, channel)

    def _convert(self, single_ended: bool, channel: int) -> None:
        self.conversions += 1
        self.commands.append((single_ended, channel))
        code = self.code(single_ended, channel)
        msb_first = [code >> i & 1 for i in range(self.BITS - 1, -1, -1)]
        # One clock to finish the sample (DOUT still high-Z: 0 here), the null bit, the result
        # MSB first, then B1 .. B(n-1) LSB first, as long as the master clocks.
        self._out = [0, 0, *msb_first, *msb_first[-2::-1]]


class MCP3008Model(_MCP3x08Model):
    """A fake MCP3008: 10 bits, eight inputs."""

    BITS = 10


class MCP3208Model(_MCP3x08Model):
    """A fake MCP3208: 12 bits, eight inputs."""

    BITS = 12
