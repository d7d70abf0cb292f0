"""What the Bosch Sensortec pressure sensor drivers share (BME280/BMP280 in `bme280`, BMP388/BMP390
in `bmp3xx`, BME680 in `bme680`): a chip id in one register checked against a set of ids, a soft
reset by writing 0xB6 to a command register, a status register polled until a conversion is done,
and for the BME280 and BME680 the oversampling codes and the C division of their integer
compensation code.

Not a plugin: the loader skips modules whose name starts with an underscore."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from sensord import I2CSensor


def trunc_div(a: int, b: int) -> int:
    """C's integer division, which truncates toward zero (Python's // floors), as the integer
    compensation code of datasheets (Bosch's) divides."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


#: Bosch's oversampling factors (BME280, BMP280, BME680; the BMP388 has ×32 and
#: other codes): samples averaged per measurement.
Oversampling = Literal[1, 2, 4, 8, 16]


def osrs_code(samples: int) -> int:
    """Bosch's osrs_x register code of an oversampling factor: skipped (0) → 0, ×1 → 1, ×2 → 2,
    ×4 → 3, ×8 → 4, ×16 → 5 (BME280 §5.4.5, BME680 §5.3.2)."""
    return samples.bit_length()


#: The soft reset command of every Bosch Sensortec pressure sensor (BME280 §5.4.2, BMP388 §4.3.20, BME680 §5.3.4).
SOFT_RESET = 0xB6


def describe_ids(ids: Iterable[int]) -> str:
    """`0x58`, `0x56 or 0x57`, `0x56, 0x57 or 0x58`: the chip ids a driver accepts, for messages."""
    names = [f"0x{i:02x}" for i in ids]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def soft_reset(sensor: I2CSensor, register: int, startup_s: float) -> None:
    """Write the soft reset command to `register` and wait the chip's start-up time."""
    sensor.transfer(lambda bus: bus.write_byte_data(sensor.address, register, SOFT_RESET))
    sensor.hardware.sleep(startup_s)


def poll_register(sensor: I2CSensor, register: int, done: Callable[[int], bool], *, polls: int,
                  interval_s: float) -> tuple[bool, int]:
    """Read `register` until `done(value)`, at most `polls` times, sleeping `interval_s` after each
    read that is not done. Returns whether it got done and the last value read."""
    value = 0
    for _ in range(polls):
        value = int(sensor.transfer(lambda bus: bus.read_byte_data(sensor.address, register)))
        if done(value):
            return True, value
        sensor.hardware.sleep(interval_s)
    return False, value


def chip_id_in(bus: Any, address: int, register: int, ids: Iterable[int]) -> bool:
    """For `identify()`: whether the byte at `register` is one of `ids` (False when nobody answers).
    One byte read, which changes nothing on these chips."""
    try:
        return int(bus.read_byte_data(address, register)) in set(ids)
    except OSError:
        return False
