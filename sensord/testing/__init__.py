"""Test helpers for sensord drivers and plugins: a fake I2C bus with chip models, mock GPIO
pins, a virtual clock, and a pytest plugin (fixtures `fake_i2c_bus`, `mock_pin_factory`,
`mock_pins`, `fake_hardware`, `fake_clock`) that is active once sensord is installed.

The names below are imported on first use: pytest imports this package at start-up (the plugin
lives in it) in every project that has sensord installed, so importing it must cost nothing.
Nothing here imports gpiozero or smbus2 until a pin helper is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import FakeClock
    from .i2c import EREMOTEIO, FakeI2CBus, I2CDeviceModel, RegisterMapDevice, Transaction
    from .pins import MockPins, fake_hardware, mock_pin_factory

__all__ = [
    "EREMOTEIO",
    "FakeClock",
    "FakeI2CBus",
    "I2CDeviceModel",
    "MockPins",
    "RegisterMapDevice",
    "Transaction",
    "fake_hardware",
    "mock_pin_factory",
]

_MODULE_OF = {
    "EREMOTEIO": "i2c",
    "FakeClock": "clock",
    "FakeI2CBus": "i2c",
    "I2CDeviceModel": "i2c",
    "MockPins": "pins",
    "RegisterMapDevice": "i2c",
    "Transaction": "i2c",
    "fake_hardware": "pins",
    "mock_pin_factory": "pins",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
