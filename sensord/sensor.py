"""The sensor API that plugins implement: `Sensor`, its `SensorConfig`, the `Reading`s it returns.

A driver never reads a clock and never opens hardware itself: the scheduler stamps time, sensor
name and channel, and the bus or pin factory is handed in through `Hardware`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .hardware import Hardware

Value = float | int | bool


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one quantity, as a driver returns it (no time, no sensor name)."""

    quantity: str
    value: Value
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Channel:
    """A quantity a sensor produces, declared up front: its unit and its resolution (the step
    between two distinct values; None when the value is an exact float)."""

    quantity: str
    unit: str = ""
    resolution: float | None = None


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
