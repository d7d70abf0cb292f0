"""Scheduler: cadence on a fake clock, failures isolated and backed off, hung reads timed out."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from sensord import Reading, Sensor, SensorConfig, SensorError
from sensord.config import SensorSpec
from sensord.hardware import Hardware
from sensord.scheduler import NextRead, Scheduler
from sensord.sensor import Sample
from sensord.testing.clock import FakeClock


@dataclass(frozen=True)
class NoOptions(SensorConfig):
    pass


class Scripted(Sensor):
    """A sensor whose read() runs a test-supplied function."""

    type_name = "scripted"
    Config = NoOptions

    def __init__(self, name: str, behaviour: Callable[[int], Any]) -> None:
        super().__init__(NoOptions(), name=name, hardware=Hardware())
        self.behaviour = behaviour
        self.calls = 0

    def read(self) -> list[Reading]:
        n = self.calls
        self.calls += 1
        return [Reading("value", self.behaviour(n), "")]


def spec(name: str, interval_s: float, timeout_s: float = 5.0) -> SensorSpec:
    return SensorSpec(index=0, name=name, type="scripted", interval_s=interval_s, options=NoOptions(),
                      timeout_s=timeout_s)


def run_virtual(sensors: list[tuple[SensorSpec, Sensor]], clock: FakeClock, seconds: float,
                samples: list[Sample], **kwargs: Any) -> Scheduler:
    sched = Scheduler(sensors, sink=samples.extend, clock=clock, **kwargs)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await clock.run_until(clock.now + seconds, sleepers=len(sensors))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return sched


def stamps(samples: list[Sample], sensor: str, clock0: float) -> list[float]:
    return [round(s.ts - clock0, 6) for s in samples if s.sensor == sensor]


def test_cadence_does_not_drift_with_slow_reads() -> None:
    clock = FakeClock()
    epoch0 = clock.time()

    def slow(n: int) -> float:
        clock.advance(0.3)  # each read takes 0.3 s; sleep(interval) after reads would drift
        return n

    samples: list[Sample] = []
    run_virtual([(spec("a", 1.0), Scripted("a", slow)), (spec("b", 2.5), Scripted("b", float))],
                clock, 10.0, samples)
    assert stamps(samples, "a", epoch0) == [float(k) for k in range(11)]
    assert stamps(samples, "b", epoch0) == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert [s.value for s in samples if s.sensor == "a"] == list(range(11))
    assert all(isinstance(s, Sample) and s.quantity == "value" for s in samples)


def test_overrunning_read_skips_ticks_and_stays_on_grid() -> None:
    clock = FakeClock()
    epoch0 = clock.time()

    def very_slow(n: int) -> float:
        clock.advance(2.5)
        return n

    samples: list[Sample] = []
    sched = run_virtual([(spec("a", 1.0), Scripted("a", very_slow))], clock, 9.0, samples)
    assert stamps(samples, "a", epoch0) == [0.0, 3.0, 6.0, 9.0]
    # Skipped: 1, 2, 4, 5, 7, 8, and 10, 11 (the read at 9 s ends at 11.5 s).
    assert sched.stats["a"].skipped_ticks == 8


def test_raising_sensor_backs_off_and_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    epoch0 = clock.time()
    attempts: list[float] = []

    def flaky(n: int) -> float:
        attempts.append(round(clock.time() - epoch0, 6))
        if n < 5:
            raise SensorError("i2c bus 1 @ 0x76: NACK")
        return n

    samples: list[Sample] = []
    caplog.set_level(logging.INFO)
    sched = run_virtual([(spec("bad", 1.0), Scripted("bad", flaky)), (spec("ok", 1.0), Scripted("ok", float))],
                        clock, 40.0, samples)
    # Failures at 0, then retries after 1, 2, 4, 8, 16 s; success returns to the 1 s grid.
    assert attempts[:7] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 32.0]
    assert stamps(samples, "ok", epoch0) == [float(k) for k in range(41)]
    assert stamps(samples, "bad", epoch0)[:2] == [31.0, 32.0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        'sensor "bad" (scripted): i2c bus 1 @ 0x76: NACK; retrying with backoff']
    assert 'sensor "bad" (scripted): reading again after 5 failed reads' in caplog.text
    assert sched.stats["bad"].failed_total == 5 and sched.stats["bad"].failures == 0


def test_backoff_is_capped() -> None:
    clock = FakeClock()
    epoch0 = clock.time()
    attempts: list[float] = []

    def broken(n: int) -> float:
        attempts.append(round(clock.time() - epoch0, 6))
        raise ValueError("driver bug")

    sched = Scheduler([(spec("bad", 10.0), Scripted("bad", broken))], sink=lambda s: None, clock=clock,
                      backoff_max_s=60.0)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await clock.run_until(clock.now + 400, sleepers=1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[:3] == [10.0, 20.0, 40.0]
    assert set(gaps[3:]) == {60.0}
    assert sched.stats["bad"].last_error == "driver bug"


def test_hanging_sensor_times_out_while_others_keep_cadence(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def hang(n: int) -> float:
        release.wait(5)
        return n

    samples: list[Sample] = []
    hung = Scripted("hung", hang)
    sched = Scheduler([(spec("hung", 0.02, timeout_s=0.05), hung), (spec("ok", 0.02), Scripted("ok", float))],
                      sink=samples.extend)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        release.set()
    ok = [s.ts for s in samples if s.sensor == "ok"]
    assert len(ok) >= 15  # 25 ticks in 0.5 s, allowing for a busy machine
    assert max(b - a for a, b in zip(ok, ok[1:], strict=False)) < 0.15
    assert not [s for s in samples if s.sensor == "hung"]
    assert hung.calls == 1  # never a second read while the first is stuck
    assert sched.stats["hung"].failed_total >= 2
    timeouts = [r for r in caplog.records if "did not return within 0.05 s" in r.getMessage()]
    assert len(timeouts) == 1


def test_items_that_are_not_readings_are_dropped_and_the_rest_delivered(caplog: pytest.LogCaptureFixture) -> None:
    class Bad(Scripted):
        def read(self) -> list[Reading]:
            n = self.calls
            self.calls += 1
            return [("value", 1), Reading("good", n)]  # type: ignore[list-item]

    clock = FakeClock()
    samples: list[Sample] = []
    sched = run_virtual([(spec("bad", 1.0), Bad("bad", float))], clock, 2.5, samples)
    assert [(s.quantity, s.value) for s in samples] == [("good", 0), ("good", 1), ("good", 2)]
    stats = sched.stats["bad"]
    assert (stats.reads, stats.failed_total, stats.bad_values) == (3, 0, 3)  # no backoff: not a failure
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "sensor \"bad\" (scripted): read() returned ('value', 1) (tuple) in its list, expected a Reading: "
        "dropped (logged once per kind of bad value for this sensor)"]


class Opaque:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


BAD_VALUES = {
    "str": ("21.5", "value '21.5' is str, expected a number (int, float) or a bool"),
    "bytes": (b"21", "value b'21' is bytes, expected a number"),
    "decimal_snan": (Decimal("sNaN"), "value Decimal('sNaN') (decimal.Decimal) cannot be converted to a number: "
                                      "ValueError: cannot convert signaling NaN to float"),
    "decimal_huge": (Decimal("1e999"), "value Decimal('1E+999') is beyond a float's range"),
    "fraction_huge": (Fraction(10**400), "(fractions.Fraction) cannot be converted to a number: OverflowError"),
    "complex": (1j, "value 1j is complex, expected a number"),
    "list": ([1.0], "value [1.0] is list, expected a number"),
    "dict": ({"v": 1}, "value {'v': 1} is dict, expected a number"),
    "object": (Opaque(), f"value <Opaque> is {__name__}.Opaque, expected a number"),
    "int_too_big": (2**63, "value 9223372036854775808 is outside the signed 64-bit integer range"),
    "int_too_small": (-(2**63) - 1, "is outside the signed 64-bit integer range"),
}


@pytest.mark.parametrize("kind", BAD_VALUES)
def test_a_bad_value_is_dropped_and_named_once(caplog: pytest.LogCaptureFixture, kind: str) -> None:
    bad, expected = BAD_VALUES[kind]

    class Mixed(Scripted):
        def read(self) -> list[Reading]:
            n = self.calls
            self.calls += 1
            return [Reading("good", n), Reading("bad", bad), Reading("also_good", n * 0.5, "V")]  # type: ignore[arg-type]

    clock = FakeClock()
    epoch0 = clock.time()
    samples: list[Sample] = []
    caplog.set_level(logging.DEBUG)
    sched = run_virtual([(spec("m", 1.0), Mixed("m", float))], clock, 5.0, samples,
                        plugins={"scripted": "acme"})
    assert [s.value for s in samples if s.quantity == "good"] == [0, 1, 2, 3, 4, 5]
    assert [s.value for s in samples if s.quantity == "also_good"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert not [s for s in samples if s.quantity == "bad"]
    assert stamps([s for s in samples if s.quantity == "good"], "m", epoch0) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert (sched.stats["m"].bad_values, sched.stats["m"].failed_total) == (6, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith('sensor "m" (scripted) of plugin "acme": "bad": '), warnings
    assert expected in warnings[0]
    assert warnings[0].endswith(": dropped (logged once per kind of bad value for this sensor)")


@pytest.mark.parametrize(("reading", "expected"), [
    (Reading(5, 1.0), "Reading quantity 5 is int, expected a str"),  # type: ignore[arg-type]
    (Reading("bad", 1.0, b"V"), "Reading unit b'V' is bytes, expected a str"),  # type: ignore[arg-type]
    (Reading("\ud800", 1.0), "Reading quantity '\\ud800' is not valid UTF-8 text (a lone surrogate)"),
    (Reading("good", -1), 'read() returned "good" more than once: all but the first dropped'),
])
def test_a_bad_reading_is_dropped_and_named_once(caplog: pytest.LogCaptureFixture, reading: Reading,
                                                 expected: str) -> None:
    clock = FakeClock()
    samples: list[Sample] = []
    sensor = Scripted("m", float)
    sensor.read = lambda: [Reading("good", 7), reading]  # type: ignore[method-assign]
    run_virtual([(spec("m", 1.0), sensor)], clock, 3.0, samples)
    assert [(s.quantity, s.value) for s in samples] == [("good", 7)] * 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and expected in warnings[0], warnings


@pytest.mark.parametrize("result", ["21.5", None, 42, {"x": 1}])
def test_a_read_returning_no_list_is_dropped_and_named_once(caplog: pytest.LogCaptureFixture,
                                                            result: object) -> None:
    clock = FakeClock()
    samples: list[Sample] = []
    sensor = Scripted("m", float)
    sensor.read = lambda: result  # type: ignore[method-assign,assignment,return-value]
    sched = run_virtual([(spec("m", 1.0), sensor)], clock, 3.0, samples)
    assert samples == []
    assert (sched.stats["m"].reads, sched.stats["m"].bad_values, sched.stats["m"].failed_total) == (4, 4, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"read() returned {result!r} ({type(result).__name__}), expected a list of " \
        "Reading" in warnings[0], warnings


def test_other_real_numbers_are_converted_to_int_or_float() -> None:
    class Level(enum.IntEnum):
        HIGH = 7

    class Celsius(float):
        pass

    readings = [Reading("dec", Decimal("21.37")), Reading("frac", Fraction(1, 4)),  # type: ignore[arg-type]
                Reading("enum", Level.HIGH),
                Reading("sub", Celsius(3.5)), Reading("bool", True), Reading("int", 2**63 - 1)]
    clock = FakeClock()
    samples: list[Sample] = []
    sensor = Scripted("m", float)
    sensor.read = lambda: readings  # type: ignore[method-assign]
    run_virtual([(spec("m", 1.0), sensor)], clock, 0.5, samples)
    got = [(s.quantity, s.value, type(s.value)) for s in samples]
    assert got == [("dec", 21.37, float), ("frac", 0.25, float), ("enum", 7, int), ("sub", 3.5, float),
                   ("bool", True, bool), ("int", 2**63 - 1, int)]


def test_no_value_is_dropped_and_logged_once_per_streak(caplog: pytest.LogCaptureFixture) -> None:
    script = [None, None, 1.0, math.nan, math.inf, 2.0, None]
    clock = FakeClock()
    samples: list[Sample] = []
    caplog.set_level(logging.DEBUG, logger="sensord.scheduler")
    sched = run_virtual([(spec("h", 1.0), Scripted("h", lambda n: script[n % len(script)]))], clock, 6.0,
                        samples, plugins={"scripted": "acme"})
    assert [s.value for s in samples] == [1.0, 2.0]
    assert (sched.stats["h"].no_values, sched.stats["h"].bad_values, sched.stats["h"].failed_total) == (5, 0, 0)
    told = [(r.levelname, r.getMessage()) for r in caplog.records if "no value" in r.getMessage()]
    prefix = 'sensor "h" (scripted) of plugin "acme": no value for "value"'
    assert told == [("INFO", f"{prefix} (None): dropped until it reads one again"),
                    ("DEBUG", f"{prefix} (nan): dropped until it reads one again"),
                    ("DEBUG", f"{prefix} (None): dropped until it reads one again")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_real_clock_stamps_are_wall_time() -> None:
    samples: list[Sample] = []
    sched = Scheduler([(spec("a", 0.01), Scripted("a", float))], sink=samples.extend)
    before = time.time()

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert samples and all(before - 0.01 <= s.ts <= time.time() for s in samples)


def test_open_failure_is_retried_like_a_read_failure() -> None:
    class LateChip(Scripted):
        opens = 0

        def open(self) -> None:
            self.opens += 1
            if self.opens < 3:
                raise SensorError("chip id 0x00, expected 0x60")

    clock = FakeClock()
    epoch0 = clock.time()
    chip = LateChip("late", float)
    samples: list[Sample] = []
    run_virtual([(spec("late", 1.0), chip)], clock, 6.0, samples)
    assert chip.opens == 3  # at 0 s, 1 s, then 3 s after backoff
    assert stamps(samples, "late", epoch0) == [3.0, 4.0, 5.0, 6.0]


def test_pushed_readings_are_stamped_and_delivered() -> None:
    class Door(Scripted):
        def watch(self, emit: Callable[[list[Reading]], None]) -> None:
            self.emit = emit

    door = Door("door", float)
    samples: list[Sample] = []
    sched = Scheduler([(spec("door", 60.0), door)], sink=samples.extend)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        # The first scheduled read, then the push: the order the assertion below expects (emitting
        # as soon as watch() ran raced with that read and failed 1 run in 3 on bookworm's stack).
        while not hasattr(door, "emit") or not samples:
            await asyncio.sleep(0.001)
        before = time.time()
        threading.Thread(target=door.emit, args=([Reading("contact", True, "")],)).start()
        while len(samples) < 2:
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert samples[1].ts >= before

    asyncio.run(main())
    assert [(s.quantity, s.value) for s in samples] == [("value", 0.0), ("contact", True)]
    assert sched.stats["door"].pushes == 1


def test_a_failing_sensor_is_named_once_in_its_message(caplog: pytest.LogCaptureFixture) -> None:
    class Described(Scripted):
        def read(self) -> list[Reading]:
            raise SensorError(f"{self.describe()}: chip id 0x58, expected 0x60")

    release = threading.Event()
    hung = Scripted("hung", lambda n: release.wait(5))
    sched = Scheduler([(spec("x", 0.02), Described("x", float)), (spec("hung", 0.02, timeout_s=0.05), hung),
                       (spec("plain", 0.02), Scripted("plain", lambda n: 1 / 0))], sink=lambda s: None)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        while sched.stats["hung"].failed_total < 1:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        release.set()
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warnings == [
        'sensor "hung" (scripted): read did not return within 0.05 s; retrying with backoff',
        'sensor "plain" (scripted): ZeroDivisionError: division by zero; retrying with backoff',
        'sensor "x" (scripted): chip id 0x58, expected 0x60; retrying with backoff',
    ]


def run_generations(plan: Sequence[tuple[Sequence[tuple[SensorSpec, Sensor]], float]], clock: FakeClock,
                    samples: list[Sample]) -> dict[str, NextRead]:
    """Run one scheduler after another on the same clock and `schedule` map, as reloads do."""
    schedule: dict[str, NextRead] = {}
    for sensors, seconds in plan:
        run_virtual(list(sensors), clock, seconds, samples, schedule=schedule)
    return schedule


def test_a_reload_keeps_each_unchanged_sensors_schedule() -> None:
    clock = FakeClock()
    epoch0, start = clock.time(), clock.monotonic()
    samples: list[Sample] = []
    a, b, c, d = (Scripted(name, float) for name in "abcd")
    # Generation 1: reads at 0, 1, 2 (a), 0 (b, every 10 s) and 0, 2 (c); reload at 2.3 s.
    # Generation 2: a keeps its grid (3, 4), b stays due at 10, c's interval changed: read at once.
    # Nine reloads in 0.9 s more must not add a read either; a sensor no longer configured is forgotten.
    plan = [([(spec("a", 1.0), a), (spec("b", 10.0), b), (spec("c", 2.0), c)], 2.3)]
    plan += [([(spec("a", 1.0), a), (spec("b", 10.0), b), (spec("c", 3.0), c)], 0.1)] * 8
    plan += [([(spec("a", 1.0), a), (spec("b", 10.0), b), (spec("c", 3.0), c), (spec("d", 1.0), d)], 0.1)]
    plan += [([(spec("a", 1.0), a), (spec("b", 10.0), b), (spec("c", 3.0), c)], 8.0)]
    schedule = run_generations(plan, clock, samples)
    assert stamps(samples, "a", epoch0) == [float(k) for k in range(12)]
    assert stamps(samples, "b", epoch0) == [0.0, 10.0]
    assert stamps(samples, "c", epoch0) == [0.0, 2.0, 2.3, 5.3, 8.3]
    assert schedule == {"a": NextRead("scripted", 1.0, start + 12.0), "b": NextRead("scripted", 10.0, start + 20.0),
                        "c": NextRead("scripted", 3.0, pytest.approx(start + 11.3))}  # type: ignore[arg-type]


def test_a_resumed_sensor_watches_at_once_and_reads_when_due() -> None:
    class Door(Scripted):
        watches = 0

        def watch(self, emit: Callable[[list[Reading]], None]) -> None:
            self.watches += 1

    clock = FakeClock()
    epoch0 = clock.time()
    door = Door("door", float)
    samples: list[Sample] = []
    run_generations([([(spec("door", 60.0), door)], 5.0), ([(spec("door", 60.0), door)], 0.0)], clock, samples)
    assert door.watches == 2  # the second generation watches from its start, not from 60 s on
    assert stamps(samples, "door", epoch0) == [0.0]


def test_a_sensor_that_does_not_block_is_read_on_the_event_loop() -> None:
    threads: dict[str, int] = {}

    class Quick(Scripted):
        blocking = False

        def read(self) -> list[Reading]:
            threads[self.name] = threading.get_ident()
            return super().read()

    class Slow(Quick):
        blocking = True

    async def main() -> list[Sample]:
        samples: list[Sample] = []
        sched = Scheduler([(spec("quick", 0.01), Quick("quick", lambda n: n)),
                           (spec("slow", 0.01), Slow("slow", lambda n: n))], sink=samples.extend)
        task = asyncio.create_task(sched.run())
        while len({s.sensor for s in samples}) < 2:
            await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return samples

    samples = asyncio.run(main())
    assert {s.sensor for s in samples} == {"quick", "slow"}
    assert threads["quick"] == threading.get_ident() != threads["slow"]
