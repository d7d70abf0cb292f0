"""Tests of `sensord.testing.pins` and the fixtures of the sensord pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from gpiozero import Button, Device, DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPWMPin

from sensord import testing
from sensord.hardware import Hardware
from sensord.testing import FakeClock, FakeI2CBus, MockPins, RegisterMapDevice


def test_mock_pin_factory_is_fresh_and_not_global() -> None:
    first, second = testing.mock_pin_factory(), testing.mock_pin_factory()
    assert isinstance(first, MockFactory)
    assert first is not second
    assert Device.pin_factory is not first
    assert isinstance(testing.mock_pin_factory(pwm=True).pin(18), MockPWMPin)


def test_button_follows_driven_input(mock_pin_factory: MockFactory) -> None:
    pins = MockPins(mock_pin_factory)
    presses: list[bool] = []
    with Button(17, pin_factory=mock_pin_factory) as button:
        button.when_pressed = lambda: presses.append(True)
        assert not button.is_pressed  # the pull-up holds the pin high
        pins.set_input(17, high=False)
        assert button.is_pressed
        pins.set_input(17, high=True)
        assert not button.is_pressed
    assert presses == [True]


def test_pulse_counts_edges(mock_pins: MockPins, mock_pin_factory: MockFactory) -> None:
    tips: list[int] = []
    with DigitalInputDevice("GPIO6", pin_factory=mock_pin_factory) as gauge:
        gauge.when_activated = lambda: tips.append(1)
        mock_pins.pulse(6, count=3, width_s=0.001)
        assert not gauge.is_active
    assert len(tips) == 3
    assert mock_pins.history(6) == [False, True, False, True, False, True, False]


def test_active_low_pulse(mock_pins: MockPins, mock_pin_factory: MockFactory) -> None:
    with Button(5, pin_factory=mock_pin_factory) as button:
        mock_pins.pulse(5, count=2, high=False)
        assert not button.is_pressed
    # History: floating low when created, high from the pull-up, then two low pulses.
    assert mock_pins.history(5) == [False, True, False, True, False, True]


def test_outputs_can_be_read_but_not_driven(mock_pins: MockPins, mock_pin_factory: MockFactory) -> None:
    with DigitalOutputDevice(22, pin_factory=mock_pin_factory) as power:
        power.on()
        assert mock_pins.is_high(22)
        power.off()
        assert not mock_pins.is_high(22)
        with pytest.raises(ValueError, match="output"):
            mock_pins.set_input(22, high=True)


def test_mock_pins_close_resets_reservations() -> None:
    pins = MockPins()
    device = DigitalInputDevice(17, pin_factory=pins.factory)
    pins.close()
    assert pins.factory.pins == {}
    # The pin is free again for a new device on the same factory.
    with DigitalInputDevice(17, pin_factory=pins.factory) as again:
        assert again.pin is not None
    device.close()


def test_fake_hardware_serves_the_given_buses() -> None:
    bus0, bus1 = FakeI2CBus(number=0), FakeI2CBus()
    hardware = testing.fake_hardware({0: bus0, 1: bus1})
    assert hardware.i2c(0).bus is bus0
    assert hardware.i2c(1).bus is bus1
    assert isinstance(hardware.pin_factory, MockFactory)
    with pytest.raises(FileNotFoundError, match="/dev/i2c-3"):
        hardware.i2c(3)
    hardware.close()
    assert bus0.closed and bus1.closed


def test_fake_hardware_defaults() -> None:
    factory = testing.mock_pin_factory()
    hardware = testing.fake_hardware(pin_factory=factory)
    assert isinstance(hardware.i2c(1).bus, FakeI2CBus)
    assert hardware.pin_factory is factory
    single = FakeI2CBus()
    assert testing.fake_hardware(single).i2c(1).bus is single


def test_fake_hardware_fixture(fake_hardware: Hardware, fake_i2c_bus: FakeI2CBus,
                               mock_pin_factory: MockFactory) -> None:
    fake_i2c_bus.attach(RegisterMapDevice(registers={0xD0: 0x60}), 0x76)
    locked = fake_hardware.i2c(1)
    with locked.lock:
        assert locked.read_byte_data(0x76, 0xD0) == 0x60
    assert fake_hardware.pin_factory is mock_pin_factory


def test_fake_clock_fixture(fake_clock: FakeClock) -> None:
    start = fake_clock.monotonic()
    fake_clock.advance(2.5)
    assert fake_clock.monotonic() == start + 2.5


def test_mock_pin_factory_fixture_is_fresh(mock_pin_factory: MockFactory) -> None:
    assert mock_pin_factory.pins == {}
    assert Device.pin_factory is not mock_pin_factory


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_importing_the_pytest_plugin_loads_none_of_the_kit() -> None:
    loaded = _modules_loaded_by("import sensord.testing.pytest_plugin")
    assert "sensord.testing.pytest_plugin" in loaded
    assert not loaded & {"gpiozero", "smbus2", "paho", "sensord.testing.i2c", "sensord.testing.pins",
                         "sensord.testing.clock", "sensord.testing.broker", "sensord.testing.mqtt_client"}


def test_the_kit_imports_without_gpiozero() -> None:
    loaded = _modules_loaded_by("from sensord.testing import FakeI2CBus, MockPins, fake_hardware")
    assert "sensord.testing.pins" in loaded
    assert not loaded & {"gpiozero", "smbus2"}


def test_fixtures_are_registered_by_the_entry_point(pytestconfig: pytest.Config) -> None:
    plugin: Any = pytestconfig.pluginmanager.get_plugin("sensord")
    assert plugin is not None
    assert plugin.__name__ == "sensord.testing.pytest_plugin"
