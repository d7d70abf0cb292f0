"""A driver under test on a `FakeI2CBus` (bus 1), its sleeps advancing a `FakeClock`."""

from __future__ import annotations

from typing import Any, TypeVar

from sensord import I2CSensor
from sensord.hardware import Hardware
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus

S = TypeVar("S", bound=I2CSensor)


def on_bus(cls: type[S], bus: FakeI2CBus, clock: FakeClock, *, name: str, **options: Any) -> S:
    """A `cls` driver named `name`, not yet opened, with `options` as its `[[sensor]]` keys."""
    hardware = Hardware(i2c_factory={1: bus}.__getitem__, sleep=clock.advance)
    return cls(cls.Config(**options), name=name, hardware=hardware)


def opened(cls: type[S], chip: Any, clock: FakeClock, *, name: str, **options: Any) -> tuple[S, FakeI2CBus]:
    """An opened `cls` driver on a bus holding the device model `chip`, and that bus."""
    bus = FakeI2CBus([chip])
    sensor = on_bus(cls, bus, clock, name=name, **options)
    sensor.open()
    return sensor, bus
