"""A wall clock that is wrong at boot, and one that steps while running (sensord.timebase).

The clocks and the sync state are injected: a `FakeClock` whose wall clock steps (`step()`) while
its monotonic clock does not, and a sync source that says what the test sets. Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensord import Reading, Sensor, SensorConfig
from sensord.batch import Batcher
from sensord.config import SensorSpec
from sensord.encoding import decode
from sensord.hardware import Hardware
from sensord.pipeline import Pipeline
from sensord.scheduler import Scheduler
from sensord.sensor import Sample
from sensord.staging import decode_chunk
from sensord.testing.clock import FakeClock
from sensord.timebase import (
    PLAUSIBLE_AFTER,
    AutoSource,
    FileSource,
    KernelSource,
    TimeBase,
    make_source,
)

TRUE_EPOCH = 1_764_000_000.0  # 2025-11-24: what the time really is at the test's start
DAYS = 86_400.0


class Flag:
    """A sync source the test sets."""

    name = "test"

    def __init__(self, state: bool | None = False) -> None:
        self.state = state
        self.asked = 0

    def __call__(self) -> bool | None:
        self.asked += 1
        return self.state

    def describe(self) -> str:
        return "the test's flag"


@dataclass(frozen=True)
class NoOptions(SensorConfig):
    pass


class Counter(Sensor):
    """Reads 0, 1, 2 ...; `on_read(n)` runs inside read n (in the worker thread)."""

    type_name = "counter"
    Config = NoOptions

    def __init__(self, name: str = "c", on_read: Callable[[int], None] = lambda n: None) -> None:
        super().__init__(NoOptions(), name=name, hardware=Hardware())
        self.n = 0
        self.on_read = on_read

    def read(self) -> list[Reading]:
        n, self.n = self.n, self.n + 1
        self.on_read(n)
        return [Reading("n", n, "")]


def spec(name: str = "c", interval_s: float = 1.0) -> SensorSpec:
    return SensorSpec(index=0, name=name, type="counter", interval_s=interval_s, options=NoOptions())


class ListStore:
    """The pipeline's store: sealed payloads and staged chunks in lists."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.chunks: list[bytes] = []

    def seal(self, encode: Callable[[int], bytes], *, readings: int, first_ts: float) -> int | None:
        self.payloads.append(encode(len(self.payloads)))
        self.chunks.clear()
        return len(self.payloads) - 1

    def stage(self, data: bytes, *, readings: int) -> bool:
        self.chunks.append(data)
        return True


def run(clock: FakeClock, sensors: list[tuple[SensorSpec, Sensor]], sink: Callable[[list[Sample]], object],
        timebase: TimeBase | None, steps: list[tuple[float, Callable[[], None]]], until: float) -> None:
    """Run a scheduler on virtual time; at each (t, action) of `steps` (seconds after the start,
    between two reads) do the action."""
    sched = Scheduler(sensors, sink=sink, clock=clock, timebase=timebase)
    start = clock.now

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        for t, action in steps:
            await clock.run_until(start + t, sleepers=len(sensors))
            action()
        await clock.run_until(start + until, sleepers=len(sensors))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


# -- a step of the wall clock while synchronised -------------------------------------------------

