"""Run one sensor through the real scheduler, filters and encoder, without MQTT, on virtual time.

For plugin authors: test a driver end to end without hardware or a broker. `run_sensor()` builds
the sensor from an options dict exactly as the daemon builds it from a `[[sensor]]` table (same
`ConfigError` messages), runs sensord's `Scheduler` on a `FakeClock`, passes every read through
the filter chains of `filters` / `channel_filters`, seals what passes into one batch in the
chosen encoding (with the channel resolutions after the filters, as the daemon does), decodes
that batch again and returns all of it as a `HarnessResult`. A thousand reads at
`interval_s = 60` take a fraction of a second: time is virtual and nothing really sleeps.

A plugin author's test, with the pytest fixtures of `sensord.testing` (`sensor_harness` is
`run_sensor` on the test's `fake_hardware` and `fake_clock`)::

    from sensord.testing.models.sht import SHT3xModel
    from sensord_plugins.sht3x import SHT3x

    def test_sht3x_end_to_end(fake_i2c_bus, fake_clock, sensor_harness):
        chip = fake_i2c_bus.attach(SHT3xModel(temperature_c=21.0, clock=fake_clock.monotonic))
        result = sensor_harness(SHT3x, {"address": 0x44}, interval_s=30, reads=10, filters=[{"delta": 0.2}],
                                at={150: lambda: setattr(chip, "temperature_c", 25.0)})  # reads from 150 s on
        assert result.failures == 0 and result.lossless
        assert result.values("temperature") == [21.0, 25.0]

What to know:

- **Virtual time.** Reads are due on the grid `start + k * interval_s` of the `FakeClock`. While
  the run lasts, the hardware's `sleep` advances that clock instead of sleeping (and still calls
  the hardware's own sleep, such as a chip model's `advance`, unless it is `time.sleep`), so a
  driver waiting for a conversion costs no real time, and a chip model built with
  `clock=fake_clock.monotonic` sees the wait. Samples are stamped with the clock's wall time;
  `HarnessResult.times()` gives seconds after the first read.
- **Failures.** A read (or `open()`) that raises is what the daemon survives: the scheduler logs it
  once per streak and retries with exponential backoff (interval, 2x, 4x, ... capped at 300 s or
  the interval), and this backoff runs in virtual time too, so the retries land at 0, 1, 3, 7 s...
  for `interval_s = 1`. Each failed attempt is counted in `failures`, its message (a
  `SensorError`'s text, else `Type: text`, as in the scheduler's log line) is in `errors` and
  the time it was due in `failed_at`. `reads=N` counts attempts,
  failed ones included, so a sensor that always fails still ends.
- **Changing the world mid-run.** `at={t: action}` calls `action()` once virtual time reaches
  `t` seconds after the start, before any read due at `t` or later, while no read is running:
  change a chip model's temperature, unplug it (`bus.detach`), `bus.fail_next()`, drive a pin.
- **Lifecycle.** The harness owns the sensor for the run: the scheduler opens it on the first
  tick and `close()` has run when `run_sensor` returns. `timeout_s` is real time (the scheduler
  waits for the worker thread with asyncio): lower it to test a read that hangs.
- **Not covered:** batching by age or size, the offline buffer and MQTT delivery (one batch is
  sealed at the end, with `seq` 0); `per_channel` publishing.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sensord.batch import Batcher
from sensord.config import SensorSpec
from sensord.encoding import ENCODINGS, Encoding, decode, get_encoding
from sensord.errors import ConfigError
from sensord.filters import FilterFactory, build_sensor_filters, builtin_filters
from sensord.filters.channels import filtered_channels
from sensord.hardware import Hardware
from sensord.pipeline import Pipeline
from sensord.scheduler import Scheduler, error_text
from sensord.schema import build_options
from sensord.sensor import Channel, Reading, Sample, Sensor, SensorConfig, Value, declared_channels

from .clock import FakeClock

__all__ = ["HarnessResult", "Stage", "run_sensor"]

T = TypeVar("T")

#: Which list of a `HarnessResult` a helper looks at.
Stage = Literal["raw", "filtered", "decoded"]

#: The file name in `ConfigError` messages about options and filters given to `run_sensor`.
HARNESS_FILE = "<harness>"
#: The node id of the batch the harness encodes.
HARNESS_NODE = "harness"
_PATH = "sensor[0]"
# Keys of a [[sensor]] table that are run_sensor arguments, not the sensor type's options.
_COMMON_KEYS = {"name": "name", "type": None, "interval_s": "interval_s", "timeout_s": "timeout_s",
                "filters": "filters", "channel_filters": "channel_filters", "enabled": None, "urgent": None}
# How much longer than timeout_s to wait (real time) for the scheduler to come back from a read.
_SETTLE_SLACK_S = 5.0


@dataclass(frozen=True)
class HarnessResult:
    """What one `run_sensor` run produced, stage by stage.

    `raw`: every sample the scheduler stamped (polled reads and pushes), in order. `filtered`: those
    that passed the filters, with filtered values. `payload`: `filtered` sealed as one batch (b""
    when nothing passed: the daemon never sends an empty batch). `decoded`: the samples decoded
    from `payload`, sorted by time as every decoder returns them.
    """

    raw: list[Sample]
    filtered: list[Sample]
    payload: bytes
    decoded: list[Sample]
    #: Failed read attempts (an `open()` that raised counts as one), as the scheduler counts them.
    failures: int
    #: One message per failed attempt, as in the scheduler's log line (`SensorError` text, else `Type: text`).
    errors: list[str]
    #: When each failed attempt was due, in seconds after the start.
    failed_at: list[float] = field(default_factory=list)
    #: Successful reads (pushes from `watch()` are not reads).
    reads: int = 0
    #: Wall-clock (epoch) time of the start: the stamp of the first read.
    t0: float = 0.0
    #: The encoding of `payload`.
    encoding: str = "compact"
    #: The sensor's declared channels by quantity, with the resolution after the filters: what the
    #: encoder was told. Empty when `channels()` declares none (or raised before `open()`).
    channels: dict[str, Channel] = field(default_factory=dict)

    def samples(self, stage: Stage = "filtered", quantity: str | None = None) -> list[Sample]:
        """The samples of `stage` ("raw", "filtered" or "decoded"), of one quantity if given."""
        if stage not in ("raw", "filtered", "decoded"):
            raise ValueError(f'stage: expected "raw", "filtered" or "decoded", found {stage!r}')
        chosen: list[Sample] = getattr(self, stage)
        return chosen if quantity is None else [s for s in chosen if s.quantity == quantity]

    def values(self, quantity: str, stage: Stage = "filtered") -> list[Value]:
        """The values of channel `quantity` at `stage` (default: after the filters), in order."""
        return [s.value for s in self.samples(stage, quantity)]

    def times(self, quantity: str, stage: Stage = "filtered") -> list[float]:
        """When each value of `quantity` at `stage` was stamped, in seconds after the start (to 1 µs)."""
        return [round(s.ts - self.t0, 6) for s in self.samples(stage, quantity)]

    @property
    def quantities(self) -> list[str]:
        """The quantities in `raw`, in order of first appearance."""
        return list(dict.fromkeys(s.quantity for s in self.raw))

    @property
    def lossless(self) -> bool:
        """The batch decodes to exactly `filtered`: per channel and unit the same values (booleans
        stay booleans) at the same milliseconds, the wire's time precision."""
        return _series(self.filtered) == _series(self.decoded)


