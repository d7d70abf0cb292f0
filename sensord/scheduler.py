"""The scheduler: one asyncio task per sensor, reads in worker threads, readings out to a sink.

Cadence is kept on a grid of monotonic ticks (`start + k * interval_s`), so a slow read does not
push later reads back. A read that raises or times out is logged once per failure streak and
retried with capped exponential backoff; each sensor has its own worker thread, so a hung sensor
never delays the others. Readings leave through `sink(samples)`, called on the event loop.

Grid, backoff and each read's instant are monotonic: a step of the wall clock neither bursts nor
stalls reads. The instant becomes `Sample.ts` when the read returns (sensord.timebase).

What a plugin hands over (`read()`'s list, `emit()`'s) is checked here, where it leaves the
plugin (`ReadingCheck`): values become exactly `bool`, `int` or `float` (`sensor.clean_value`),
a reading with no value (None, NaN, ±inf) is dropped and logged once per streak, and a bad one
(a `str`, a `Decimal` that is not a number, a non-`Reading`, a duplicate quantity) is dropped and
named once per sensor and kind; the other readings of the same read go on. Nothing a plugin
returns can reach the encoder, the staging area or the buffer in a form they cannot hold.

A `Scheduler` can carry on from its predecessor (a reload): given the same `schedule` map, a
sensor whose name, type and interval are unchanged keeps its next due time instead of being
read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._compat import moved
from .config import SensorSpec
from .errors import ReadTimeout, SensorError
from .sensor import BadValue, Reading, Sensor, brief_repr, clean_value
from .sensor import Sample as _Sample
from .timebase import TimeBase

log = logging.getLogger(__name__)


Sink = Callable[[Sequence[_Sample]], object]  # what it returns is ignored


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    async def sleep_until(self, deadline: float) -> None: ...


class SystemClock:
    """The real clocks: monotonic for scheduling and stamping, wall clock to map stamps to (through
    a `TimeBase`)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class Worker:
    """One daemon thread that runs a sensor's blocking calls one at a time.

    Daemon, so a read stuck forever in a driver cannot keep the process from exiting.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"sensord-{name}", daemon=True)
        self._thread.start()
        self._last: list[bool] | None = None  # [finished] of the last job handed to the thread

    @property
    def running(self) -> bool:
        """The thread is still in the last job (one whose caller gave up waiting included)."""
        return self._last is not None and not self._last[0]

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, loop, fut, finished = job
            try:
                outcome: tuple[Any, BaseException | None] = (fn(), None)
            except BaseException as exc:  # handed to the awaiting task
                outcome = (None, exc)
            finished[0] = True
            # RuntimeError: the loop is closed (a read that hung past shutdown); nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, *outcome)

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run `fn` in the thread; the future gets its outcome, unless it is done before (a
        timeout, a cancel), and then the outcome is dropped."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._last = [False]
        self._jobs.put((fn, loop, fut, self._last))
        return fut

    def stop(self) -> None:
        self._jobs.put(None)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


async def call_with_timeout(sensor: Sensor, worker: Worker, fn: Callable[[], Any], timeout_s: float,
                            what: str) -> Any:
    """Run a blocking sensor call on its worker; ReadTimeout if it does not return in time. A
    sensor that does not block (`Sensor.blocking`) is called right here."""
    if not sensor.blocking:
        return fn()
    if worker.running:
        raise ReadTimeout(f"{sensor.describe()}: previous {what} still running")
    fut = worker.submit(fn)
    # The task awaits the thread's future itself, and a timer fails that future on a timeout
    # (the thread cannot be stopped; its late outcome is dropped). Neither wait_for, which in
    # Python 3.11 can swallow a cancel that races with its inner future completing (gh-86296),
    # nor asyncio.wait, whose extra future and callbacks cost two more turns of the event loop
    # per read.
    timer = asyncio.get_running_loop().call_later(timeout_s, _time_out, fut, sensor, what, timeout_s)
    try:
        return await fut
    finally:
        timer.cancel()


def _time_out(fut: asyncio.Future[Any], sensor: Sensor, what: str, timeout_s: float) -> None:
    if not fut.done():
        fut.set_exception(ReadTimeout(f"{sensor.describe()}: {what} did not return within {timeout_s:g} s"))


async def read_with_timeout(sensor: Sensor, worker: Worker, timeout_s: float) -> list[Reading]:
    """Run `sensor.read()` on its worker; SensorError if it fails, ReadTimeout if it hangs."""
    readings = await call_with_timeout(sensor, worker, sensor.read, timeout_s, "read")
    if not isinstance(readings, list) or not all(isinstance(r, Reading) for r in readings):
        raise SensorError(f"{sensor.describe()}: read() must return a list of Reading, "
                          f"returned {readings!r:.80}")
    return readings


@dataclass
class SensorStats:
    reads: int = 0
    failures: int = 0  # in the current streak
    failed_total: int = 0
    skipped_ticks: int = 0
    pushes: int = 0
    last_error: str = ""
    bad_values: int = 0  # readings (or whole results) dropped as bad values
    no_values: int = 0  # readings dropped as "no value this time" (None, NaN, ±inf)


@dataclass(frozen=True, slots=True)
class NextRead:
    """When a sensor's next read is due (monotonic seconds), for the scheduler of the next generation."""

    type: str
    interval_s: float
    due: float