@pytest.mark.parametrize("step_s", [3600.0, -3600.0, 2 * DAYS, -0.5])
def test_a_step_while_running_neither_bursts_nor_stalls_nor_loses_reads(step_s: float,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(epoch=TRUE_EPOCH)
    samples: list[Sample] = []
    caplog.set_level(logging.INFO, logger="sensord.timebase")
    timebase = TimeBase.trusted(monotonic=clock.monotonic, wall=clock.time)
    run(clock, [(spec(), Counter())], samples.extend, timebase, [(4.5, lambda: clock.step(step_s))], until=9.5)
    # One read per second on the monotonic grid: 0..9, none twice, none skipped, no catching up.
    assert [s.value for s in samples] == list(range(10))
    times = [round(s.ts - TRUE_EPOCH, 6) for s in samples]
    assert times == [float(i) for i in range(5)] + [i + step_s for i in range(5, 10)]
    stepped = [r.getMessage() for r in caplog.records if "stepped" in r.getMessage()]
    assert len(stepped) == (1 if abs(step_s) > 1 else 0)  # half a second is NTP's business, not news


def test_a_step_during_a_slow_read_stamps_the_read_in_the_new_time() -> None:
    """The stamp is taken when the read returns: the step is known by then."""
    clock = FakeClock(epoch=TRUE_EPOCH)
    samples: list[Sample] = []

    def slow(n: int) -> None:
        clock.advance(0.2)
        if n == 3:
            clock.step(60.0)

    timebase = TimeBase.trusted(monotonic=clock.monotonic, wall=clock.time)
    run(clock, [(spec(), Counter(on_read=slow))], samples.extend, timebase, [], until=5.5)
    assert [round(s.ts - TRUE_EPOCH, 6) for s in samples] == [0.0, 1.0, 2.0, 63.0, 64.0, 65.0]


# -- a clock that is wrong until the sync ---------------------------------------------------------

def held_node(*, behind_s: float, wait_s: float = 600.0, max_readings: int = 5,
              boot_id: str = "boot-1") -> tuple[FakeClock, Flag, TimeBase, Pipeline, ListStore]:
    """A node whose wall clock is `behind_s` behind the truth and not synchronised."""
    clock = FakeClock(epoch=TRUE_EPOCH - behind_s)
    flag = Flag(False)
    timebase = TimeBase(flag, wait_s=wait_s, monotonic=clock.monotonic, wall=clock.time, boot_id=boot_id)
    store = ListStore()
    pipeline = Pipeline(store, node="n", batcher=Batcher(max_age_s=3600, max_readings=max_readings),
                        timebase=timebase)
    pipeline.filters = {"c": spec().filters.fresh()}
    timebase.on_sync = pipeline.batcher.shift
    assert timebase.start() is False
    return clock, flag, timebase, pipeline, store


def sync(clock: FakeClock, flag: Flag, behind_s: float) -> Callable[[], None]:
    """NTP's first sync: the wall clock steps to the truth, then the source says so."""
    def action() -> None:
        clock.step(behind_s)
        flag.state = True
    return action


@pytest.mark.parametrize("behind_s", [3 * DAYS, TRUE_EPOCH - 30.0, -2 * DAYS])
def test_readings_before_the_sync_get_their_true_time(behind_s: float) -> None:
    """fake-hwclock (days behind), 1970 (no saved clock at all), and a clock set in the future:
    the readings held until the sync come out at their true time, in one batch, unflagged."""
    clock, flag, timebase, pipeline, store = held_node(behind_s=behind_s)
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [(20.5, sync(clock, flag, behind_s))], until=24.5)
    # Held although full (5 readings) from read 4 on; read 21 saw the sync, joined the corrected
    # batch and sealed it (in batches of max_readings, as an overgrown batch always is).
    batches = [decode(p) for p in store.payloads]
    assert [len(b.samples) for b in batches] == [5, 5, 5, 5, 2]
    assert not any(b.unsynced for b in batches)
    samples = [s for b in batches for s in b.samples]
    assert [s.value for s in samples] == list(range(22))
    assert [round(s.ts - TRUE_EPOCH, 6) for s in samples] == [float(i) for i in range(22)]
    assert [round(s.ts - TRUE_EPOCH, 6) for s in pipeline.batcher.pending()] == [22.0, 23.0, 24.0]
    assert timebase.synced and not pipeline.holding()


