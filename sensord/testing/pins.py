"""Mock GPIO pins on gpiozero's `MockFactory`, and `fake_hardware()` for whole-driver tests.

gpiozero devices take `pin_factory=`, so a test hands them a fresh `MockFactory` instead of
setting the global `Device.pin_factory`, and drives input pins from outside:

    factory = mock_pin_factory()
    pins = MockPins(factory)
    with DigitalInputDevice(17, pin_factory=factory) as rain:
        pins.pulse(17, count=3)             # three bucket tips
        pins.set_input(17, high=True)
        assert rain.is_active

gpiozero is imported inside the functions, so `import sensord.testing` works without it.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sensord.hardware import Hardware, Sysfs

from .i2c import FakeI2CBus

if TYPE_CHECKING:
    from gpiozero.pins.mock import MockFactory, MockPin

    from .serial import FakeSerialPorts

#: A gpiozero pin name: a BCM number (17) or a name ("GPIO17", "BOARD11").
PinName = int | str


def mock_pin_factory(*, pwm: bool = False, revision: str | None = None) -> MockFactory:
    """A fresh `gpiozero.pins.mock.MockFactory`; with `pwm=True` its pins support PWM.

    `revision` is the Pi revision code it pretends to be (gpiozero's default, a Pi 3B, if None).
    """
    from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

    # The pin class is passed explicitly so GPIOZERO_MOCK_PIN_CLASS in the environment cannot
    # change what a test gets.
    return MockFactory(revision=revision, pin_class=MockPWMPin if pwm else MockPin)


class MockPins:
    """Drives and inspects the pins of a `MockFactory` from a test.

    Drive an input after the device using it is created: a device with a pull-up or pull-down
    sets the pin to its idle level when it claims it, as the resistor would.
    """

    def __init__(self, factory: MockFactory | None = None) -> None:
        #: The gpiozero MockFactory whose pins this drives; pass it as `pin_factory=`.
        self.factory = mock_pin_factory() if factory is None else factory

    def pin(self, pin: PinName) -> MockPin:
        """The `MockPin` for `pin` (created on first use, shared with the devices using it)."""
        return self.factory.pin(pin)

    def set_input(self, pin: PinName, high: bool) -> None:
        """Drive input `pin` high or low, firing edge callbacks (`when_pressed`) as a real edge
        would."""
        mock = self.pin(pin)
        if mock.function != "input":
            raise ValueError(f"pin {pin} is an output; only an input can be driven from outside")
        if high:
            mock.drive_high()
        else:
            mock.drive_low()

    def pulse(self, pin: PinName, *, count: int = 1, high: bool = True, width_s: float = 0.0,
              gap_s: float = 0.0) -> None:
        """Drive `count` pulses on input `pin`: to `high` and back, starting from the idle level.

        Each pulse gives one active edge (rising if `high`), e.g. a rain-gauge tip or an
        anemometer turn. `width_s` and `gap_s` are real sleeps for code that times pulses; keep
        them tiny in tests.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.set_input(pin, not high)
        for n in range(count):
            if n and gap_s:
                time.sleep(gap_s)
            self.set_input(pin, high)
            if width_s:
                time.sleep(width_s)
            self.set_input(pin, not high)

    def is_high(self, pin: PinName) -> bool:
        """The current level of `pin`, e.g. an output a driver set (a sensor's power switch)."""
        return bool(self.pin(pin).state)

    def history(self, pin: PinName) -> list[bool]:
        """The levels `pin` went through, oldest first, starting with its level when created or
        last cleared."""
        return [bool(change.state) for change in self.pin(pin).states]

    def close(self) -> None:
        """Close every pin and forget all reservations, so the factory is fresh again."""
        self.factory.close()
        self.factory.reset()


def fake_hardware(i2c_buses: Mapping[int, FakeI2CBus] | FakeI2CBus | None = None,
                  pin_factory: Any = None, sleep: Callable[[float], None] | None = None,
                  w1_root: str | None = None, sysfs: Sysfs | None = None,
                  serial: FakeSerialPorts | None = None) -> Hardware:
    """A `Hardware` on fake I2C buses and a `MockFactory`, to hand to a `Sensor`; its sysfs is
    `sysfs` (a `sensord.testing.FakeSysfs`), or one in a fresh empty directory, never the host's.

    `i2c_buses` maps bus numbers to buses; a single `FakeI2CBus` is bus 1, None gives an empty
    bus 1. Opening another bus number fails like `SMBus(n)` does when /dev/i2c-n is missing.
    `pin_factory` defaults to a fresh `mock_pin_factory()`. Serial ports are `serial`'s
    (a `sensord.testing.FakeSerialPorts`), or none: opening one then fails with ENOENT.
    """
    if i2c_buses is None:
        buses: dict[int, FakeI2CBus] = {1: FakeI2CBus()}
    elif isinstance(i2c_buses, FakeI2CBus):
        buses = {1: i2c_buses}
    else:
        buses = dict(i2c_buses)

    def open_bus(number: int) -> FakeI2CBus:
        if number not in buses:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"/dev/i2c-{number}")
        return buses[number]

    if pin_factory is None:
        pin_factory = mock_pin_factory()
    # Tests never really sleep: pass a model's `advance` (or a recorder) to see the waits.
    if sysfs is None:
        from .sysfs import FakeSysfs

        sysfs = FakeSysfs()
    if serial is None:
        from .serial import FakeSerialPorts

        serial = FakeSerialPorts()
    hardware = Hardware(i2c_factory=open_bus, pin_factory=pin_factory,
                        sleep=sleep if sleep is not None else (lambda _s: None), sysfs=sysfs,
                        serial_factory=serial.open)
    if w1_root is not None:
        hardware.w1_root = w1_root
    return hardware
