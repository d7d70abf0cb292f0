"""Fake TMP102 and LM75 temperature sensors for `FakeI2CBus`.

Both chips have a pointer register and four registers behind it: temperature (0x00,
read-only), configuration (0x01), and two thermostat limits (0x02, 0x03). A write sets the
pointer from its first byte and stores the rest in that register; a read returns the register
the pointer selects, most significant byte first, as many times over as the master clocks.
Pointers above 0x03 are NACKed so a driver bug shows. Both convert continuously, so the
temperature register follows `temperature_c` at once; in shutdown it keeps its last value.

TMP102 (TI SBOS397): 16-bit configuration register, reset 0x60A0, whose R1/R0 bits (0x6000)
always read 11 and whose EM bit (0x0010) selects the 13-bit format, flagged by bit D0 of the
temperature register; SD is bit 0x0100.

LM75: 8-bit configuration register, reset 0x00, SHUTDOWN bit 0x01. `resolution_bits` 9 is the
original LM75, whose 7 bits below the data are undefined (this model fills them with
`undefined_bits` so a driver must mask them); 11 is the LM75B, whose unused bits read 0.

    tmp = TMP102Model(temperature_c=-25.0)
    lm = LM75Model(address=0x4F, temperature_c=125.0, resolution_bits=11)
    bus = FakeI2CBus([tmp, lm])
"""

from __future__ import annotations

from typing import Literal

from sensord.testing.i2c import I2CDeviceModel


def _encode(temperature_c: float, *, bits: int, lsb_c: float) -> int:
    """A temperature as a `bits`-wide two's complement number, saturating at the ends."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return max(low, min(high, round(temperature_c / lsb_c))) & ((1 << bits) - 1)


class _PointerChip(I2CDeviceModel):
    """The pointer-register protocol shared by the TMP102 and the LM75."""

    def __init__(self, *, address: int | None, temperature_c: float) -> None:
        super().__init__(address=address)
        #: The temperature the chip measures; set it any time.
        self.temperature_c = temperature_c
        #: The pointer register: which register reads and writes go to.
        self.pointer = 0x00
        self._frozen: bytes | None = None  # temperature register kept while shut down

    def _register(self, pointer: int) -> bytes:
        raise NotImplementedError

    def _store(self, pointer: int, data: bytes) -> None:
        raise NotImplementedError

    def _shut_down(self) -> bool:
        raise NotImplementedError

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        if data[0] > 0x03:
            raise self.nack(f"pointer 0x{data[0]:02x} does not exist")
        self.pointer = data[0]
        if len(data) > 1:
            if self.pointer == 0x00:
                return  # the temperature register is read-only
            was_shut_down = self._shut_down()
            if not was_shut_down:
                self._frozen = self._register(0x00)
            self._store(self.pointer, data[1:])
            if not self._shut_down():
                self._frozen = None

    def read_raw(self, length: int) -> bytes:
        if self.pointer == 0x00 and self._shut_down() and self._frozen is not None:
            word = self._frozen
        else:
            word = self._register(self.pointer)
        return (word * (length // len(word) + 1))[:length]


class TMP102Model(_PointerChip):
    """A TI TMP102 at `address` (0x48-0x4B) measuring `temperature_c`."""

    DEFAULT_ADDRESS = 0x48
    address = DEFAULT_ADDRESS
    _READ_ONLY = 0x6020  # R1/R0 and AL
    _SD, _EM = 0x0100, 0x0010

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0) -> None:
        super().__init__(address=address, temperature_c=temperature_c)
        #: The configuration register (power-on reset value 0x60A0).
        self.config = 0x60A0
        #: T_LOW and T_HIGH, reset 75 °C and 80 °C.
        self.limits = {0x02: 0x4B00, 0x03: 0x5000}

    @property
    def extended(self) -> bool:
        """Whether EM is set: 13-bit temperature data."""
        return bool(self.config & self._EM)

    def _shut_down(self) -> bool:
        return bool(self.config & self._SD)

    def _register(self, pointer: int) -> bytes:
        if pointer == 0x00:
            if self.extended:
                word = _encode(self.temperature_c, bits=13, lsb_c=0.0625) << 3 | 0x0001
            else:
                word = _encode(self.temperature_c, bits=12, lsb_c=0.0625) << 4
        elif pointer == 0x01:
            word = self.config & 0x7FFF  # OS reads 0 while converting continuously
        else:
            word = self.limits[pointer]
        return word.to_bytes(2, "big")

    def _store(self, pointer: int, data: bytes) -> None:
        old = self._register(pointer)
        word = int.from_bytes(data[:2] + old[len(data):], "big")  # a 1-byte write sets the MSB
        if pointer == 0x01:
            self.config = word & ~self._READ_ONLY | self.config & self._READ_ONLY
        else:
            self.limits[pointer] = word & 0xFFF0


class LM75Model(_PointerChip):
    """An LM75 (9-bit) or LM75B (`resolution_bits=11`) at `address` (0x48-0x4F) measuring
    `temperature_c`."""

    DEFAULT_ADDRESS = 0x48
    address = DEFAULT_ADDRESS
    _SHUTDOWN = 0x01

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0,
                 resolution_bits: Literal[9, 11] = 9, undefined_bits: int = 0x55) -> None:
        super().__init__(address=address, temperature_c=temperature_c)
        self.resolution_bits = resolution_bits
        #: What the undefined bits below a 9-bit reading hold.
        self.undefined_bits = undefined_bits
        #: The configuration register (reset 0x00).
        self.config = 0x00
        #: Thyst and Tos, reset 75 °C and 80 °C (9-bit, left-justified).
        self.limits = {0x02: 0x4B00, 0x03: 0x5000}

    def _shut_down(self) -> bool:
        return bool(self.config & self._SHUTDOWN)

    def _register(self, pointer: int) -> bytes:
        if pointer == 0x00:
            bits = self.resolution_bits
            shift = 16 - bits
            word = _encode(self.temperature_c, bits=bits, lsb_c=2.0 ** (8 - bits)) << shift
            if bits == 9:
                word |= self.undefined_bits & ((1 << shift) - 1)
            return word.to_bytes(2, "big")
        if pointer == 0x01:
            return bytes([self.config])
        return self.limits[pointer].to_bytes(2, "big")

    def _store(self, pointer: int, data: bytes) -> None:
        if pointer == 0x01:
            self.config = data[0]
        else:
            old = self._register(pointer)
            self.limits[pointer] = int.from_bytes(data[:2] + old[len(data):], "big") & 0xFF80
