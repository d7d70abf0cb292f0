"""A base for I2C drivers: the shared, locked bus, NACK retries, and messages that name the chip.

    @dataclass(frozen=True)
    class Config(I2CConfig):
        address: int = field_range(0x76, ge=0x76, le=0x77)

    class BME280(I2CSensor):
        type_name = "bme280"
        Config = Config

        def probe(self) -> None:
            chip_id = self.transfer(lambda bus: bus.read_byte_data(self.address, 0xD0))
            if chip_id != 0x60:
                raise self.error(f"chip id 0x{chip_id:02x}, expected 0x60")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import SensorError
from .hardware import NACK_ERRNOS, LockedBus, retry_nack
from .sensor import Sensor, SensorConfig, field_range

T = TypeVar("T")


@dataclass(frozen=True)
class I2CConfig(SensorConfig):
    """Keys every I2C sensor has. Subclasses override `address` with the chip's default and range."""

    bus: int = field_range(1, ge=0, le=255)  # /dev/i2c-<bus>; 1 on a Raspberry Pi's header
    address: int = field_range(0x03, ge=0x03, le=0x77)


class I2CSensor(Sensor):
    """An I2C chip. `open()` gets the shared bus and calls `probe()`; use `transfer()` for every
    bus access so it holds the bus lock and retries a NACK."""

    i2c_addresses: ClassVar[tuple[int, ...]] = ()
    config: I2CConfig
    _bus: LockedBus | None = None

    @property
    def address(self) -> int:
        return self.config.address

    @property
    def bus(self) -> LockedBus:
        if self._bus is None:
            self._bus = self.hardware.i2c(self.config.bus)
        return self._bus

    def describe(self) -> str:
        return f'sensor "{self.name}" ({self.type_name} @ 0x{self.address:02x} on bus {self.config.bus})'

    def error(self, message: str) -> SensorError:
        """A SensorError naming this sensor, its chip, address and bus."""
        return SensorError(f"{self.describe()}: {message}")

    def transfer(self, fn: Callable[[LockedBus], T], *, attempts: int = 3) -> T:
        """Run `fn(bus)` holding the bus lock; retry a NACK; turn I/O errors into SensorError."""
        bus = self.bus

        def locked() -> T:
            with bus.lock:
                return fn(bus)

        try:
            return retry_nack(locked, sleep=self.hardware.sleep, attempts=attempts)
        except OSError as exc:
            if exc.errno in NACK_ERRNOS:
                raise self.error("no answer (NACK): is it wired, powered, at this address?") from exc
            raise self.error(f"I/O error: {exc}") from exc

    def crc_words(self, data: bytes | bytearray | Sequence[int], what: str) -> list[int]:
        """`words_with_crc(data, what)` (Sensirion framing), a bad CRC as this sensor's SensorError."""
        try:
            return words_with_crc(data, what)
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def open(self) -> None:
        try:
            self.bus  # noqa: B018  (opens /dev/i2c-N)
        except OSError as exc:
            raise self.error(f"cannot open /dev/i2c-{self.config.bus}: {exc.strerror or exc}") from exc
        self.probe()

    def probe(self) -> None:
        """Check the chip id and load calibration; raise `self.error(...)` when it is not the chip."""


def swap16(word: int) -> int:
    """Swap the bytes of a 16-bit word. SMBus words travel low byte first; most chips (TMP102,
    LM75, ADS1x15, INA219) send and expect their registers high byte first. Its own inverse."""
    return (word & 0xFF) << 8 | word >> 8


def signed(value: int, bits: int) -> int:
    """The value of a `bits`-wide two's complement number."""
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def read_bytes(bus: Any, address: int, length: int) -> bytes:
    """A plain read of `length` bytes with no register byte first (command-based chips: Sensirion,
    Aosong, BH1750), which the SMBus calls cannot do; one I2C read message."""
    from smbus2 import i2c_msg  # lazy: sensord imports without smbus2

    msg: Any = i2c_msg.read(address, length)  # Any: smbus2's stub types __iter__ wrongly
    bus.i2c_rdwr(msg)
    return bytes(list(msg))


def crc8(data: bytes | bytearray | Sequence[int], *, polynomial: int = 0x31, init: int = 0xFF) -> int:
    """CRC-8 as Sensirion (SHT3x, SHT4x, SCD4x) and Aosong (AHT20) compute it: x^8+x^5+x^4+1, init 0xFF."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ polynomial) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def words_with_crc(data: bytes | bytearray | Sequence[int], what: Any) -> list[int]:
    """Sensirion framing: 16-bit big-endian words each followed by its CRC-8. Raises ValueError
    naming `what` on a CRC mismatch."""
    out = []
    for i in range(0, len(data) - 2, 3):
        word = bytes(data[i:i + 2])
        if crc8(word) != data[i + 2]:
            raise ValueError(f"{what}: CRC mismatch in word {i // 3} (got 0x{data[i + 2]:02x}, "
                             f"expected 0x{crc8(word):02x})")
        out.append(int.from_bytes(word, "big"))
    return out


def command_bytes(command: int, *words: int) -> list[int]:
    """A Sensirion command (SCD4x, SCD30, SGP40) and its argument words as sent: the 16-bit
    command MSB first, each word MSB first followed by its `crc8`."""
    out = list(command.to_bytes(2, "big"))
    for word in words:
        raw = word.to_bytes(2, "big")
        out += [*raw, crc8(raw)]
    return out


def send_command(bus: Any, address: int, command: int, *words: int) -> None:
    """A Sensirion "send command" or "write" sequence: the command and its words, one write message."""
    from smbus2 import i2c_msg  # lazy: sensord imports without smbus2

    bus.i2c_rdwr(i2c_msg.write(address, command_bytes(command, *words)))


def read_command(bus: Any, address: int, command: int, count: int, *, wait_s: float,
                 sleep: Callable[[float], None], words: Sequence[int] = ()) -> bytes:
    """A Sensirion "read" sequence: the command (with argument `words`), `wait_s` for the chip to
    execute it, then `count` words with their CRCs (3 × `count` bytes, not checked: see
    `words_with_crc`). Two transactions with a stop between, not a repeated start: the chips NACK
    a read header while they execute, and the SCD30 does not support repeated starts at all."""
    send_command(bus, address, command, *words)
    sleep(wait_s)
    return read_bytes(bus, address, 3 * count)
