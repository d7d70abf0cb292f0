"""The `distance` driver (HC-SR04 through gpiozero's DistanceSensor).

gpiozero's `MockTriggerPin` answers each ping by driving the echo pin high for `echo_time`
seconds from its own thread, with real sleeps; the end-to-end tests below therefore take a few
hundred milliseconds and check the distance with a margin for sleep overshoot (a sleep is never
shorter than asked, so the lower bound is firm).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from driver_kit import example_config
from gpiozero.pins.mock import MockFactory, MockPin, MockTriggerPin

import sensord_plugins.distance as module
from sensord import ConfigError, SensorError
from sensord.config import parse_config
from sensord.hardware import Hardware
from sensord_plugins.distance import Distance, DistanceConfig, distance_m

SPEED_OF_SOUND = 343.26  # m/s, gpiozero's value

pytestmark = [pytest.mark.filterwarnings("ignore::gpiozero.exc.PWMSoftwareFallback"),
              pytest.mark.filterwarnings("ignore::gpiozero.exc.DistanceSensorNoEcho")]


def make(factory: Any, *, sleep: Any = time.sleep, **options: Any) -> Distance:
    options = {"trigger": 4, "echo": 17, "max_distance_m": 2.0, **options}
    return Distance(DistanceConfig(**options), name="tank",
                    hardware=Hardware(pin_factory=factory, sleep=sleep))


def hc_sr04(factory: MockFactory, echo_time_s: float) -> MockFactory:
    """Make `factory`'s trigger pin (4) answer on the echo pin (17) after `echo_time_s`.

    Always on the `mock_pin_factory` fixture, which resets it after the test: gpiozero 1.6's
    MockFactory instances share their pins, so pins made here would outlive the test."""
    echo = factory.pin(17)
    factory.pin(4, pin_class=MockTriggerPin, echo_pin=echo, echo_time=echo_time_s)
    return factory


def test_docstring_example_parses() -> None:
    (spec,) = example_config(module, Distance).sensors
    assert spec.options == DistanceConfig(trigger=4, echo=17, max_distance_m=2.5, samples=5)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("echo", 4, "sensor[0].echo: expected a pin other than trigger, found both GPIO4"),
    ("trigger", 28, "sensor[0].trigger: expected"),
    ("max_distance_m", 0, "sensor[0].max_distance_m: expected"),
    ("samples", 0, "sensor[0].samples: expected"),
])
def test_config_errors(key: str, value: Any, message: str) -> None:
    table = {"name": "t", "type": "distance", "interval_s": 60, "trigger": 4, "echo": 17, key: value}
    with pytest.raises(ConfigError) as info:
        parse_config({"sensor": [table]}, "x.toml", {"distance": Distance})
    assert message in str(info.value)


def test_distance_from_gpiozero_fraction() -> None:
    assert distance_m(0.25, 2.0) == 0.5
    assert distance_m(0.123456, 1.0) == 0.123
    with pytest.raises(ValueError, match="no measurement yet"):
        distance_m(0.0, 2.0)
    with pytest.raises(ValueError, match="nothing within max_distance_m = 2 m"):
        distance_m(1.0, 2.0)


def test_measures_the_echo_time(mock_pin_factory: MockFactory) -> None:
    echo_time = 0.005  # 0.858 m at gpiozero's speed of sound
    sensor = make(hc_sr04(mock_pin_factory, echo_time), max_distance_m=4.0, samples=5)
    sensor.open()
    try:
        deadline = time.monotonic() + 5
        while sensor._device.echoes < 5 and time.monotonic() < deadline:  # a full median window
            time.sleep(0.01)
        (reading,) = sensor.read()
    finally:
        sensor.close()
    assert reading.quantity == "distance" and reading.unit == "m"
    expected = echo_time * SPEED_OF_SOUND / 2
    # The mock's sleeps only overshoot: 0.5 m is 2.9 ms late, for a loaded test machine.
    assert expected - 0.005 <= reading.value < expected + 0.5


def test_nothing_in_range_is_an_error(mock_pin_factory: MockFactory) -> None:
    sensor = make(hc_sr04(mock_pin_factory, 0.02), max_distance_m=1.0)  # 3.4 m away
    sensor.open()
    try:
        with pytest.raises(SensorError, match=r"\(distance, trigger GPIO4, echo GPIO17\): nothing within "
                                              r"max_distance_m = 1 m"):
            sensor.read()
    finally:
        sensor.close()


def test_no_echo_fails_open_without_waiting_for_real(mock_pin_factory: MockFactory) -> None:
    sleeps: list[float] = []
    sensor = make(mock_pin_factory, sleep=sleeps.append)  # nothing answers on the echo pin
    with pytest.raises(SensorError, match="no echo within 1 s .* check the wiring"):
        sensor.open()
    assert sum(sleeps) == pytest.approx(1.0)
    with pytest.raises(SensorError, match="not open"):
        sensor.read()


def test_a_module_that_stops_answering_is_not_reported_with_its_last_distance(
        mock_pin_factory: MockFactory) -> None:
    factory = hc_sr04(mock_pin_factory, 0.002)
    sensor = make(factory)
    sensor.open()
    try:
        sensor.read()
        factory.pin(4).echo_pin = factory.pin(22, pin_class=MockPin)  # the echo wire comes loose
        time.sleep(0.05)  # a ping already answered completes
        with contextlib.suppress(SensorError):
            sensor.read()  # counted from here on
        time.sleep(0.3)  # a few pings go unanswered
        with pytest.raises(SensorError, match="no echo to the last [0-9]+ pings"):
            sensor.read()
    finally:
        sensor.close()


def test_pins_gpiozero_refuses_are_a_sensor_error(mock_pin_factory: MockFactory) -> None:
    sensor = make(mock_pin_factory, echo=2)  # GPIO2 has a fixed pull-up; echo needs a pull-down
    with pytest.raises(SensorError, match=r"\(distance, trigger GPIO4, echo GPIO2\): cannot use the pins: "):
        sensor.open()
