"""The `pulse_counter` driver on gpiozero's MockFactory: counting, debounce, the saved total."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from driver_kit import Ticks, example_config

import sensord_plugins.pulse_counter as module
from sensord import ConfigError, Reading, SensorError
from sensord.config import parse_config
from sensord.testing import MockPins, fake_hardware
from sensord_plugins.pulse_counter import (
    PulseCounter,
    PulseCounterConfig,
    load_count,
    save_count,
    scaled_total,
)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "pulse-rain.count"


def make(pins: MockPins, state: Path, **options: Any) -> PulseCounter:
    options = {"pin": 6, "per_pulse": 0.2794, "unit": "mm", "quantity": "rain", "bounce_s": 0.0,
               "state_file": str(state), **options}
    return PulseCounter(PulseCounterConfig(**options), name="rain", hardware=fake_hardware(pin_factory=pins.factory))


def by_quantity(readings: list[Reading]) -> dict[str, Any]:
    return {r.quantity: r.value for r in readings}


def test_docstring_example_parses() -> None:
    (spec,) = example_config(module, PulseCounter).sensors
    assert spec.options == PulseCounterConfig(pin=6, per_pulse=0.2794, unit="mm", quantity="rain")
    assert spec.options.bounce_s == 0.005 and spec.options.save_every_reads == 1


@pytest.mark.parametrize(("key", "value"), [("quantity", "count"), ("quantity", "pulses"),
                                            ("per_pulse", 0), ("save_every_reads", 0), ("pin", 30)])
def test_config_errors(key: str, value: Any) -> None:
    table = {"name": "p", "type": "pulse_counter", "interval_s": 60, "pin": 6, key: value}
    with pytest.raises(ConfigError, match=rf"sensor\[0\]\.{key}"):
        parse_config({"sensor": [table]}, "x.toml", {"pulse_counter": PulseCounter})


def test_default_state_file_is_named_after_the_sensor() -> None:
    sensor = PulseCounter(PulseCounterConfig(pin=6), name="energy", hardware=fake_hardware())
    assert sensor.state_file == "/var/lib/sensord/pulse-energy.count"


@pytest.mark.parametrize(("count", "per_pulse", "total"), [
    (3, 0.2794, 0.8382), (7, 1.0, 7.0), (3, 0.1, 0.3), (10, 1e-05, 0.0001), (123456, 2.5, 308640.0),
    (3, 1.5e-07, 4.5e-07), (2, 1e16, 2e16), (10**9, 0.001, 1000000.0)])
def test_scaled_total_is_rounded_to_the_decimals_of_per_pulse(count: int, per_pulse: float,
                                                               total: float) -> None:
    assert scaled_total(count, per_pulse) == total


def test_counts_pulses_and_reports_total_and_delta(pins: MockPins, state: Path) -> None:
    sensor = make(pins, state)
    sensor.open()
    assert by_quantity(sensor.read()) == {"count": 0, "rain": 0.0, "pulses": 0}
    pins.pulse(6, count=3, high=False)  # pull-up: a tip closes the reed switch to GND
    readings = sensor.read()
    assert readings == [Reading("count", 3), Reading("rain", 0.8382, "mm"), Reading("pulses", 3)]
    pins.pulse(6, count=2, high=False)
    assert by_quantity(sensor.read()) == {"count": 5, "rain": 1.397, "pulses": 2}
    assert by_quantity(sensor.read())["pulses"] == 0
    assert [(c.quantity, c.unit, c.resolution) for c in sensor.channels()] == [
        ("count", "", 1.0), ("rain", "mm", 0.2794), ("pulses", "", 1.0)]
    sensor.close()


def test_the_count_survives_a_restart(pins: MockPins, state: Path) -> None:
    sensor = make(pins, state)
    sensor.open()
    pins.pulse(6, count=4, high=False)
    sensor.read()
    assert state.read_text() == "4\n"
    pins.pulse(6, count=1, high=False)
    sensor.close()  # a clean stop saves what the last read did not
    assert state.read_text() == "5\n"
    assert not list(state.parent.glob("*.tmp"))

    again = make(pins, state)
    again.open()
    pins.pulse(6, count=2, high=False)
    assert by_quantity(again.read()) == {"count": 7, "rain": 1.9558, "pulses": 2}
    again.close()


def test_state_file_is_written_only_when_the_count_changed(pins: MockPins, state: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    monkeypatch.setattr(module, "save_count", lambda path, count: writes.append(count))
    sensor = make(pins, state)
    sensor.open()
    sensor.read()
    sensor.read()
    pins.pulse(6, high=False)
    sensor.read()
    sensor.read()
    sensor.close()
    assert writes == [1]


def test_save_every_reads_spares_the_sd_card(pins: MockPins, state: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    monkeypatch.setattr(module, "save_count", lambda path, count: writes.append(count))
    sensor = make(pins, state, save_every_reads=3)
    sensor.open()
    for _ in range(7):
        pins.pulse(6, high=False)
        sensor.read()
    assert writes == [3, 6]
    sensor.close()
    assert writes == [3, 6, 7]


def test_press_and_release_bounce_count_once(pins: MockPins, state: Path, ticks: Ticks) -> None:
    sensor = make(pins, state, bounce_s=0.005)
    sensor.open()
    assert pins.pin(6).bounce == pytest.approx(0.005)
    for _ in range(3):
        for level in (False, True, False, True, False):  # the reed switch closes, bouncing
            pins.set_input(6, high=level)
            ticks.now += 0.0005
        ticks.now += 0.05
        for level in (True, False, True):  # and opens again, bouncing
            pins.set_input(6, high=level)
            ticks.now += 0.0005
        ticks.now += 0.5
    assert by_quantity(sensor.read())["count"] == 3
    sensor.close()


def test_pulses_counted_while_reading_are_not_lost(pins: MockPins, state: Path) -> None:
    sensor = make(pins, state)
    sensor.open()
    tips = threading.Thread(target=pins.pulse, args=(6,), kwargs={"count": 2000, "high": False})
    tips.start()
    seen = 0
    while tips.is_alive():
        seen += by_quantity(sensor.read())["pulses"]
    tips.join()
    seen += by_quantity(sensor.read())["pulses"]
    assert seen == sensor.count == 2000
    sensor.close()


def test_a_failed_save_fails_the_read_but_keeps_the_pulses(pins: MockPins, state: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = make(pins, state)
    sensor.open()
    pins.pulse(6, count=2, high=False)

    def full(path: str, count: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "save_count", full)
    with pytest.raises(SensorError, match=r"cannot write state file .*pulse-rain.count: No space left on device"):
        sensor.read()
    monkeypatch.setattr(module, "save_count", save_count)
    assert by_quantity(sensor.read()) == {"count": 2, "rain": 0.5588, "pulses": 2}
    sensor.close()


def test_a_corrupt_state_file_stops_the_sensor_rather_than_reset_the_total(pins: MockPins, state: Path) -> None:
    state.parent.mkdir()
    state.write_text("12a\n")
    with pytest.raises(SensorError, match=r'state file .*pulse-rain.count holds "12a", expected a pulse count'
                                          r".*fix or delete it"):
        make(pins, state).open()


def test_a_state_directory_that_cannot_be_made_fails_open(pins: MockPins, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SensorError, match="cannot create .*file for the state file"):
        make(pins, tmp_path / "file" / "x.count").open()


def test_load_and_save_count(tmp_path: Path) -> None:
    path = str(tmp_path / "a" / "b.count")
    assert load_count(path) is None
    save_count(path, 42)
    assert load_count(path) == 42
    save_count(path, 43)
    assert load_count(path) == 43
    assert sorted(os.listdir(tmp_path / "a")) == ["b.count"]
    Path(path).write_text("-1\n")
    with pytest.raises(ValueError, match="expected a pulse count"):
        load_count(path)