def test_the_wait_is_bounded_and_what_is_sent_before_the_sync_is_flagged() -> None:
    behind = 3 * DAYS
    clock, flag, timebase, pipeline, store = held_node(behind_s=behind, wait_s=10.0)
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [(18.5, sync(clock, flag, behind))], until=27.5)
    batches = [decode(p) for p in store.payloads]
    # The wait ended at 10 s: the held batch (0..10) went out flagged (in batches of 5), then
    # 11..15, all with the times the wrong clock said; 16..18 were in memory at the sync: corrected.
    assert [(b.unsynced, [s.value for s in b.samples]) for b in batches] == [
        (True, [0, 1, 2, 3, 4]), (True, [5, 6, 7, 8, 9]), (True, [10]), (True, list(range(11, 16))),
        (False, list(range(16, 21))), (False, list(range(21, 26)))]
    for batch in batches:
        offset = -behind if batch.unsynced else 0.0
        assert [round(s.ts - TRUE_EPOCH - offset, 6) for s in batch.samples] == [float(s.value) for s in batch.samples]


def test_the_source_is_asked_until_it_says_synchronised_then_never_again() -> None:
    clock, flag, timebase, pipeline, _ = held_node(behind_s=DAYS)
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [(3.5, sync(clock, flag, DAYS))], until=9.5)
    assert flag.asked == 1 + 4 + 1  # start, reads 0..3, read 4 (synchronised)


def test_a_stop_before_the_sync_seals_the_held_batch_flagged() -> None:
    clock, _, timebase, pipeline, store = held_node(behind_s=DAYS)
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [], until=7.5)
    assert store.payloads == [] and pipeline.holding()
    assert pipeline.seal(final=True)
    batches = [decode(p) for p in store.payloads]
    assert all(b.unsynced for b in batches) and [s.value for b in batches for s in b.samples] == list(range(8))


def test_a_sync_found_by_the_final_seal_corrects_the_batch() -> None:
    clock, flag, timebase, pipeline, store = held_node(behind_s=DAYS)
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [], until=3.5)
    sync(clock, flag, DAYS)()  # no read since: the seal asks
    assert pipeline.seal(final=True)
    (batch,) = [decode(p) for p in store.payloads]
    assert not batch.unsynced
    assert [round(s.ts - TRUE_EPOCH, 6) for s in batch.samples] == [0.0, 1.0, 2.0, 3.0]


def test_a_held_batch_is_staged_with_its_time_frame() -> None:
    clock, flag, timebase, pipeline, store = held_node(behind_s=DAYS, boot_id="b7")
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [], until=2.5)
    pipeline.stage()
    frame, samples = decode_chunk(store.chunks[-1])
    assert frame == {"clock": "unsynced", "boot": "b7", "offset": timebase.offset}
    # The frame gives the reading's monotonic instant back: ts - offset.
    assert [round(s.ts - frame["offset"] - 1000.0, 6) for s in samples] == [0.0, 1.0, 2.0]  # type: ignore[operator]
    sync(clock, flag, DAYS)()
    timebase.poll()
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [], until=0.5)
    pipeline.stage()
    frame, samples = decode_chunk(store.chunks[-1])
    assert frame is None and [s.value for s in samples] == [0]


def test_held_readings_are_bounded_by_memory_max_readings() -> None:
    clock, _, timebase, pipeline, store = held_node(behind_s=DAYS, max_readings=3)
    pipeline.memory_max_readings = 8
    run(clock, [(spec(), Counter())], pipeline.add, timebase, [], until=9.5)
    assert [len(decode(p).samples) for p in store.payloads] == [3, 3, 3]  # read 8 found 8 held: no more holding
    assert all(decode(p).unsynced for p in store.payloads)


def test_pushed_readings_are_stamped_on_the_loop_in_the_current_frame() -> None:
    """An edge stamped (monotonic) before the sync and delivered after it is moved with the rest."""
    clock, flag, timebase, pipeline, _ = held_node(behind_s=DAYS)
    got: list[Sample] = []
    sensor = Counter()
    scheduler = Scheduler([(spec(), sensor)], sink=got.extend, clock=clock, timebase=timebase)

    async def main() -> None:
        emit = scheduler._push_emitter(spec(), sensor, scheduler._check(spec(), sensor), asyncio.get_running_loop())
        emit([Reading("open", True)])  # the edge, at monotonic 1000.0; delivered by the loop later
        sync(clock, flag, DAYS)()
        clock.advance(2.0)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert [round(s.ts - TRUE_EPOCH, 6) for s in got] == [0.0]