class ReadingCheck:
    """Checks one sensor's readings where they leave its plugin; logs what it drops.

    A bad value is logged at WARNING once per kind for this sensor (a plugin bug does not fix
    itself: once is enough, `SensorStats.bad_values` counts them all). "No value" (None, NaN, ±inf)
    is logged once per quantity and streak: at INFO the first time, at DEBUG after that.
    """

    def __init__(self, label: str, stats: SensorStats) -> None:
        self.label = label
        self.stats = stats
        self._named: set[str] = set()  # kinds of bad values already logged
        self._missing: set[str] = set()  # quantities in a no-value streak
        self._told: set[str] = set()  # quantities whose no-value streak was logged at INFO
        self._good_text: set[tuple[str, str]] = set()  # (quantity, unit) pairs already checked

    def __call__(self, result: object, what: str = "read()") -> list[Reading]:
        """The readings of `result` that can be carried, values as bool, int or float."""
        if not isinstance(result, list | tuple):
            self._bad(f"result:{type(result).__name__}",
                      f"{what} returned {brief_repr(result)} ({type(result).__name__}), expected a list of Reading")
            return []
        out: list[Reading] = []
        seen: set[str] = set()
        for item in result:
            reading = self._one(item, what)
            if reading is None:
                continue
            if reading.quantity in seen:
                self._bad("duplicate", f'{what} returned "{reading.quantity}" more than once',
                          "all but the first dropped")
                continue
            seen.add(reading.quantity)
            out.append(reading)
        return out

    def _one(self, item: object, what: str) -> Reading | None:
        if not isinstance(item, Reading):
            self._bad(f"item:{type(item).__name__}",
                      f"{what} returned {brief_repr(item)} ({type(item).__name__}) in its list, expected a Reading")
            return None
        quantity, unit = item.quantity, item.unit
        exact = type(quantity) is str and type(unit) is str  # (a plugin's odd object may not even hash)
        if not (exact and (quantity, unit) in self._good_text):  # checked once per pair: runs for every reading
            for field_name, text in (("quantity", quantity), ("unit", unit)):
                problem = _text_problem(text)
                if problem:
                    self._bad(f"{field_name}:{problem}", f"Reading {field_name} {brief_repr(text)} is {problem}")
                    return None
            if exact:
                self._good_text.add((quantity, unit))
        try:
            value = clean_value(item.value)
        except BadValue as exc:
            self._bad(f"value:{exc.kind}", f'"{quantity}": {exc}')
            return None
        if value is None:
            self.stats.no_values += 1
            if quantity not in self._missing:
                self._missing.add(quantity)
                level = logging.DEBUG if quantity in self._told else logging.INFO
                self._told.add(quantity)
                log.log(level, '%s: no value for "%s" (%s): dropped until it reads one again',
                        self.label, quantity, brief_repr(item.value))
            return None
        if quantity in self._missing:
            self._missing.discard(quantity)
            log.debug('%s: "%s" has a value again', self.label, quantity)
        if (value is item.value and type(quantity) is str and type(unit) is str):
            return item
        return Reading(str(quantity), value, str(unit))

    def _bad(self, kind: str, message: str, outcome: str = "dropped") -> None:
        self.stats.bad_values += 1
        if kind not in self._named:
            self._named.add(kind)
            log.warning("%s: %s: %s (logged once per kind of bad value for this sensor)", self.label, message, outcome)