def _series(samples: Sequence[Sample]) -> dict[tuple[str, str, str], list[tuple[bool, Value, int]]]:
    out: dict[tuple[str, str, str], list[tuple[bool, Value, int]]] = {}
    for s in samples:
        out.setdefault((s.sensor, s.quantity, s.unit), []).append(
            (isinstance(s.value, bool), s.value, round(s.ts * 1000)))
    return out


def run_sensor(sensor: type[Sensor] | Sensor, options: Mapping[str, Any] | SensorConfig | None = None, *,
               hardware: Hardware | None = None, interval_s: float = 1.0, reads: int | None = None,
               duration_s: float | None = None, filters: list[Any] | None = None,
               channel_filters: dict[str, Any] | None = None, encoding: str | Encoding = "compact",
               clock: FakeClock | None = None, name: str = "dut",
               at: Mapping[float, Callable[[], object]] | None = None, timeout_s: float = 10.0,
               filter_types: Mapping[str, FilterFactory] | None = None) -> HarnessResult:
    """Run `sensor` through scheduler, filters and encoder on virtual time; see the module docstring.

    `sensor` is a `Sensor` class, built here from `options` (a dict of its `[[sensor]]` keys,
    checked as the daemon checks them, so a bad value raises the `ConfigError` a user would get,
    with file `<harness>` and key path `sensor[0]`; or a ready `Config` instance) on `hardware`
    (default: an empty `fake_hardware()`, closed afterwards), named `name`. Or it is a sensor
    instance, whose own config, name and hardware are used (then give no `options`).

    Give exactly one of `reads` (read attempts, failed ones included) or `duration_s` (the reads
    due in `[0, duration_s)`). `filters` and `channel_filters` are the TOML lists and tables as
    Python values (`[{"delta": 0.5}]`), built from the built-in filters plus `filter_types`.
    `encoding` is a built-in encoding's name or an `Encoding` object (a plugin's). `clock`
    defaults to a new `FakeClock`; pass the one a chip model reads. `at` maps seconds after the
    start to actions (see the module docstring).

    Raises `ConfigError` for bad options or filters, `ValueError` / `TypeError` for bad
    arguments, the exception of a filter or an encoder that fails, and `TimeoutError` if the
    scheduler does not come back from a read within `timeout_s` + 5 s of real time.
    """
    if (reads is None) == (duration_s is None):
        raise TypeError("run_sensor: give exactly one of reads= or duration_s=")
    if reads is not None and (not isinstance(reads, int) or isinstance(reads, bool) or reads < 1):
        raise ValueError(f"reads: expected an integer >= 1, found {reads!r}")
    for key, number in (("interval_s", interval_s), ("duration_s", duration_s), ("timeout_s", timeout_s)):
        if number is not None and not (isinstance(number, int | float) and math.isfinite(number) and number > 0):
            raise ValueError(f"{key}: expected a number > 0, found {number!r}")
    actions = sorted((at or {}).items(), key=lambda item: item[0])
    for t, action in actions:
        if not (isinstance(t, int | float) and math.isfinite(t) and t >= 0) or not callable(action):
            raise ValueError(f"at: expected seconds >= 0 mapped to callables, found {t!r}: {action!r}")
    codec = get_encoding(encoding) if isinstance(encoding, str) else encoding

    own_hardware: Hardware | None = None
    if isinstance(sensor, Sensor):
        if options is not None:
            raise TypeError("run_sensor: options= is for a sensor class; this instance has its config")
        instance = sensor
    elif isinstance(sensor, type) and issubclass(sensor, Sensor):
        config = _options(sensor, {} if options is None else options)
        if hardware is None:
            from .pins import fake_hardware

            hardware = own_hardware = fake_hardware()
        instance = sensor(config, name=name, hardware=hardware)
    else:
        raise TypeError(f"run_sensor: expected a Sensor class or instance, found {sensor!r}")

    registry = {**builtin_filters(), **(filter_types or {})}
    chains = build_sensor_filters(filters, channel_filters, path=_PATH, file=HARNESS_FILE, registry=registry)
    spec = SensorSpec(index=0, name=instance.name, type=instance.type_name, interval_s=float(interval_s),
                      options=instance.config, timeout_s=float(timeout_s), filters=chains)
    # What the daemon does before starting: check channel_filters keys and note each channel's
    # resolution after the filters, from channels() called before open().
    chains.check_channels(c.quantity for c in declared_channels(instance))
    channels = {c.quantity: c for c in filtered_channels(chains, instance)}
    # The daemon's own filter → batch → encode → seal, into a list: one batch (seq 0) at the end.
    store = _OneBatch()
    pipeline = Pipeline(store, node=HARNESS_NODE, batcher=_whole_run_batcher(), encoding=codec,
                        encodings={**ENCODINGS, codec.name: codec}, strict=True)
    pipeline.configure([(spec.name, chains, instance)], node=HARNESS_NODE, batcher=pipeline.batcher,
                       encoding=codec, encodings=pipeline.encodings)

    run = _Run(spec, instance, pipeline, clock or FakeClock(), reads=reads, duration_s=duration_s, actions=actions)
    hw = instance.hardware
    own_sleep = hw.sleep
    hw.sleep = run.virtual_sleep(own_sleep)
    threads_before = set(threading.enumerate())
    try:
        asyncio.run(run.drive())
    finally:
        hw.sleep = own_sleep
        # The scheduler queues close() on the sensor's worker thread without waiting for it.
        for thread in set(threading.enumerate()) - threads_before:
            if thread.name == f"sensord-{spec.name}":
                thread.join(timeout=_SETTLE_SLACK_S)
        if own_hardware is not None:
            own_hardware.close()

    pipeline.seal(final=True)
    payload, decoded = store.payload, []
    if payload:
        decoded = decode(payload, pipeline.encodings).samples
    return HarnessResult(raw=run.raw, filtered=run.filtered, payload=payload, decoded=decoded,
                         failures=run.failures, errors=run.errors, failed_at=run.failed_at, reads=run.reads,
                         t0=run.t0, encoding=codec.name, channels=channels)


