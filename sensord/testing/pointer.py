"""A base for fake chips with 16-bit registers behind a pointer byte (INA219, INA226, ADS1x15).

A write of one byte sets the pointer; a write of three bytes also writes the 16-bit value, most
significant byte first, into the register it points at. A read returns the pointed register,
most significant byte first, as many times over as the master clocks.
"""

from __future__ import annotations

from sensord.testing.i2c import I2CDeviceModel


class PointerWordModel(I2CDeviceModel):
    """A fake chip with a pointer byte and 16-bit registers; a subclass says which pointers the
    chip takes (`check_pointer`), what a written value does (`write_word`) and what it reads
    (`read_word`)."""

    #: The pointer register: which register reads and writes go to.
    pointer = 0

    def check_pointer(self, pointer: int) -> None:
        """Raise `self.nack(...)` for a pointer byte the chip refuses. Default: take any."""

    def write_word(self, register: int, value: int) -> None:
        """A 16-bit `value` written to `register`."""
        raise NotImplementedError(f"{type(self).__name__} does not model register writes")

    def read_word(self, register: int) -> int:
        """The 16-bit value `register` reads now."""
        raise NotImplementedError(f"{type(self).__name__} does not model register reads")

    # -- I2CDeviceModel ------------------------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        self.check_pointer(data[0])
        self.pointer = data[0]
        if len(data) == 1:
            return
        if len(data) != 3:
            raise self.nack(f"expected a pointer byte and a 16-bit value, got {len(data)} bytes")
        self.write_word(self.pointer, int.from_bytes(data[1:], "big"))

    def read_raw(self, length: int) -> bytes:
        raw = self.read_word(self.pointer).to_bytes(2, "big")
        return (raw * (length // 2 + 1))[:length]
