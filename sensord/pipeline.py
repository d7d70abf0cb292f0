"""The pipeline: a read's samples → filters → the open batch → one encoded payload → sealed in a store.

The daemon and `sensord.testing`'s harness both run it, so a plugin author's harness test goes
through the same filter, batch and encode code as a node. What it does not do: read sensors (the
scheduler hands it samples), keep batches (the store: the SQLite buffer in the daemon, a list in
the harness) or deliver them (the publisher).

While the store cannot write (disk full, card gone read-only), readings wait in memory (bounded by
`memory_max_readings`, the oldest dropped beyond it) and sealing is retried once per
`commit_interval_s`, a batch of `max_readings` at a time, never once per reading, so reading goes
on at the configured rate. What is still in memory at a stop is counted by `count_lost()`.

While the clock is not synchronised (`timebase`, sensord.timebase), the open batch is held (not
sealed) until the sync or `timebase.hold_until`, so its readings get their true time; a batch
sealed before the sync is flagged `unsynced` on the wire (docs/clock.md).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from .batch import Batcher
from .encoding import (
    DEFAULT_ENCODING,
    ENCODINGS,
    ChannelInfo,
    ChannelKey,
    EncodeError,
    Encoding,
    channel_info,
    encode_batch,
)
from .filters import ChannelFilters
from .filters.channels import filtered_channels
from .sensor import Sample, Sensor
from .staging import encode_samples, sample_problem
from .timebase import TimeBase

log = logging.getLogger(__name__)

# While the store cannot write, readings wait in memory in the open batch, about 130 bytes each:
# past this many the oldest are dropped (some 32 MiB).
MEMORY_MAX_READINGS = 250_000


class Store(Protocol):
    """Where sealed batches go: `sensord.buffer.Buffer`, or the harness's list."""

    def seal(self, encode: Callable[[int], bytes], *, readings: int, first_ts: float) -> int | None:
        """Store `encode(seq)` under the next sequence number; None when storage refused (the
        store has logged why)."""
        ...

    def stage(self, data: bytes, *, readings: int) -> bool:
        """Keep `data` (samples of the open batch) until the next seal; False when refused."""
        ...

    def staging_needed(self) -> bool:
        """Whether to stage the open batch every commit interval (the buffer: not while the
        broker takes every batch promptly, in its "undelivered" durability)."""
        ...

    def tick_at(self) -> float | None:
        """When (`time.monotonic()`) `tick` has something to do, or None (the buffer: when its
        oldest batch held in memory has waited `commit_interval_s` for the broker)."""
        ...

    def tick(self) -> None:
        """At `tick_at`, and every commit interval while staging is needed, before staging."""
        ...


class _TooLarge(Exception):
    """An encoded batch is over `max_bytes`: seal it in two halves instead."""