def _options(cls: type[Sensor], options: Mapping[str, Any] | SensorConfig) -> SensorConfig:
    """The sensor type's config from a `[[sensor]]`-style dict, with the daemon's messages."""
    if isinstance(options, SensorConfig):
        if not isinstance(options, cls.Config):
            raise TypeError(f"run_sensor: options is a {type(options).__name__}, "
                            f"expected a dict or a {cls.Config.__name__}")
        return options
    if not isinstance(options, Mapping):
        raise TypeError(f"run_sensor: options: expected a dict of the sensor's keys, found {options!r}")
    for key in options:
        if key in _COMMON_KEYS:
            argument = _COMMON_KEYS[key]
            where = f"pass {argument}= to run_sensor" if argument else "run_sensor does not use it"
            raise ConfigError(f"{HARNESS_FILE}: {_PATH}.{key}: a key of every [[sensor]] table, not "
                              f"an option of {cls.type_name or cls.__name__}: {where}")
    config: SensorConfig = build_options(cls.Config, dict(options), _PATH, HARNESS_FILE)
    return config


class _OneBatch:
    """The pipeline's store in the harness: keeps the one batch sealed at the end, as seq 0."""

    def __init__(self) -> None:
        self.payload = b""

    def seal(self, encode: Callable[[int], bytes], *, readings: int, first_ts: float) -> int | None:
        assert not self.payload, "the harness seals one batch"
        self.payload = encode(0)
        return 0

    def stage(self, data: bytes, *, readings: int) -> bool:
        return True

    def staging_needed(self) -> bool:
        return False

    def tick_at(self) -> float | None:
        return None

    def tick(self) -> None:
        pass