def _text_problem(text: object) -> str | None:
    """Why `text` cannot be a quantity or unit: not a str, or not valid UTF-8 (a lone surrogate)."""
    if not isinstance(text, str):
        return f"{type(text).__name__}, expected a str"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 text (a lone surrogate)"
    return None



class Scheduler:
    """Reads each sensor on its own cadence and hands stamped samples to `sink`."""

    def __init__(self, sensors: Sequence[tuple[SensorSpec, Sensor]], *, sink: Sink,
                 clock: Clock | None = None, backoff_max_s: float = 300.0,
                 schedule: MutableMapping[str, NextRead] | None = None,
                 plugins: dict[str, str] | None = None, timebase: TimeBase | None = None) -> None:
        """`schedule`: each sensor's next due read, kept up to date here; pass the map of the
        previous generation's scheduler so a reload does not read every sensor at once.
        `plugins`: sensor type → plugin name, to name the plugin in messages about its values.
        `timebase`: maps a read's monotonic instant to its wall time when the read returns (the
        daemon's knows whether the clock is synchronised); default: the clock's wall time as is."""
        self._sensors = list(sensors)
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._time = timebase or TimeBase.trusted(monotonic=self._clock.monotonic, wall=self._clock.time)
        self._backoff_max_s = backoff_max_s
        self._schedule: MutableMapping[str, NextRead] = schedule if schedule is not None else {}
        self._plugins = plugins or {}
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[Worker] = []
        self._opened: list[tuple[Sensor, Worker]] = []
        self._stopping = False
        self.stats: dict[str, SensorStats] = {spec.name: SensorStats() for spec, _ in self._sensors}

    async def run(self) -> None:
        """Run until cancelled (or `stop()`)."""
        start = self._clock.monotonic()
        names = {spec.name for spec, _ in self._sensors}
        for name in [n for n in self._schedule if n not in names]:
            del self._schedule[name]
        for spec, sensor in self._sensors:
            worker = Worker(spec.name)
            self._workers.append(worker)
            previous = self._schedule.get(spec.name)
            resumed = (previous is not None and previous.type == spec.type
                       and previous.interval_s == spec.interval_s)
            self._tasks.append(asyncio.create_task(
                self._loop(spec, sensor, worker, previous.due if resumed and previous else start),
                name=f"sensor:{spec.name}"))
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        self._stopping = True
        pending = {t for t in self._tasks if not t.done()}
        while pending:
            # Python 3.11's wait_for can swallow a cancel that races with its inner future
            # completing (gh-86296); cancel again until every task has really ended.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sensor, worker in self._opened:
            worker.submit(sensor.close)  # queued behind any read still running; not awaited
        for worker in self._workers:
            worker.stop()
        self._tasks.clear()
        self._workers.clear()
        self._opened.clear()

    async def _loop(self, spec: SensorSpec, sensor: Sensor, worker: Worker, start: float) -> None:
        clock, stats, interval = self._clock, self.stats[spec.name], spec.interval_s
        check = self._check(spec, sensor)
        tick = 0
        opened = False
        eager = True  # the first open is at once, the first read when due
        while not self._stopping:
            due = start + tick * interval
            self._schedule[spec.name] = NextRead(spec.type, interval, due)
            if not eager:
                await clock.sleep_until(due)
            # A resumed schedule may be due later; a watching sensor must see edges from the start.
            eager = False
            # Mapped to wall time only when the read has returned, right before the sink: a clock
            # sync noticed meanwhile corrects the open batch and this stamp alike.
            instant = clock.monotonic()
            try:
                if not opened:
                    # Opening here, not before the loop: a sensor that is unplugged at start-up
                    # is retried with the same backoff as a failing read.
                    await call_with_timeout(sensor, worker, sensor.open, spec.timeout_s, "open")
                    opened = True
                    self._opened.append((sensor, worker))
                    emit = self._push_emitter(spec, sensor, check, asyncio.get_running_loop())
                    await call_with_timeout(sensor, worker, functools.partial(sensor.watch, emit), spec.timeout_s,
                                            "watch")
                    if due > clock.monotonic():
                        await clock.sleep_until(due)
                        instant = clock.monotonic()
                result = await call_with_timeout(sensor, worker, sensor.read, spec.timeout_s, "read")
            except Exception as exc:  # a driver may raise anything; isolate it
                stats.failures += 1
                stats.failed_total += 1
                stats.last_error = str(exc)
                if stats.failures == 1:
                    log.warning("%s; retrying with backoff", _prefixed(sensor, exc))
                if due > clock.monotonic():
                    continue  # the open before a resumed schedule's first read: retry when it is due
                delay = min(interval * 2 ** (stats.failures - 1), max(self._backoff_max_s, interval))
                tick = max(tick + 1, self._next_tick(start, interval, clock.monotonic() + delay - interval))
                continue
            if stats.failures:
                log.info("%s: reading again after %d failed reads", sensor.describe(), stats.failures)
                stats.failures = 0
            stats.reads += 1
            readings = check(result)
            stamp = self._time.stamp(instant)
            self._sink([_Sample(spec.name, r.quantity, r.value, r.unit, stamp) for r in readings])
            nxt = max(tick + 1, self._next_tick(start, interval, clock.monotonic()))
            stats.skipped_ticks += max(0, nxt - tick - 1)
            tick = nxt

    def _check(self, spec: SensorSpec, sensor: Sensor) -> ReadingCheck:
        plugin = self._plugins.get(spec.type)
        label = sensor.describe() + (f' of plugin "{plugin}"' if plugin else "")
        return ReadingCheck(label, self.stats[spec.name])

    def _push_emitter(self, spec: SensorSpec, sensor: Sensor, check: ReadingCheck,
                      loop: asyncio.AbstractEventLoop) -> Callable[[list[Reading]], None]:
        """What a watching sensor calls from its own thread (gpiozero's callback thread)."""

        def deliver(pushed: object, instant: float) -> None:
            readings = check(pushed, "emit()")
            self.stats[spec.name].pushes += 1
            if readings:
                stamp = self._time.stamp(instant)  # on the loop, as for reads (see _loop)
                self._sink([_Sample(spec.name, r.quantity, r.value, r.unit, stamp) for r in readings])

        def emit(readings: list[Reading]) -> None:
            instant = self._clock.monotonic()  # the edge's instant, not when the loop gets to it
            with contextlib.suppress(RuntimeError):  # loop closed: the daemon is exiting
                loop.call_soon_threadsafe(deliver, readings, instant)

        return emit

    @staticmethod
    def _next_tick(start: float, interval: float, now: float) -> int:
        """The first grid tick strictly after `now`."""
        k = math.floor((now - start) / interval) + 1
        return max(k, 0)


def error_text(exc: BaseException) -> str:
    """A failed read as one line: a `SensorError`'s own text, else `Type: text`."""
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, SensorError) else f"{type(exc).__name__}: {text}"


def _prefixed(sensor: Sensor, exc: BaseException) -> str:
    """`sensor "x" (type): <error>`, without naming the sensor twice: `ReadTimeout`s and drivers'
    `SensorError`s (`I2CSensor.error`, `self.describe()` in a message) already start with it."""
    text = error_text(exc)
    label = sensor.describe()
    if text.startswith(label) or text.startswith(f'sensor "{sensor.name}"'):
        return text
    return f"{label}: {text}"


# `Sample` lived here until 0.2; plugins import it from `sensord` now.
__getattr__ = moved(__name__, {"Sample": "sensord.sensor.Sample"})
