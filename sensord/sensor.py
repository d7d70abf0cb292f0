"""The sensor API that plugins implement: `Sensor`, its `SensorConfig`, the `Reading`s it returns.

A driver never reads a clock and never opens hardware itself: the scheduler stamps time, sensor
name and channel, and the bus or pin factory is handed in through `Hardware`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeGuard

if TYPE_CHECKING:
    from decimal import Decimal

    from .hardware import Hardware

Value = float | int | bool

#: The integers a value may be: a signed 64-bit integer, what every encoding and the usual
#: consumers (InfluxDB, SQLite, JavaScript's BigInt64) carry.
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


class BadValue(ValueError):
    """A reading's value that sensord cannot carry. `kind` groups alike problems for logging
    ("str", "int out of range"); the message says what was found and what is expected."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def clean_value(value: object) -> Value | None:
    """`value` as sensord carries it: exactly a `bool`, an `int` or a `float`; None for "no value
    this time" (None, NaN, +inf, -inf). BadValue for anything else.

    Other real numbers are converted: integral ones (an `IntEnum`, numpy's integers) to `int`,
    the rest (`decimal.Decimal`, `fractions.Fraction`, numpy's floats, a float subclass) to `float`.
    Integers must fit in a signed 64-bit integer. Strings, bytes, complex numbers, containers and
    other objects are bad values: sensord does not guess what a text means.
    """
    if value is None or type(value) is bool:
        return value
    # The usual values first, without the number ABCs' isinstance checks: this runs for every reading.
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return value
    try:
        if isinstance(value, int | numbers.Integral) and not isinstance(value, bool):
            number: Value = int(value)
        elif isinstance(value, float | numbers.Real) or _is_decimal(value):
            number = float(value)
        else:
            raise BadValue(type(value).__name__, f"value {brief_repr(value)} is {_type_name(value)}, "
                           "expected a number (int, float) or a bool")
    except BadValue:
        raise
    except Exception as exc:  # a number type whose conversion fails (a signalling NaN, an overflow)
        raise BadValue(type(value).__name__, f"value {brief_repr(value)} ({_type_name(value)}) cannot be "
                       f"converted to a number: {type(exc).__name__}: {exc}") from None
    if isinstance(number, float):
        if math.isfinite(number):
            return number
        if _is_decimal(value) and value.is_finite():
            raise BadValue("float out of range", f"value {brief_repr(value)} is beyond a float's range")
        return None
    if not INT_MIN <= number <= INT_MAX:
        raise BadValue("int out of range", f"value {brief_repr(value)} is outside the signed 64-bit "
                       "integer range")
    return number


def _is_decimal(value: object) -> TypeGuard[Decimal]:
    """A `decimal.Decimal` (not a `numbers.Real`), without importing `decimal` (0.4 MiB) for it:
    there is no Decimal before something imported the module."""
    module = sys.modules.get("decimal")
    return module is not None and isinstance(value, module.Decimal)


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def brief_repr(value: object, width: int = 60) -> str:
    """A short repr for a log line; never raises (a plugin's __repr__ may)."""
    try:
        text = repr(value)
    except Exception:  # any object's __repr__ may raise anything
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[:width - 3] + "..."


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one quantity, as a driver returns it (no time, no sensor name)."""

    quantity: str
    value: Value
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Channel:
    """A quantity a sensor produces, declared up front: its unit and its resolution (the step
    between two distinct values; None when the value is an exact float), and its `kind`:

    - `"measurement"`: a value at the time of the reading (a temperature, a voltage);
    - `"total"`: a running total that only grows, except when it starts again from 0 (a pulse
      count, a rain gauge's millimetres, a meter's Wh); consumers compute rates from it;
    - `"binary"`: on or off (`true` / `false`: a door contact, a PIR).

    Consumers such as Home Assistant discovery read it (`state_class`, `binary_sensor`)."""

    quantity: str
    unit: str = ""
    resolution: float | None = None
    kind: Literal["measurement", "total", "binary"] = "measurement"


@dataclass(frozen=True, slots=True)
class Sample:
    """A reading stamped by the scheduler: which sensor, and when (Unix epoch seconds). Every
    stage after the scheduler (filters, batch, encodings, buffer, publisher) handles these."""

    sensor: str
    quantity: str
    value: Value
    unit: str
    ts: float


@dataclass(frozen=True)
class SensorConfig:
    """Base class of every sensor type's own settings.

    A subclass is a frozen dataclass; each field is a TOML key of the `[[sensor]]` table. Field
    types are checked (int, float, str, bool, `list[str]`, `Literal[...]`, `X | None`). Range
    checks go in `dataclasses.field(metadata=...)` with the keys `ge`, `gt`, `le`, `lt`; checks
    across fields go in `__post_init__`, which raises `ValueError` with a message naming the key.
    """


def field_range(default: Any, *, ge: float | None = None, gt: float | None = None,
                le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with a checked numeric range, for `SensorConfig` subclasses."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=bounds)
    return dataclasses.field(default=default, metadata=bounds)


class Sensor:
    """A sensor type. Subclasses set `type_name` and `Config` and implement `read()`.

    Lifecycle: `open()` once (probe the chip id, load calibration), `read()` many times in a
    worker thread (it may block), `close()` once. `read()` raises `SensorError` on failure.
    """

    type_name: ClassVar[str] = ""
    Config: ClassVar[type[SensorConfig]] = SensorConfig
    #: I2C chips: the addresses the chip can have, for `sensord detect`.
    i2c_addresses: ClassVar[tuple[int, ...]] = ()
    #: False for a sensor whose `open()`, `read()`, `watch()` and `close()` return at once and
    #: cannot hang (no I/O, no sleep: the simulator). The scheduler then calls them on its event
    #: loop, without the worker thread's two thread switches per read, and without a timeout.
    blocking: ClassVar[bool] = True

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        self.config = config
        self.name = name
        self.hardware = hardware

    def channels(self) -> list[Channel]:
        """The channels `read()` returns, with unit and resolution. Override in every driver."""
        return []

    def open(self) -> None:
        """Probe and initialise the device. Default: nothing to do."""

    def read(self) -> list[Reading]:
        """Read the device once; blocks; runs in a worker thread."""
        raise NotImplementedError

    def watch(self, emit: Callable[[list[Reading]], None]) -> None:
        """Edge-driven inputs (a door contact, a PIR): after `open()`, arrange to call
        `emit(readings)` from any thread whenever the input changes, so the change does not wait
        for the next poll. The scheduler stamps the time when `emit` is called. Default: polled only."""

    def close(self) -> None:
        """Release the device. Default: nothing to do."""

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """For `sensord detect`: probe a chip that answered at `address` (read its id register).

        Return the `[[sensor]]` keys to configure it (e.g. `{"type": "bme280", "address": 0x76}`)
        when it is this chip, else None. Must not change the chip's state; `sleep` waits between
        a command and its answer. Default: not detectable."""
        return None

    def describe(self) -> str:
        """A short label for messages: `sensor "attic" (bme280)`."""
        return f'sensor "{self.name}" ({self.type_name})'


def declared_channels(sensor: Sensor) -> list[Channel]:
    """`sensor.channels()`, or [] when it raises: a plugin's `channels()` may need `open()` first,
    and whoever asks (the encoder, the meta message, the channel_filters check) copes without."""
    try:
        return list(sensor.channels())
    except Exception:  # a plugin's channels() can raise anything before open()
        return []