def _whole_run_batcher() -> Batcher:
    """A batch that is never due, never full: sealed once, when the run is over."""
    return Batcher(max_age_s=math.inf, max_readings=sys.maxsize, max_bytes=sys.maxsize)


class _TrackingClock:
    """The scheduler's clock: a `FakeClock` that also tells the harness when the sensor's task
    has parked, and until when (the time its next read is due)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.deadline = clock.monotonic()
        self.parked = asyncio.Event()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def time(self) -> float:
        return self.clock.time()

    async def sleep_until(self, deadline: float) -> None:
        self.deadline = deadline
        if deadline > self.clock.monotonic():
            # Set before parking; the harness runs only once this task has reached the await below.
            self.parked.set()
        await self.clock.sleep_until(deadline)


class _Recorder(Sensor):
    """The sensor under test as the scheduler sees it: delegates, and keeps what
    `open`, `watch` and `read` raised so `errors` can name the exception type."""

    def __init__(self, inner: Sensor) -> None:
        super().__init__(inner.config, name=inner.name, hardware=inner.hardware)
        self.inner = inner
        self.raised: list[Exception] = []  # appended in the worker thread, read between reads

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:
            self.raised.append(exc)
            raise

    def channels(self) -> list[Channel]:
        return self.inner.channels()

    def open(self) -> None:
        self._call(self.inner.open)

    def watch(self, emit: Callable[[list[Reading]], None]) -> None:
        self._call(lambda: self.inner.watch(emit))

    def read(self) -> list[Reading]:
        return self._call(self.inner.read)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()


class _Run:
    """One harness run: drives the scheduler one read at a time and collects what comes out."""

    def __init__(self, spec: SensorSpec, sensor: Sensor, pipeline: Pipeline, clock: FakeClock, *,
                 reads: int | None, duration_s: float | None,
                 actions: list[tuple[float, Callable[[], object]]]) -> None:
        self.spec = spec
        self.sensor = _Recorder(sensor)
        self.pipeline = pipeline
        self.clock = clock
        self.want_reads = reads
        self.duration_s = duration_s
        self.actions = list(actions)
        self.raw: list[Sample] = []
        self.filtered: list[Sample] = []
        self.errors: list[str] = []
        self.failed_at: list[float] = []
        self.failures = 0
        self.reads = 0
        self.t0 = clock.time()
        self.start = clock.monotonic()
        self._sink_error: Exception | None = None
        self._settle_s = spec.timeout_s + _SETTLE_SLACK_S

    def virtual_sleep(self, own: Callable[[float], None]) -> Callable[[float], None]:
        """The hardware's sleep for the run: advance virtual time, then the hardware's own sleep
        (a chip model's `advance`, a recorder) unless that one would really sleep."""
        clock = self.clock

        def sleep(seconds: float) -> None:
            if seconds > 0:
                clock.advance(seconds)
            if own is not time.sleep:
                own(seconds)

        return sleep

    def sink(self, samples: Sequence[Sample]) -> None:
        """The scheduler's sink: the daemon's pipeline, which keeps the batch open until the end."""
        if self._sink_error is not None:
            return
        try:
            self.raw.extend(samples)
            self.filtered.extend(self.pipeline.add(samples))
        except Exception as exc:  # a filter's bug: raised from run_sensor, not in the scheduler
            self._sink_error = exc

    async def drive(self) -> None:
        self.start, self.t0 = self.clock.monotonic(), self.clock.time()
        self._run_actions(0.0)
        tracking = _TrackingClock(self.clock)
        scheduler = Scheduler([(self.spec, self.sensor)], sink=self.sink, clock=tracking)
        task = asyncio.create_task(scheduler.run(), name="harness-scheduler")
        try:
            await self._parked(tracking, task)  # the read due at 0 is done
            self._account(scheduler, 0.0)
            while self.want_reads is None or self.reads + self.failures < self.want_reads:
                due = tracking.deadline - self.start
                if self.duration_s is not None and due >= self.duration_s - 1e-9:
                    self._run_actions(self.duration_s, before=True)
                    self.clock.advance(max(0.0, self.start + self.duration_s - self.clock.monotonic()))
                    break
                self._run_actions(due)
                await self.clock.run_until(tracking.deadline, sleepers=0)  # wakes the one read due
                await self._parked(tracking, task)
                self._account(scheduler, round(due, 6))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.actions:
            t, _ = self.actions[0]
            ended = round(self.clock.monotonic() - self.start, 6)
            raise ValueError(f"at: the action due at {t:g} s never ran: the run ended at {ended:g} s")

    async def _parked(self, tracking: _TrackingClock, task: asyncio.Task[None]) -> None:
        """Wait (real time) until the sensor's task parks again, i.e. its read is over."""
        waiter = asyncio.ensure_future(tracking.parked.wait())
        done, _ = await asyncio.wait({waiter, task}, timeout=self._settle_s, return_when=asyncio.FIRST_COMPLETED)
        tracking.parked.clear()
        if task in done:
            waiter.cancel()
            task.result()  # re-raise what stopped the scheduler
            raise RuntimeError("the scheduler stopped on its own")
        if waiter not in done:
            waiter.cancel()
            raise TimeoutError(f"{self.sensor.describe()}: the scheduler did not come back from a read "
                               f"within {self._settle_s:g} s of real time")
        if self._sink_error is not None:
            raise self._sink_error

    def _run_actions(self, until: float, *, before: bool = False) -> None:
        """Run the actions due at or before `until` (before: strictly before) seconds after the
        start, each once virtual time is at its due time."""
        while self.actions and (self.actions[0][0] < until or (not before and self.actions[0][0] <= until)):
            t, action = self.actions.pop(0)
            self.clock.advance(max(0.0, self.start + t - self.clock.monotonic()))
            action()

    def _account(self, scheduler: Scheduler, due: float) -> None:
        """Note the outcome of the read attempt that was due at `due` seconds."""
        stats = scheduler.stats[self.spec.name]
        self.reads = stats.reads
        if stats.failed_total == self.failures:
            return
        self.failures = stats.failed_total
        raised = self.sensor.raised
        # The driver's own exception when it is the one the scheduler saw (not a timeout or a
        # bad return value, which the scheduler raises itself).
        exc = raised[-1] if raised and str(raised[-1]) == stats.last_error else None
        raised.clear()
        self.errors.append(error_text(exc) if exc is not None else stats.last_error)
        self.failed_at.append(due)

