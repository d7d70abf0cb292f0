"""The `motion` driver (PIR) on gpiozero's MockFactory."""

from __future__ import annotations

from typing import Any

import pytest
from driver_kit import example_config

import sensord_plugins.motion as module
from sensord import ConfigError, Reading
from sensord.config import parse_config
from sensord.testing import MockPins, fake_hardware
from sensord_plugins.motion import Motion, MotionConfig


def example() -> Any:
    return example_config(module, Motion)


def test_docstring_example_parses_with_pir_defaults() -> None:
    (spec,) = example().sensors
    assert spec.options == MotionConfig(pin=23)
    assert (spec.options.pull_up, spec.options.bounce_s, spec.options.quantity) == (False, 0.0, "motion")


def test_pin_range_is_checked() -> None:
    table = {"name": "m", "type": "motion", "interval_s": 60, "pin": 40}
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.pin: expected"):
        parse_config({"sensor": [table]}, "x.toml", {"motion": Motion})


def test_motion_is_read_and_pushed_when_it_starts_and_ends(mock_pins: MockPins) -> None:
    pins = mock_pins
    sensor = Motion(MotionConfig(pin=23), name="hall", hardware=fake_hardware(pin_factory=pins.factory))
    sensor.open()
    assert pins.pin(23).pull == "down"
    assert sensor.read() == [Reading("motion", False)]
    pushed: list[list[Reading]] = []
    sensor.watch(pushed.append)
    pins.set_input(23, high=True)
    assert sensor.read() == [Reading("motion", True)]
    pins.set_input(23, high=False)
    pins.set_input(23, high=True)  # no debounce by default: a PIR output does not bounce
    assert pushed == [[Reading("motion", True)], [Reading("motion", False)], [Reading("motion", True)]]
    assert sensor.describe() == 'sensor "hall" (motion on GPIO23)'
    sensor.close()