# -- sync sources ---------------------------------------------------------------------------------

def test_the_timesyncd_file_says_synchronised(tmp_path: Path) -> None:
    path = tmp_path / "timesync" / "synchronized"
    strict, loose = FileSource(str(path)), FileSource(str(path), strict=False)
    assert strict() is False and loose() is None  # no timesyncd at all: only the strict one says no
    path.parent.mkdir()
    assert strict() is False and loose() is False  # timesyncd runs, not synchronised yet
    path.touch()
    assert strict() is True and loose() is True


class FixedKernel(KernelSource):
    def __init__(self, state: bool | None, error: str | None = None) -> None:
        super().__init__()
        self.state, self.error = state, error

    def __call__(self) -> bool | None:
        return None if self.error else self.state


@pytest.mark.parametrize(("file", "kernel", "expected", "said"), [
    ("synchronized", FixedKernel(False), True, "systemd-timesyncd"),
    ("", FixedKernel(True), True, "the kernel"),
    ("", FixedKernel(False), False, "the kernel"),
    ("dir", FixedKernel(None, "adjtimex: Operation not permitted"), False, "systemd-timesyncd"),
    ("", FixedKernel(None, "adjtimex: Operation not permitted"), None, "no source can tell"),
])
def test_auto_takes_the_file_then_the_kernel_then_timesyncd(tmp_path: Path, file: str, kernel: KernelSource,
                                                            expected: bool | None, said: str) -> None:
    path = tmp_path / "timesync" / "synchronized"
    if file:
        path.parent.mkdir()
    if file == "synchronized":
        path.touch()
    source = AutoSource(str(path), kernel)
    assert source() is expected
    assert source.describe().startswith(said)


def test_the_kernel_is_asked_with_adjtimex_or_says_why_not() -> None:
    source = KernelSource()
    state = source()
    assert state in (True, False, None)
    assert (state is None) == (source.error is not None)
    assert source.describe()


def test_when_nothing_tells_a_clock_before_2025_is_not_set() -> None:
    clock = FakeClock(epoch=30.0)  # 1970, no saved clock
    timebase = TimeBase(Flag(None), wait_s=60, monotonic=clock.monotonic, wall=clock.time)
    assert timebase.start() is False and timebase.holding()
    clock.step(TRUE_EPOCH - 30.0)  # some NTP client set it
    assert timebase.poll() is True and not timebase.holding()
    assert TimeBase(Flag(None), monotonic=clock.monotonic, wall=lambda: PLAUSIBLE_AFTER).start() is True


def test_make_source_names() -> None:
    assert [make_source(n).name for n in ("auto", "kernel", "timesyncd", "none")] == [
        "auto", "kernel", "timesyncd", "none"]
    with pytest.raises(ValueError, match="unknown clock sync source 'ntp'"):
        make_source("ntp")


def test_the_sync_line_says_how_far_the_stamps_moved(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensord.timebase")
    for behind_s, said in ((DAYS, "moved by +86400.000 s to their true time"),
                           (0.0, "the clock was right: readings taken before it keep their time")):
        clock = FakeClock(epoch=TRUE_EPOCH - behind_s)
        flag = Flag(False)
        timebase = TimeBase(flag, wait_s=60, monotonic=clock.monotonic, wall=clock.time)
        timebase.start()
        sync(clock, flag, behind_s)()
        caplog.clear()
        assert timebase.poll()
        (message,) = caplog.messages
        assert message.startswith("clock: synchronised (the test's flag); ") and message.endswith(said)
