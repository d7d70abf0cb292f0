"""Scheduler: cadence on a fake clock, failures isolated and backed off, hung reads timed out."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sensord import Reading, Sensor, SensorConfig, SensorError
from sensord.config import SensorSpec
from sensord.hardware import Hardware
from sensord.scheduler import Sample, Scheduler
from sensord.testing.clock import FakeClock


@dataclass(frozen=True)
class NoOptions(SensorConfig):
    pass


class Scripted(Sensor):
    """A sensor whose read() runs a test-supplied function."""

    type_name = "scripted"
    Config = NoOptions

    def __init__(self, name: str, behaviour: Callable[[int], float]) -> None:
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
                samples: list[Sample]) -> Scheduler:
    sched = Scheduler(sensors, sink=samples.extend, clock=clock)

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


def test_invalid_read_result_is_a_failure() -> None:
    class Bad(Scripted):
        def read(self) -> list[Reading]:
            return [("value", 1)]  # type: ignore[list-item]

    clock = FakeClock()
    samples: list[Sample] = []
    sched = run_virtual([(spec("bad", 1.0), Bad("bad", float))], clock, 0.5, samples)
    assert samples == []
    assert "read() must return a list of Reading" in sched.stats["bad"].last_error


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
        while not hasattr(door, "emit"):
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