class Pipeline:
    """Filters, batcher and encoder of one node. `configure()` starts each generation (the start,
    then every reload); the open batch, the store's retry state and the counts survive it.

    `strict` (the harness): an encoder error raises instead of being worked around (the daemon
    drops a sample no encoding carries, naming its channel once, and falls back to the default
    encoding for a batch a format cannot carry), so a plugin author sees it."""

    def __init__(self, store: Store, *, node: str, batcher: Batcher, encoding: str | Encoding = DEFAULT_ENCODING,
                 encodings: Mapping[str, Encoding] | None = None, commit_interval_s: float = 1.0,
                 memory_max_readings: int = MEMORY_MAX_READINGS, on_sealed: Callable[[], None] = lambda: None,
                 on_samples: Callable[[Sequence[Sample]], None] | None = None, strict: bool = False,
                 timebase: TimeBase | None = None) -> None:
        """`on_sealed()` runs after each seal; `on_samples(samples)` gets the samples of each sealed
        batch (Home Assistant's state message takes the latest values from them). `timebase`:
        whether the samples' times are true yet (default: they are)."""
        self.store = store
        self.node = node
        self.batcher = batcher
        self.encoding = encoding
        self.encodings: Mapping[str, Encoding] = ENCODINGS if encodings is None else encodings
        self.commit_interval_s = commit_interval_s
        self.memory_max_readings = memory_max_readings
        self.on_sealed = on_sealed
        self.on_samples = on_samples
        self.strict = strict
        self.timebase = timebase or TimeBase.trusted()
        self.filters: dict[str, ChannelFilters] = {}  # sensor name → this generation's filter state
        self.urgent: frozenset[str] = frozenset()
        self.channels: dict[ChannelKey, ChannelInfo] = {}
        self.dropped_in_memory = 0  # readings dropped while the store could not write
        self.seal_retry_at = 0.0  # monotonic; after a refused seal, no new attempt before this
        self._unsealable: set[str] = set()  # channels whose bad values were named
        self._kicked: Callable[[], None] = lambda: None  # wakes flush_forever to look again
        self.on_urgent: Callable[[], None] = lambda: None  # a reading of an urgent sensor passed (the publisher)

    def configure(self, sensors: Sequence[tuple[str, ChannelFilters, Sensor]], *, node: str, batcher: Batcher,
                  encoding: str | Encoding, encodings: Mapping[str, Encoding] | None = None,
                  urgent: Iterable[str] = (), commit_interval_s: float = 1.0) -> None:
        """Start a generation: `sensors` as (name, filter chains, sensor). Every chain starts
        afresh (each channel's first value passes); readings still in the open batch (a reload
        while the store could not write them) are carried over into `batcher`."""
        if self.batcher is not batcher:
            batcher.carry_over(self.batcher)
        self.batcher = batcher
        self.node = node
        self.filters = {name: chains.fresh() for name, chains, _ in sensors}
        self.urgent = frozenset(urgent)
        self.channels = channel_table((name, chains, sensor) for name, chains, sensor in sensors)
        self.encoding = encoding
        self.encodings = ENCODINGS if encodings is None else encodings
        self.commit_interval_s = commit_interval_s

    # -- in ---------------------------------------------------------------------------------------

    def add(self, samples: Sequence[Sample]) -> list[Sample]:
        """One read of one sensor: filter it, add what passes to the open batch, seal when the
        batch is full or the sensor is urgent. Returns what passed the filters."""
        if not samples:
            return []
        sensor = samples[0].sensor
        now = time.monotonic()
        # After a refused seal, only the flusher retries (once per commit interval): sealing the
        # whole overgrown batch again for every new reading would starve the reading itself.
        may_seal = now >= self.seal_retry_at and not self.holding()
        due = self.batcher.due_at()
        if may_seal and due is not None and due <= now:
            self.seal()  # the batch is due: this reading opens the next one (the flusher may not have run yet)
            may_seal = now >= self.seal_retry_at
        passed = self.filters[sensor].apply(samples)
        if not passed:
            return passed
        fresh = not self.batcher.has_unstaged()  # the first reading to stage (and maybe of the batch)
        if (self.batcher.add(passed) or sensor in self.urgent) and may_seal:
            self.seal()
        if sensor in self.urgent:
            self.on_urgent()
        if fresh:
            self._kicked()  # a deadline may have appeared: the batch's age, a stage
        return passed

    # -- out --------------------------------------------------------------------------------------

    def seal(self, *, final: bool = False) -> bool:
        """Seal the open batch, `max_readings` at a time (it outgrows that while storage refuses).

        On a refusal the rest stays in memory (bounded), and no seal is tried again for a commit
        interval; the store logs the failure streak once. `final` (at a stop or reload): one
        attempt regardless of that."""
        now = time.monotonic()
        if not final and (now < self.seal_retry_at or self.holding()):
            return False
        self.timebase.poll()  # a sync since the last read corrects the batch before it is sealed
        samples = self.batcher.pending()
        step = max(1, self.batcher.max_readings)
        for start in range(0, len(samples), step):
            if not self.seal_samples(samples[start:start + step]):
                if start:
                    self.batcher.discard_sealed(start)
                self.seal_retry_at = time.monotonic() + self.commit_interval_s
                self._bound_memory()
                return False
        self.seal_retry_at = 0.0
        if self.dropped_in_memory:
            log.warning("the buffer stores again; %d readings were dropped while it could not",
                        self.dropped_in_memory)
            self.dropped_in_memory = 0
        self.batcher.clear()
        return True

    def seal_samples(self, samples: list[Sample], *, unsynced: bool | None = None) -> bool:
        """Seal `samples` as one batch, or several when the payload would pass `max_bytes`.
        `unsynced`: their times are provisional (default: while the clock is not synchronised)."""
        if unsynced is None:
            unsynced = not self.timebase.synced
        samples = self._sealable(samples)
        if not samples:
            return True
        max_bytes = self.batcher.max_bytes

        def encode(seq: int) -> bytes:
            payload = self.encode(seq, samples, unsynced=unsynced)
            self.batcher.observe(len(samples), len(payload))
            if len(payload) > max_bytes and len(samples) > 1:
                raise _TooLarge  # the store rolls the seal back; encoded once in the usual case
            return payload

        try:
            seq = self.store.seal(encode, readings=len(samples), first_ts=samples[0].ts)
        except _TooLarge:
            half = len(samples) // 2
            return (self.seal_samples(samples[:half], unsynced=unsynced)
                    and self.seal_samples(samples[half:], unsynced=unsynced))
        if seq is None:
            return False  # storage refused; the store logged it, the samples stay in memory
        if self.on_samples is not None:
            self.on_samples(samples)
        self.on_sealed()
        self._kicked()  # a batch held in memory has a deadline the flusher must know of
        return True

    def encode(self, seq: int, samples: Sequence[Sample], *, unsynced: bool = False) -> bytes:
        """One batch payload in this generation's encoding (the default one for a batch that
        encoding cannot carry, unless strict)."""
        try:
            return encode_batch(self.node, seq, samples, encoding=self.encoding, channels=self.channels,
                                encodings=self.encodings, unsynced=unsynced)
        except EncodeError as exc:
            if self.strict or getattr(self.encoding, "name", self.encoding) == DEFAULT_ENCODING:
                raise
            # Never lose readings to a format's limits (e.g. a name SenML cannot carry).
            log.warning("cannot encode a batch as %s (%s); sending it as %s", self.encoding, exc, DEFAULT_ENCODING)
            return encode_batch(self.node, seq, samples, channels=self.channels, unsynced=unsynced)

    def stage(self) -> None:
        """Write the open batch's new readings to the store's staging area (every commit interval)."""
        chunk = self.batcher.unstaged()
        if chunk and self.store.stage(encode_samples(chunk, frame=self.timebase.frame()), readings=len(chunk)):
            self.batcher.mark_staged()

    def holding(self) -> bool:
        """Whether the open batch is held for the clock's sync (never past `memory_max_readings`)."""
        return self.timebase.holding() and len(self.batcher) < self.memory_max_readings

    def count_lost(self) -> int:
        """At a stop, after the final seal: the readings that could not be stored and are lost
        (those dropped earlier to bound memory included); staged ones are on disk already."""
        return len(self.batcher.unstaged()) + self.dropped_in_memory

    def kick(self) -> None:
        """The store's needs changed (the link failed, a batch is held): `flush_forever` looks
        again now instead of at its next deadline. Call on the event loop."""
        self._kicked()

    async def flush_forever(self) -> None:
        """Seal the open batch when it is due; tick the store when it asks (`tick_at`: a batch
        held in memory waited too long for its PUBACK); while the store wants the open batch
        staged (or the batch is held for the clock's sync), stage new readings at most one commit
        interval after they arrived and at most once per commit interval.

        Sleeps until the next of those deadlines, or until `kick()` (the link failed, a batch
        was sealed) or `add()` brings the first reading not yet staged: no timer runs while there
        is nothing to do. A reading that comes a commit interval or more after the last stage is
        staged at once, in the wake-up of the read that brought it (the start counts as a stage)."""
        import asyncio  # here: only this flush loop needs it

        loop = asyncio.get_running_loop()
        batcher = self.batcher
        commit_s = self.commit_interval_s
        # The last stage (or clock poll, or store tick), monotonic. The start counts as one: the
        # first readings wait up to a commit interval, which the guarantee allows, and a link that
        # comes up within it (the usual start) leaves nothing to stage: no write at each start.
        ticked_at = time.monotonic()
        try:
            while True:
                kicked: asyncio.Future[None] = loop.create_future()
                self._kicked = functools.partial(_resolve, kicked)
                now = time.monotonic()
                due = batcher.due_at()
                if due is not None and len(batcher) >= batcher.max_readings:
                    due = now  # full, yet not sealed: storage refused it
                if due is not None:
                    due = max(due, self.seal_retry_at)  # storage refused: retry at the next commit interval
                    if self.holding():
                        due = max(due, self.timebase.hold_until)
                if due is not None and due <= now:
                    if self.seal():
                        continue
                    due = self.seal_retry_at
                holding = self.holding()
                # Readings held for the clock's sync cannot be delivered yet: staged as if the link
                # failed, and the sync source asked each commit interval (a sensor read seldom).
                staging = self.store.staging_needed() or holding
                stage_at = ticked_at + commit_s if staging and batcher.has_unstaged() else None
                poll_at = ticked_at + commit_s if holding else None
                store_at = self.store.tick_at()
                if any(t is not None and t <= now for t in (stage_at, poll_at, store_at)):
                    if holding:
                        self.timebase.poll()
                    self.store.tick()
                    # While seals are refused, their retries are the writes.
                    if not self.seal_retry_at and (self.store.staging_needed() or self.holding()):
                        self.stage()
                    ticked_at = now
                    continue  # the tick may have changed what the store needs
                deadlines = [t for t in (due, stage_at, poll_at, store_at) if t is not None]
                # asyncio.wait, not wait_for: Python 3.11's wait_for can swallow the cancel that ends this task.
                await asyncio.wait({kicked}, timeout=max(0.0, min(deadlines) - time.monotonic()) if deadlines else None)
        finally:
            self._kicked = lambda: None

    def _sealable(self, samples: list[Sample]) -> list[Sample]:
        """`samples` less those no encoding can carry, each channel named once per run: the
        scheduler lets none through, but a plugin filter's output or an old staged chunk could."""
        if self.strict:
            return samples
        kept = []
        for sample in samples:
            problem = sample_problem(sample)
            if problem is None:
                kept.append(sample)
                continue
            channel = f"{sample.sensor!r}/{sample.quantity!r}"
            if channel not in self._unsealable:
                self._unsealable.add(channel)
                log.warning("dropping a reading no encoding can carry (once per channel): %s", problem)
        return kept

    def _bound_memory(self) -> None:
        dropped = self.batcher.drop_oldest(self.memory_max_readings)
        if dropped and not self.dropped_in_memory:
            log.warning("the buffer cannot store and %d readings wait in memory: dropping the oldest "
                        "beyond that until it stores again", self.memory_max_readings)
        self.dropped_in_memory += dropped


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


def channel_table(sensors: Iterable[tuple[str, ChannelFilters, Sensor]]) -> dict[ChannelKey, ChannelInfo]:
    """Unit and resolution (after the filters) of every channel, for the encoder."""
    return channel_info((name, filtered_channels(chains, sensor)) for name, chains, sensor in sensors)
