"""Fixtures shared by the driver tests."""

from __future__ import annotations

import gpiozero.pins.local
import gpiozero.pins.mock
import pytest
from driver_kit import Ticks
from gpiozero.pins.mock import MockFactory

from sensord.testing import MockPins
from sensord.testing.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time from 0: the I2C rigs (`driver_kit.opened`) make a driver's sleeps advance it."""
    return FakeClock(start=0.0)


@pytest.fixture
def pins(mock_pin_factory: MockFactory) -> MockPins:
    # The fixture resets the factory after the test: gpiozero 1.6's MockFactory instances all
    # share one set of pins and reservations, so a factory made in a test would leak into others.
    return MockPins(mock_pin_factory)


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> Ticks:
    """The clock mock pins stamp their edges with, moved by hand; the driver debounces on those
    stamps. gpiozero 2.0's MockPin reads `monotonic` in `pins.mock`; 1.6's takes the factory's
    ticks, `monotonic` in `pins.local`."""
    clock = Ticks()
    for pins_module in (gpiozero.pins.mock, gpiozero.pins.local):
        if hasattr(pins_module, "monotonic"):
            monkeypatch.setattr(pins_module, "monotonic", clock)
    return clock
