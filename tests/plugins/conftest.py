"""Fixtures shared by the driver tests."""

from __future__ import annotations

import pytest

from sensord.testing.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time from 0: the I2C rigs (`i2c_rig.opened`) make a driver's sleeps advance it."""
    return FakeClock(start=0.0)
