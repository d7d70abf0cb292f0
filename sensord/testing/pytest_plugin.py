"""sensord's pytest plugin, registered under the `pytest11` entry point.

Fixtures for driver and plugin tests: `fake_i2c_bus`, `mock_pin_factory`, `mock_pins`,
`fake_sysfs` (an empty `sensord.testing.FakeSysfs` tree under the test's `tmp_path`: add IIO and
hwmon devices, inject read errors), `fake_serial_ports` (a `sensord.testing.FakeSerialPorts` on
`fake_clock`: attach a `SerialDeviceModel` at a path, unplug it, inject bytes), `fake_hardware`
(a `Hardware` on the first two, `fake_sysfs` and `fake_serial_ports`), `fake_clock`, and `sensor_harness`
(`sensord.testing.run_sensor` on that `fake_hardware` and `fake_clock`: a sensor through
scheduler, filters and encoder on virtual time, without MQTT).

Fixtures for tests against a real broker (the `mosquitto` binary: `apt-get install -y mosquitto`):
`mqtt_broker`, a started `sensord.testing.Mosquitto` on a free loopback port, and
`mqtt_broker_factory`, which starts one per call with `Mosquitto`'s keyword arguments
(`mqtt_broker_factory(password=("node", "pw"), tls=True)`). Brokers are stopped after the test;
their work dirs (config, log) are kept under pytest's `tmp_path` for a post-mortem. Without
mosquitto a test using them fails with the install hint: it is never skipped, so a CI machine
without the broker cannot pass by running nothing.

For fast tests of MQTT logic without a broker: `fake_mqtt_broker`, a
`sensord.testing.fake_mqtt.FakeBroker`; pass `fake_mqtt_broker.connection` as `connection_factory=`
to `sensord.mqtt.MqttLink` or `Publisher`.

pytest imports this module at start-up in every project where sensord is installed, so sensord,
gpiozero and paho are imported only inside the fixtures that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from gpiozero.pins.mock import MockFactory

    from sensord.hardware import Hardware
    from sensord.sensor import Sensor, SensorConfig
    from sensord.testing import (
        FakeBroker,
        FakeClock,
        FakeI2CBus,
        FakeSerialPorts,
        FakeSysfs,
        HarnessResult,
        MockPins,
        Mosquitto,
    )


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
def fake_sysfs(tmp_path: Path) -> FakeSysfs:
    """An empty `FakeSysfs` in `tmp_path / "sys"`: `add_iio()`, `add_hwmon()`, `fail()`, `remove()`."""
    from sensord.testing.sysfs import FakeSysfs

    return FakeSysfs(tmp_path / "sys")


@pytest.fixture
def fake_serial_ports(fake_clock: FakeClock) -> FakeSerialPorts:
    """No serial ports yet, on `fake_clock`: `fake_serial_ports.attach("/dev/serial0", model)`
    gives a `FakeSerialPort` (`unplug()`, `pull()`, `inject(b"...")`); `deny(path)` makes
    opening it fail with EACCES."""
    from sensord.testing.serial import FakeSerialPorts

    return FakeSerialPorts(clock=fake_clock)


@pytest.fixture
def fake_hardware(fake_i2c_bus: FakeI2CBus, mock_pin_factory: MockFactory, fake_sysfs: FakeSysfs,
                  fake_serial_ports: FakeSerialPorts) -> Iterator[Hardware]:
    """A `Hardware` whose bus 1 is `fake_i2c_bus`, whose pin factory is `mock_pin_factory`,
    whose sysfs is `fake_sysfs` and whose serial ports are `fake_serial_ports`."""
    from sensord.testing.pins import fake_hardware as make_hardware

    hardware = make_hardware(fake_i2c_bus, pin_factory=mock_pin_factory, sysfs=fake_sysfs,
                             serial=fake_serial_ports)
    yield hardware
    hardware.close()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh `FakeClock`: virtual time that moves only when the test advances it."""
    from sensord.testing.clock import FakeClock

    return FakeClock()


class SensorHarness(Protocol):
    """The `sensor_harness` fixture: `sensord.testing.run_sensor` with `hardware=` and `clock=` bound."""

    def __call__(self, sensor: type[Sensor] | Sensor, options: Mapping[str, Any] | SensorConfig | None = None,
                 **kwargs: Any) -> HarnessResult:
        """Run `sensor` (a class built from `options`, or an instance) and return what came out;
        `kwargs` go to `run_sensor` (`reads=`, `duration_s=`, `interval_s=`, `filters=`, `at=`, ...)."""
        ...


@pytest.fixture
def sensor_harness(fake_hardware: Hardware, fake_clock: FakeClock) -> SensorHarness:
    """`run_sensor` on the test's `fake_hardware` (attach chip models to `fake_i2c_bus`) and
    `fake_clock` (give it to a chip model as `clock=fake_clock.monotonic` so it sees the
    driver's waits). Both can still be overridden per call."""
    from sensord.testing.harness import run_sensor

    def run(sensor: type[Sensor] | Sensor, options: Mapping[str, Any] | SensorConfig | None = None,
            **kwargs: Any) -> HarnessResult:
        kwargs.setdefault("hardware", fake_hardware)
        kwargs.setdefault("clock", fake_clock)
        return run_sensor(sensor, options, **kwargs)

    return run


class MqttBrokerFactory(Protocol):
    """The `mqtt_broker_factory` fixture: start a `Mosquitto` with these keyword arguments."""

    def __call__(self, **kwargs: Any) -> Mosquitto:
        """Start and return a broker; `kwargs` go to `Mosquitto` (`password=`, `tls=`, ...)."""
        ...


@pytest.fixture
def mqtt_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBrokerFactory]:
    """Start brokers with `mqtt_broker_factory(**Mosquitto_kwargs)`; all are stopped after the test.

    Each broker gets its own work dir under pytest's temporary directory unless `workdir=` is
    given. Fails the test (never skips) with the install hint if mosquitto is not installed.
    """
    from sensord.testing.broker import Mosquitto, MosquittoNotFoundError

    brokers: list[Mosquitto] = []

    def start(**kwargs: Any) -> Mosquitto:
        kwargs.setdefault("workdir", tmp_path_factory.mktemp("mosquitto"))
        try:
            broker = Mosquitto(**kwargs)
        except MosquittoNotFoundError as exc:
            pytest.fail(str(exc), pytrace=False)
        brokers.append(broker)  # before start(): a failed start still gets cleaned up
        broker.start()
        return broker

    yield start
    for broker in reversed(brokers):
        broker.close()


@pytest.fixture
def mqtt_broker(mqtt_broker_factory: MqttBrokerFactory) -> Mosquitto:
    """A started `Mosquitto` on a free `127.0.0.1` port, anonymous access, no TLS, no persistence;
    stopped after the test. Give each test its own topics (e.g. from `request.node.name`)."""
    return mqtt_broker_factory()


@pytest.fixture
def fake_mqtt_broker() -> FakeBroker:
    """An in-memory `FakeBroker`: no socket, faults injected (`unreachable()`, `refuse(code)`,
    `silent()`, `refuse_topic()`, `hold_pubacks()`, `drop()`...), everything published recorded."""
    from sensord.testing.fake_mqtt import FakeBroker

    return FakeBroker()
