"""sensord's pytest plugin, registered under the `pytest11` entry point.

Fixtures for driver and plugin tests: `fake_i2c_bus`, `mock_pin_factory`, `mock_pins`,
`fake_hardware` (a `Hardware` on the first two) and `fake_clock`. pytest imports this module at
start-up in every project where sensord is installed, so sensord and gpiozero are imported only
inside the fixtures that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gpiozero.pins.mock import MockFactory

    from sensord.hardware import Hardware
    from sensord.testing import FakeClock, FakeI2CBus, MockPins


@pytest.fixture
def fake_i2c_bus() -> Iterator[FakeI2CBus]:
    """An empty `FakeI2CBus` (bus 1); attach chip models with `fake_i2c_bus.attach(model)`."""
    from sensord.testing.i2c import FakeI2CBus

    bus = FakeI2CBus()
    yield bus
    bus.close()


@pytest.fixture
def mock_pin_factory() -> Iterator[MockFactory]:
    """A fresh gpiozero `MockFactory`, for `pin_factory=`; closed and reset after the test.
    The global `Device.pin_factory` is left alone."""
    from sensord.testing.pins import mock_pin_factory as make_factory

    factory = make_factory()
    yield factory
    factory.close()
    factory.reset()


@pytest.fixture
def mock_pins(mock_pin_factory: MockFactory) -> MockPins:
    """`MockPins` on the `mock_pin_factory` fixture, to drive inputs and read outputs."""
    from sensord.testing.pins import MockPins

    return MockPins(mock_pin_factory)


@pytest.fixture
def fake_hardware(fake_i2c_bus: FakeI2CBus, mock_pin_factory: MockFactory) -> Iterator[Hardware]:
    """A `Hardware` whose bus 1 is `fake_i2c_bus` and whose pin factory is `mock_pin_factory`."""
    from sensord.testing.pins import fake_hardware as make_hardware

    hardware = make_hardware(fake_i2c_bus, pin_factory=mock_pin_factory)
    yield hardware
    hardware.close()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh `FakeClock`: virtual time that moves only when the test advances it."""
    from sensord.testing.clock import FakeClock

    return FakeClock()
