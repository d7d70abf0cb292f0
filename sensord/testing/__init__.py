"""Test helpers for sensord drivers and plugins: a fake I2C bus with chip models, mock GPIO pins, a
virtual clock, a fake sysfs tree for the kernel's IIO and hwmon devices (`FakeSysfs`), fake
serial ports with frame-level device models for UART sensors (`FakeSerialPorts`, `FakeSerialPort`,
`SerialDeviceModel`), a real
mosquitto broker (`Mosquitto`, `make_test_pki`) with a paho subscriber to watch it (`Subscription`,
`Message`), a TCP proxy to cut or stall links (`TcpProxy`), an in-memory broker for fast tests of
the MQTT stage (`FakeBroker`), a harness that runs one sensor through scheduler, filters and
encoder on virtual time without MQTT (`run_sensor`, `HarnessResult`), and a pytest plugin
(fixtures `fake_i2c_bus`, `mock_pin_factory`, `mock_pins`, `fake_sysfs`, `fake_serial_ports`, `fake_hardware`,
`fake_clock`, `sensor_harness`, `mqtt_broker`, `mqtt_broker_factory`, `fake_mqtt_broker`) that is
active once sensord is installed.

The names below are imported on first use: pytest imports this package at start-up (the plugin
lives in it) in every project that has sensord installed, so importing it must cost nothing.
Nothing here imports gpiozero or smbus2 until a pin helper is called, nor paho until an MQTT
client is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .broker import Mosquitto, make_test_pki
    from .clock import FakeClock
    from .fake_mqtt import FakeBroker
    from .harness import HarnessResult, run_sensor
    from .i2c import EREMOTEIO, FakeI2CBus, I2CDeviceModel, RegisterMapDevice, Transaction
    from .mqtt_client import Message, Subscription
    from .pins import MockPins, fake_hardware, mock_pin_factory
    from .proxy import TcpProxy
    from .serial import FakeSerialPort, FakeSerialPorts, SerialDeviceModel
    from .sysfs import FakeSysfs

__all__ = [
    "EREMOTEIO",
    "FakeBroker",
    "FakeClock",
    "FakeI2CBus",
    "FakeSerialPort",
    "FakeSerialPorts",
    "FakeSysfs",
    "HarnessResult",
    "I2CDeviceModel",
    "Message",
    "MockPins",
    "Mosquitto",
    "RegisterMapDevice",
    "SerialDeviceModel",
    "Subscription",
    "TcpProxy",
    "Transaction",
    "fake_hardware",
    "make_test_pki",
    "mock_pin_factory",
    "run_sensor",
]

_MODULE_OF = {
    "EREMOTEIO": "i2c",
    "FakeBroker": "fake_mqtt",
    "FakeClock": "clock",
    "FakeI2CBus": "i2c",
    "FakeSerialPort": "serial",
    "FakeSerialPorts": "serial",
    "FakeSysfs": "sysfs",
    "HarnessResult": "harness",
    "I2CDeviceModel": "i2c",
    "Message": "mqtt_client",
    "MockPins": "pins",
    "Mosquitto": "broker",
    "RegisterMapDevice": "i2c",
    "SerialDeviceModel": "serial",
    "Subscription": "mqtt_client",
    "TcpProxy": "proxy",
    "Transaction": "i2c",
    "fake_hardware": "pins",
    "make_test_pki": "broker",
    "mock_pin_factory": "pins",
    "run_sensor": "harness",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
