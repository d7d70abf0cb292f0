"""The `digital_input` driver on gpiozero's MockFactory: state, push on change, debounce."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest
from driver_kit import Ticks, example_config
from gpiozero import DigitalInputDevice

import sensord_plugins.digital_input as module
from sensord import ConfigError, Reading, SensorError
from sensord.config import parse_config
from sensord.scheduler import Scheduler
from sensord.sensor import Sample
from sensord.testing import FakeClock, MockPins, fake_hardware
from sensord_plugins.digital_input import DigitalInput, DigitalInputConfig, EdgeFilter, edge_ticks


def make(pins: MockPins, **options: Any) -> DigitalInput:
    options.setdefault("pin", 17)
    return DigitalInput(DigitalInputConfig(**options), name="door",
                        hardware=fake_hardware(pin_factory=pins.factory))


def values(readings: list[Reading]) -> list[bool | int | float]:
    return [r.value for r in readings]


def test_docstring_example_parses() -> None:
    config = example_config(module, DigitalInput)
    (spec,) = config.sensors
    assert spec.options == DigitalInputConfig(pin=17, quantity="door_open", invert=True)
    assert spec.options.pull_up is True and spec.options.bounce_s == 0.05


@pytest.mark.parametrize(("key", "value", "message"), [
    ("pin", 28, "sensor[0].pin: expected"),
    ("pin", -1, "sensor[0].pin: expected"),
    ("bounce_s", 0.5, "sensor[0].bounce_s: expected"),
    ("quantity", "door open", "sensor[0].quantity: expected a name"),
    ("pull_up", "yes", "sensor[0].pull_up: expected"),
])
def test_config_errors_name_the_key(key: str, value: Any, message: str) -> None:
    table = {"name": "d", "type": "digital_input", "interval_s": 60, "pin": 17, key: value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"sensor": [table]}, "x.toml", {"digital_input": DigitalInput})


def test_pin_is_required() -> None:
    table = {"name": "d", "type": "digital_input", "interval_s": 60}
    with pytest.raises(ConfigError, match=r"sensor\[0\].pin: required key missing"):
        parse_config({"sensor": [table]}, "x.toml", {"digital_input": DigitalInput})


def test_pull_up_contact_reads_closed_when_pulled_low(pins: MockPins) -> None:
    sensor = make(pins)
    sensor.open()
    assert sensor.read() == [Reading("contact", False)]  # the pull-up holds the pin high
    pins.set_input(17, high=False)
    assert sensor.read() == [Reading("contact", True)]
    assert sensor.channels()[0].quantity == "contact"
    sensor.close()


def test_pull_down_and_invert(pins: MockPins) -> None:
    sensor = make(pins, pull_up=False, invert=True, quantity="dry")
    sensor.open()
    assert pins.pin(17).pull == "down"
    assert values(sensor.read()) == [True]
    pins.set_input(17, high=True)
    assert sensor.read() == [Reading("dry", False)]
    sensor.close()


def test_bounce_time_goes_to_the_pin_library(pins: MockPins) -> None:
    sensor = make(pins, bounce_s=0.02)
    sensor.open()
    assert pins.pin(17).bounce == pytest.approx(0.02)
    sensor.close()
    sensor = make(pins, bounce_s=0.0)
    sensor.open()
    assert pins.pin(17).bounce is None
    sensor.close()


def test_watch_pushes_every_change(pins: MockPins) -> None:
    sensor = make(pins, bounce_s=0.0)
    sensor.open()
    pushed: list[list[Reading]] = []
    sensor.watch(pushed.append)
    pins.set_input(17, high=False)
    pins.set_input(17, high=True)
    pins.set_input(17, high=False)
    assert [values(p) for p in pushed] == [[True], [False], [True]]
    sensor.close()


def test_bounces_within_bounce_s_are_ignored(pins: MockPins, ticks: Ticks) -> None:
    sensor = make(pins, bounce_s=0.05)
    sensor.open()
    pushed: list[list[Reading]] = []
    sensor.watch(pushed.append)
    for level in (False, True, False, True, False):  # the contact closes, bouncing for 4 ms
        pins.set_input(17, high=level)
        ticks.now += 0.001
    assert [values(p) for p in pushed] == [[True]]
    ticks.now += 0.049  # 50 ms after the accepted edge: a real change again
    pins.set_input(17, high=True)
    assert [values(p) for p in pushed] == [[True], [False]]
    assert sensor.read() == [Reading("contact", False)]
    sensor.close()


def test_a_change_lost_to_the_debounce_is_corrected_by_the_next_poll(pins: MockPins, ticks: Ticks) -> None:
    sensor = make(pins)
    sensor.open()
    pushed: list[list[Reading]] = []
    sensor.watch(pushed.append)
    pins.set_input(17, high=False)
    pins.set_input(17, high=True)  # a real, too short release: reported as bounce
    assert [values(p) for p in pushed] == [[True]]
    assert values(sensor.read()) == [False]
    sensor.close()


def test_edges_are_pushed_from_the_thread_that_saw_them(pins: MockPins) -> None:
    sensor = make(pins)
    sensor.open()
    threads: list[str] = []
    sensor.watch(lambda readings: threads.append(threading.current_thread().name))
    driver = threading.Thread(target=pins.set_input, args=(17, False), name="gpio-callbacks")
    driver.start()
    driver.join()
    assert threads == ["gpio-callbacks"]
    sensor.close()


def test_close_releases_the_pin_and_stops_pushing(pins: MockPins) -> None:
    sensor = make(pins)
    sensor.open()
    pushed: list[list[Reading]] = []
    sensor.watch(pushed.append)
    sensor.close()
    sensor.close()  # twice is fine
    with DigitalInputDevice(17, pull_up=True, pin_factory=pins.factory):
        pins.set_input(17, high=False)
    assert pushed == []
    with pytest.raises(SensorError, match='sensor "door" .digital_input on GPIO17.: not open'):
        sensor.read()


def test_pin_in_use_is_a_sensor_error(pins: MockPins) -> None:
    first = make(pins)
    first.open()
    with pytest.raises(SensorError, match=r'sensor "door" \(digital_input on GPIO17\): cannot use GPIO17: '):
        make(pins).open()
    first.close()


def test_fixed_pull_up_pin_cannot_pull_down(pins: MockPins) -> None:
    with pytest.raises(SensorError, match="cannot use GPIO2"):
        make(pins, pin=2, pull_up=False).open()


def test_edge_filter_compares_edge_times_with_the_factory() -> None:
    class Factory:
        @staticmethod
        def ticks_diff(later: float, earlier: float) -> float:
            return later - earlier

    edges = EdgeFilter(0.01, Factory())
    assert edges.accept(1.0)
    assert not edges.accept(1.009)
    assert edges.accept(1.011)  # 11 ms after the accepted edge, 2 ms after the rejected one
    assert EdgeFilter(0.0, Factory()).accept(1.0) and EdgeFilter(0.0, Factory()).accept(1.0)


def test_debounce_uses_the_edge_time_not_the_callback_time(pins: MockPins, ticks: Ticks) -> None:
    sensor = make(pins, bounce_s=0.05)
    sensor.open()
    pushed: list[list[Reading]] = []
    sensor.watch(pushed.append)
    device = sensor._device
    assert edge_ticks(device) == device._last_changed
    pins.set_input(17, high=False)
    ticks.now += 0.2
    pins.set_input(17, high=True)
    assert edge_ticks(device) == ticks.now  # the pin's stamp of the edge just handled
    assert [values(p) for p in pushed] == [[True], [False]]
    sensor.close()


def test_pushed_changes_reach_the_scheduler_sink(pins: MockPins) -> None:
    config = example_config(module, DigitalInput)
    (spec,) = config.sensors
    sensor = DigitalInput(spec.options, name=spec.name, hardware=fake_hardware(pin_factory=pins.factory))
    clock = FakeClock()
    samples: list[Sample] = []
    sched = Scheduler([(spec, sensor)], sink=samples.extend, clock=clock)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        while sched.stats[spec.name].reads < 1:
            await asyncio.sleep(0.001)
        clock.advance(12.5)
        pins.set_input(17, high=False)  # the door shuts: the reed switch closes
        while len(samples) < 2:
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert [(s.quantity, s.value) for s in samples] == [("door_open", True), ("door_open", False)]
    assert samples[1].ts - samples[0].ts == pytest.approx(12.5)
    assert sched.stats[spec.name].pushes == 1
