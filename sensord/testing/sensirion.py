"""A base for fake Sensirion command-based chips (the models of SCD30, SCD4x, SGP40): the framing.

A write is a 16-bit command, MSB first, and its argument words, each followed by its CRC-8; a
read command's answer is fetched with a following read, each word with its CRC. Past the answer
the bus reads 0xFF. A subclass keeps its command table and the chip's own rules, and uses
`check_idle()`, `decode_command()`, `argument_words()` and `answer_bytes()` from its
`write_raw` and `read_raw`.
"""

from __future__ import annotations

from collections.abc import Collection

from sensord.i2c import crc8
from sensord.testing.i2c import I2CDeviceModel


class SensirionModel(I2CDeviceModel):
    """A fake command-based Sensirion chip: fake time, the commands it took, CRC checks."""

    def __init__(self, *, address: int | None = None, enforce_timing: bool = False) -> None:
        super().__init__(address=address)
        #: Whether to NACK during execution times; False lets a test skip fake time altogether.
        self.enforce_timing = enforce_timing
        #: Fake seconds since power-up; moved by `advance()`.
        self.now = 0.0
        #: Names of the commands accepted so far, oldest first.
        self.commands: list[str] = []
        self._busy_until = 0.0
        self._corrupt = False
        #: The read command whose answer the next read fetches (see `take_pending()`).
        self._pending: str | None = None

    def advance(self, seconds: float) -> None:
        """Let `seconds` of fake time pass."""
        self.now += seconds

    def corrupt_crc_next(self) -> None:
        """Send a wrong CRC with the first word of the next answer."""
        self._corrupt = True

    def busy(self) -> bool:
        """Whether the last command's execution time is still running (and is enforced)."""
        return self.enforce_timing and self.now < self._busy_until

    def check_idle(self, *, reading: bool = False) -> None:
        """NACK a command, or with `reading` a read header, during an execution time."""
        if not self.busy():
            return
        if reading:
            raise self.nack("read header during the execution time")
        raise self.nack(f"busy with {self.commands[-1]} for {self._busy_until - self.now:.4f} s more")

    def take_pending(self) -> str:
        """The read command whose answer this read fetches; NACK a read with none before it."""
        name, self._pending = self._pending, None
        if name is None:
            raise self.nack("no read command before this read")
        return name

    def decode_command(self, data: bytes, known: Collection[int]) -> tuple[int, bytes]:
        """The command of a write, one of `known`, and its argument bytes; NACK anything else."""
        if len(data) < 2:
            raise self.nack(f"expected a 16-bit command, got {len(data)} byte(s)")
        command = int.from_bytes(data[:2], "big")
        if command not in known:
            raise self.nack(f"unknown command 0x{command:04x}")
        return command, data[2:]

    def argument_words(self, name: str, args: bytes, counts: Collection[int]) -> list[int]:
        """The argument words of command `name`; NACK a count not in `counts` or a wrong CRC."""
        if len(args) % 3 or len(args) // 3 not in counts:
            raise self.nack(f"{name}: expected {' or '.join(map(str, counts))} word(s) with CRC, "
                            f"got {len(args)} bytes")
        words = []
        for i in range(0, len(args), 3):
            if crc8(args[i:i + 2]) != args[i + 2]:
                raise self.nack(f"{name}: CRC mismatch in word {i // 3}")
            words.append(int.from_bytes(args[i:i + 2], "big"))
        return words

    def answer_bytes(self, words: list[int], length: int) -> bytes:
        """`length` bytes of an answer: the words with their CRCs (the first spoilt after
        `corrupt_crc_next()`), then 0xFF; the master may stop early."""
        data = bytearray()
        for word in words:
            raw = word.to_bytes(2, "big")
            data += raw + bytes([crc8(raw)])
        if self._corrupt:
            data[2] ^= 0xFF
            self._corrupt = False
        return bytes(data[:length]).ljust(length, b"\xff")
