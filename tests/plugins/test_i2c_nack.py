"""The NACK paths every simple I2C driver shares (one NACK retried is in each driver's own tests,
with its reading): three NACKs in a row, and no chip at all, are one error naming the sensor."""

from __future__ import annotations

from typing import Any

import pytest
from driver_kit import on_bus, opened

from sensord import SensorError
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.aht20 import AHT20Model
from sensord.testing.models.bh1750 import BH1750Model
from sensord.testing.models.htu21d import HTU21DModel
from sensord.testing.models.mcp9808 import MCP9808Model
from sensord.testing.models.tmp102 import LM75Model, TMP102Model
from sensord_plugins.aht20 import AHT20
from sensord_plugins.bh1750 import BH1750
from sensord_plugins.htu21d import HTU21D
from sensord_plugins.lm75 import LM75
from sensord_plugins.mcp9808 import MCP9808
from sensord_plugins.tmp102 import TMP102

NACK = "no answer (NACK): is it wired, powered, at this address?"
DRIVERS = pytest.mark.parametrize(("driver", "model", "name", "message"), [
    (AHT20, AHT20Model, "bedroom", f'sensor "bedroom" (aht20 @ 0x38 on bus 1): {NACK}'),
    (BH1750, BH1750Model, "window", f'sensor "window" (bh1750 @ 0x23 on bus 1): {NACK}'),
    (HTU21D, HTU21DModel, "cellar", f'sensor "cellar" (htu21d @ 0x40 on bus 1): {NACK}'),
    (LM75, LM75Model, "enclosure", f'sensor "enclosure" (lm75 @ 0x48 on bus 1): {NACK}'),
    (MCP9808, MCP9808Model, "fridge", f'sensor "fridge" (mcp9808 @ 0x18 on bus 1): {NACK}'),
    (TMP102, TMP102Model, "radiator", f'sensor "radiator" (tmp102 @ 0x48 on bus 1): {NACK}'),
], ids=["aht20", "bh1750", "htu21d", "lm75", "mcp9808", "tmp102"])


@DRIVERS
def test_nack_after_nack_is_an_error_naming_the_chip(driver: Any, model: Any, name: str, message: str,
                                                     clock: FakeClock) -> None:
    sensor, bus = opened(driver, model(), clock, name=name)
    bus.fail_next(sensor.address, count=3)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == message


@DRIVERS
def test_missing_chip_fails_open(driver: Any, model: Any, name: str, message: str, clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        on_bus(driver, FakeI2CBus(), clock, name=name).open()
    assert str(excinfo.value) == message
