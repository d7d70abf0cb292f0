"""What the driver tests share: a driver on a `FakeI2CBus` (bus 1) or a `FakeSerialPort` whose
sleeps advance a `FakeClock`, a hand-moved pin clock, and the TOML example of a plugin module's
docstring parsed as a config file."""

from __future__ import annotations

import textwrap
import tomllib
from types import ModuleType
from typing import Any, TypeVar

from sensord import I2CSensor, Sensor
from sensord.config import Config, parse_config
from sensord.hardware import Hardware
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.serial import FakeSerialPort, FakeSerialPorts, SerialDeviceModel

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


U = TypeVar("U", bound=Sensor)


def on_port(cls: type[U], model: SerialDeviceModel | None, clock: FakeClock, *, name: str,
            path: str = "/dev/serial0", **options: Any) -> tuple[U, FakeSerialPort]:
    """A `cls` driver named `name`, not yet opened, whose `port` is `path` with `model` on the
    line, and that port; reads on it and the driver's sleeps advance `clock`."""
    ports = FakeSerialPorts(clock=clock)
    port = ports.attach(path, model)
    hardware = Hardware(serial_factory=ports.open, sleep=clock.advance)
    return cls(cls.Config(port=path, **options), name=name, hardware=hardware), port


def example_config(module: ModuleType, *types: type[Sensor]) -> Config:
    """The module docstring's example (the TOML after "Example::"), parsed with these sensor types."""
    assert module.__doc__ is not None and "Example::" in module.__doc__, module.__name__
    text = textwrap.dedent(module.__doc__.split("Example::", 1)[1])
    return parse_config(tomllib.loads(text), "example.toml", {t.type_name: t for t in types})


class Ticks:
    """A pin factory clock the test moves by hand (replaces `MockFactory.ticks`)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now
