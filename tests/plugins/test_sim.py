"""The `sim` sensor: deterministic, countable, plausible."""

from __future__ import annotations

import pytest

from sensord.hardware import Hardware
from sensord_plugins.sim import SimConfig, SimSensor, sine_value


def make(**options: object) -> SimSensor:
    return SimSensor(SimConfig(**options), name="s", hardware=Hardware())  # type: ignore[arg-type]


def values(sensor: SimSensor, n: int) -> list[list[float]]:
    return [[r.value for r in sensor.read()] for _ in range(n)]


@pytest.mark.parametrize("signal", ["counter", "sine", "random_walk"])
def test_same_seed_same_sequence(signal: str) -> None:
    a = make(signal=signal, seed=3, channels=["t", "h"])
    b = make(signal=signal, seed=3, channels=["t", "h"])
    assert values(a, 200) == values(b, 200)


@pytest.mark.parametrize("signal", ["sine", "random_walk"])
def test_other_seed_other_sequence(signal: str) -> None:
    assert values(make(signal=signal, seed=1), 50) != values(make(signal=signal, seed=2), 50)


def test_adding_a_channel_keeps_the_others() -> None:
    one = [v[0] for v in values(make(signal="random_walk", channels=["t"]), 50)]
    two = [v[0] for v in values(make(signal="random_walk", channels=["t", "h"]), 50)]
    assert one == two


def test_counter_counts_on_every_channel() -> None:
    sensor = make(signal="counter", channels=["a", "b", "c"])
    assert values(sensor, 4) == [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]
    assert [c.unit for c in sensor.channels()] == ["", "", ""]
    assert sensor.channels()[0].resolution == 1.0
    assert all(isinstance(r.value, int) for r in sensor.read())


def test_sine_looks_like_a_temperature() -> None:
    sensor = make(signal="sine", mean=20.0, amplitude=5.0, period_reads=100)
    series = [v[0] for v in values(sensor, 300)]
    assert min(series) == pytest.approx(15.0, abs=0.3)
    assert max(series) == pytest.approx(25.0, abs=0.3)
    assert all(round(v, 2) == v for v in series)  # declared resolution 0.01
    assert max(abs(b - a) for a, b in zip(series, series[1:], strict=False)) < 0.6  # smooth
    assert sensor.read()[0].unit == "°C"
    assert sine_value(25, mean=20, amplitude=5, period_reads=100, phase=0, noise=0) == 25.0


def test_random_walk_stays_plausible() -> None:
    series = [v[0] for v in values(make(signal="random_walk", mean=10.0), 5000)]
    assert min(series) > 5.0 and max(series) < 15.0
    assert len(set(series)) > 100


def test_unit_override() -> None:
    sensor = make(signal="sine", unit="%", channels=["humidity"])
    assert sensor.read()[0].unit == "%"
    assert sensor.channels()[0].unit == "%"
