"""A fake ADS1115 / ADS1015 ADC (TI SBAS444 / SBAS473) for `FakeI2CBus`.

Set the voltages on the four inputs, then let a driver convert them:

    adc = ADS1115Model(inputs=[1.5, 0.25, 0.0, 3.3])
    bus = FakeI2CBus([adc])
    adc.set_input(2, 0.6)

As on the chip (§9.5.3), the first byte of a write is the pointer (0..3), optionally followed by
a 16-bit register value, MSB first; a read returns the register the pointer selects, MSB first.
A single-shot conversion (config bit 15 written 1 in single-shot mode) keeps the OS bit at 0 for
the next `busy_reads` reads of the config register, then stores the result in the conversion
register, as the real chip does after 1 / data rate. In continuous mode each read of the
conversion register converts anew. Inputs beyond the full-scale range clip to 0x7FFF / 0x8000.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sensord.testing.pointer import PointerWordModel

_CONVERSION, _CONFIG, _LO_THRESH, _HI_THRESH = 0, 1, 2, 3
_RESET = (0x0000, 0x8583, 0x8000, 0x7FFF)  # power-up values of the four registers (§9.6)
_OS = 0x8000
_MODE_SINGLE_SHOT = 0x0100
_FSR_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)  # by PGA code (§9.6.3)
# (positive input, negative input or None for GND) by MUX code (§9.6.3).
_MUX = ((0, 1), (0, 3), (1, 3), (2, 3), (0, None), (1, None), (2, None), (3, None))


class ADS1115Model(PointerWordModel):
    """An ADS1115 (or, with `chip="ads1015"`, an ADS1015) with settable input voltages."""

    DEFAULT_ADDRESS = 0x48

    def __init__(self, *, address: int = DEFAULT_ADDRESS, chip: Literal["ads1115", "ads1015"] = "ads1115",
                 inputs: Sequence[float] = (0.0, 0.0, 0.0, 0.0), busy_reads: int = 2) -> None:
        super().__init__(address=address)
        if len(inputs) != 4:
            raise ValueError(f"inputs: expected 4 voltages (AIN0..AIN3), got {len(inputs)}")
        self.chip = chip
        #: Volts on AIN0..AIN3 against GND.
        self.inputs: list[float] = [float(v) for v in inputs]
        #: How many config reads show OS = 0 (converting) after a conversion starts.
        self.busy_reads = busy_reads
        #: The four registers as the chip holds them (the config register without its OS bit).
        self.registers = list(_RESET)
        self.registers[_CONFIG] &= ~_OS
        #: How many single-shot conversions were started.
        self.conversions = 0
        self._busy = 0
        self._pending = 0

    def set_input(self, ain: int, volts: float) -> None:
        """Put `volts` on input AIN<ain> (0..3)."""
        self.inputs[ain] = float(volts)

    def code(self, mux: int, pga: int) -> int:
        """The conversion register value for the inputs selected by `mux` at gain `pga`."""
        positive, negative = _MUX[mux]
        volts = self.inputs[positive] - (0.0 if negative is None else self.inputs[negative])
        bits = 16 if self.chip == "ads1115" else 12
        full = 1 << (bits - 1)
        code = max(-full, min(full - 1, round(volts / _FSR_V[pga] * full)))
        return (code << (16 - bits)) & 0xFFFF

    # -- PointerWordModel ----------------------------------------------------------------------

    def check_pointer(self, pointer: int) -> None:
        if pointer > _HI_THRESH:
            raise self.nack(f"pointer byte 0x{pointer:02x}: bits 7:2 must be 0")

    def write_word(self, register: int, value: int) -> None:
        if register == _CONFIG:
            self._write_config(value)
        elif register != _CONVERSION:  # the conversion register is read-only
            self.registers[register] = value

    def read_word(self, register: int) -> int:
        if register == _CONFIG:
            return self.registers[_CONFIG] | self._status()
        if register == _CONVERSION and not self._single_shot():
            return self._convert()
        return self.registers[register]

    # -- internals -----------------------------------------------------------------------------

    def _single_shot(self) -> bool:
        return bool(self.registers[_CONFIG] & _MODE_SINGLE_SHOT)

    def _convert(self) -> int:
        config = self.registers[_CONFIG]
        return self.code((config >> 12) & 0b111, (config >> 9) & 0b111)

    def _write_config(self, value: int) -> None:
        self.registers[_CONFIG] = value & ~_OS
        # OS = 1 starts a conversion only in single-shot mode and while powered down (§9.6.3).
        if value & _OS and self._single_shot() and self._busy == 0:
            self.conversions += 1
            self._pending = self._convert()
            self._busy = self.busy_reads
            if self._busy == 0:
                self.registers[_CONVERSION] = self._pending

    def _status(self) -> int:
        """The OS bit as read: 0 while converting (or in continuous mode), 1 when idle."""
        if not self._single_shot():
            return 0
        if self._busy:
            self._busy -= 1
            if self._busy == 0:
                self.registers[_CONVERSION] = self._pending
            return 0
        return _OS
