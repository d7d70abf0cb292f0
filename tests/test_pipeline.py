"""The pipeline while the buffer cannot store (disk full): readings wait in memory, bounded."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from daemon_harness import write_config

from sensord import startup
from sensord.batch import Batcher
from sensord.buffer import Buffer
from sensord.daemon import Daemon
from sensord.encoding import decode
from sensord.filters import ChannelFilters
from sensord.pipeline import Pipeline
from sensord.sensor import Sample

T = 1_700_000_000.0


def test_memory_is_bounded_while_the_buffer_cannot_store(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1, max_age_s=3600)
    daemon = Daemon(str(cfg), startup.load(str(cfg), entry_points=False), memory_max_readings=100)
    daemon.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 20)
    pipeline = _pipeline(daemon, Batcher(max_age_s=3600, max_readings=10_000))
    # Buffer.seal returns None when storage refuses the write (tests/test_buffer.py shows it for
    # SQLITE_FULL); here it refuses until `full` is cleared.
    full = [True]
    seal = daemon.buffer.seal
    monkeypatch.setattr(daemon.buffer, "seal", lambda *a, **kw: None if full[0] else seal(*a, **kw))
    caplog.set_level(logging.INFO, logger="sensord")

    for i in range(250):
        pipeline.add([Sample("c0", "value", float(i), "", T + i)])
        if i % 50 == 49:
            pipeline.seal_retry_at = 0.0  # a commit interval has passed: the flusher retries
            assert pipeline.seal() is False
    assert len(pipeline.batcher) == 100  # the newest 100: 150..249 (the last seal left 100 of 200)
    assert [s.value for s in pipeline.batcher.pending()] == [float(i) for i in range(150, 250)]

    full[0] = False
    pipeline.seal_retry_at = 0.0
    assert pipeline.seal() is True
    (batch,) = daemon.buffer.peek(10)
    assert [s.value for s in decode(batch.payload).samples] == [float(i) for i in range(150, 250)]
    daemon.buffer.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "sensord.pipeline" and r.levelno == logging.WARNING]
    assert warnings == ["the buffer cannot store and 100 readings wait in memory: dropping the oldest beyond that "
                        "until it stores again",
                        "the buffer stores again; 150 readings were dropped while it could not"]


def _pipeline(daemon: Daemon, batcher: Batcher) -> Pipeline:
    """The daemon's pipeline as `run()` makes it, with `batcher` and the config's filter chains."""
    assert daemon.buffer is not None
    daemon.pipeline = Pipeline(daemon.buffer, node=daemon.config.node.id, batcher=batcher,
                               commit_interval_s=daemon.config.buffer.commit_interval_s,
                               memory_max_readings=daemon.memory_max_readings)
    daemon.pipeline.filters = {spec.name: spec.filters.fresh() for spec in daemon.config.enabled_sensors}
    return daemon.pipeline


def _daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full: list[bool], calls: list[int], *,
            max_readings: int = 100) -> Daemon:
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1, max_age_s=3600, commit_interval_s=60)
    daemon = Daemon(str(cfg), startup.load(str(cfg), entry_points=False))
    daemon.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 20)
    _pipeline(daemon, Batcher(max_age_s=3600, max_readings=max_readings))
    seal = daemon.buffer.seal

    def refusing(*args: object, **kwargs: object) -> int | None:
        calls.append(1)
        return None if full[0] else seal(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(daemon.buffer, "seal", refusing)
    return daemon


def test_a_refused_seal_is_retried_once_per_commit_interval_not_per_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full, calls = [True], []
    daemon = _daemon(tmp_path, monkeypatch, full, calls)
    pipeline = daemon.pipeline
    assert pipeline is not None and daemon.buffer is not None
    for i in range(1000):  # the batch is full at 100: one attempt, then none until the retry time
        pipeline.add([Sample("c0", "value", float(i), "", T + i)])
    assert len(calls) == 1
    assert len(pipeline.batcher) == 1000
    full[0] = False
    pipeline.seal_retry_at = 0.0  # the commit interval has passed
    assert pipeline.seal() is True
    # Sealed max_readings at a time: ten batches of 100, in order.
    batches = daemon.buffer.peek(20)
    assert [b.readings for b in batches] == [100] * 10
    assert [s.value for b in batches for s in decode(b.payload).samples] == [float(i) for i in range(1000)]
    daemon.buffer.close()


def test_readings_that_cannot_be_stored_at_a_stop_are_counted_in_one_error_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    full, calls = [True], []
    daemon = _daemon(tmp_path, monkeypatch, full, calls, max_readings=10_000)
    pipeline = daemon.pipeline
    assert pipeline is not None and daemon.buffer is not None
    for i in range(250):
        pipeline.add([Sample("c0", "value", float(i), "", T + i)])
    pipeline.dropped_in_memory = 20  # as if the memory bound had dropped some
    assert pipeline.seal(final=True) is False
    caplog.set_level(logging.INFO, logger="sensord")
    daemon._count_lost()
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error == (f"stopping: 270 readings could not be stored (storage refused writes at "
                     f"{tmp_path / 'buffer.db'}) and are lost (20 of them dropped earlier to bound memory)")
    assert daemon._lost == 270
    daemon.buffer.close()


class _RecordingStore:
    """A store that says whether it wants the open batch staged, and records what it is asked."""

    def __init__(self, *, wants_staging: bool) -> None:
        self.wants_staging = wants_staging
        self.ticks = 0
        self.asked = 0  # how often the flusher looked: once per wake-up
        self.staged: list[int] = []

    def seal(self, encode: object, *, readings: int, first_ts: float) -> int | None:
        return 1

    def stage(self, data: bytes, *, readings: int) -> bool:
        self.staged.append(readings)
        return True

    def staging_needed(self) -> bool:
        self.asked += 1
        return self.wants_staging

    def tick_at(self) -> float | None:
        return None

    def tick(self) -> None:
        self.ticks += 1


@pytest.mark.parametrize("wants_staging", [False, True])
def test_the_flusher_ticks_the_store_and_stages_only_when_it_asks(wants_staging: bool) -> None:
    """Asked to stage: every commit interval. Not asked, and no batch due: the flusher sleeps."""
    import asyncio

    store = _RecordingStore(wants_staging=wants_staging)
    pipeline = Pipeline(store, node="n1", batcher=Batcher(max_age_s=3600, max_readings=10_000),
                        commit_interval_s=0.01)
    pipeline.filters["c0"] = ChannelFilters.passthrough()

    async def run() -> None:
        task = asyncio.create_task(pipeline.flush_forever())
        for i in range(6):
            pipeline.add([Sample("c0", "value", float(i), "", T + i)])
            await asyncio.sleep(0.012)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    if wants_staging:
        assert store.ticks >= 3  # once per commit interval
        assert store.staged and sum(store.staged) + len(pipeline.batcher.unstaged()) == 6
    else:
        assert store.ticks == 0 and store.staged == [] and len(pipeline.batcher) == 6  # in memory only
        assert store.asked == 1  # it looked once and slept through 7 commit intervals


def _undelivered(tmp_path: Path, *, hold_s: float, commit_interval_s: float) -> tuple[Buffer, Pipeline]:
    """A real "undelivered" buffer and a pipeline of one passthrough channel `c0` whose batches
    seal at 3 readings, its flusher kicked by the buffer."""
    buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 20, durability="undelivered", hold_s=hold_s)
    pipeline = Pipeline(buffer, node="n1", batcher=Batcher(max_age_s=3600, max_readings=3),
                        commit_interval_s=commit_interval_s)
    pipeline.filters["c0"] = ChannelFilters.passthrough()
    buffer.changed = pipeline.kick
    return buffer, pipeline


def _on_disk(buffer: Buffer) -> tuple[int, int]:
    """(batches in the file, readings staged in it)."""
    return (buffer._conn.execute("SELECT COUNT(*) FROM batch").fetchone()[0],
            buffer._conn.execute("SELECT COALESCE(SUM(readings), 0) FROM staged").fetchone()[0])


def test_the_flusher_writes_a_held_batch_at_its_deadline_and_stages_once_the_link_fails(tmp_path: Path) -> None:
    import asyncio

    buffer, pipeline = _undelivered(tmp_path, hold_s=0.05, commit_interval_s=0.05)
    buffer.set_link(True)

    def on_disk() -> tuple[int, int]:
        return _on_disk(buffer)

    async def run() -> list[tuple[int, int]]:
        task = asyncio.create_task(pipeline.flush_forever())
        await asyncio.sleep(0)
        seen = []
        for i in range(3):  # a full batch: sealed by add(), held in memory
            pipeline.add([Sample("c0", "value", float(i), "", T + i)])
        seen.append(on_disk())
        await asyncio.sleep(0.15)  # no PUBACK within hold_s: written at its deadline
        seen.append(on_disk())
        buffer.ack(buffer.peek()[0].seq)  # the broker acknowledges again
        pipeline.add([Sample("c0", "value", 3.0, "", T + 3)])
        await asyncio.sleep(0.1)
        seen.append(on_disk())  # the open batch is not staged while the link delivers
        buffer.set_link(False)  # the flusher is kicked: it stages at once
        await asyncio.sleep(0.01)
        seen.append(on_disk())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    try:
        assert asyncio.run(run()) == [(0, 0), (1, 0), (0, 0), (0, 1)]
    finally:
        buffer.close()


def test_the_flusher_sleeps_while_there_is_nothing_to_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 13: no fixed-period timer. It wakes for a reading to stage or a batch to seal, and a
    # reading that comes a commit interval after the last write is staged in the read's own wake-up.
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1, max_age_s=3600, commit_interval_s=0.1)
    daemon = Daemon(str(cfg), startup.load(str(cfg), entry_points=False))
    daemon.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 20)
    pipeline = _pipeline(daemon, Batcher(max_age_s=3600, max_readings=1000))
    passes: list[float] = []  # one per turn of the flusher's loop
    due_at = pipeline.batcher.due_at
    monkeypatch.setattr(pipeline.batcher, "due_at", lambda: passes.append(time.monotonic()) or due_at())
    staged: list[int] = []
    stage = daemon.buffer.stage
    monkeypatch.setattr(daemon.buffer, "stage", lambda data, *, readings: staged.append(readings) or stage(
        data, readings=readings))

    async def main() -> None:
        flusher = asyncio.create_task(pipeline.flush_forever())
        await asyncio.sleep(0.3)
        assert len(passes) == 1  # parked with no deadline at all
        pipeline.add([Sample("c0", "value", 1.0, "", T)])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert staged == [1]  # at once: nothing was written for a commit interval
        pipeline.add([Sample("c0", "value", 2.0, "", T + 0.01)])
        await asyncio.sleep(0.01)
        assert staged == [1]  # too soon after the last write: it waits for the commit interval
        await asyncio.sleep(0.2)
        assert staged == [1, 1]
        turns = len(passes)
        await asyncio.sleep(0.3)
        assert len(passes) == turns  # the batch is due in an hour: nothing before that
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), 10))
    daemon.buffer.close()


def test_a_link_that_comes_up_within_the_first_commit_interval_leaves_nothing_to_write(tmp_path: Path) -> None:
    # Issue 13, item 1: the readings a node takes before its first CONNACK wait up to a commit
    # interval (what the guarantee allows); the link comes up within it, so nothing is staged and
    # the first batch is held in memory like the others. Staging them at once cost a write of
    # the first batch at every start (bench/delivery.py: 42 bytes per reading in its 60 s window).
    buffer, pipeline = _undelivered(tmp_path, hold_s=0.5, commit_interval_s=0.2)

    def on_disk() -> tuple[int, int]:
        return _on_disk(buffer)

    async def run() -> list[tuple[int, int]]:
        task = asyncio.create_task(pipeline.flush_forever())
        await asyncio.sleep(0)
        pipeline.add([Sample("c0", "value", 0.0, "", T)])  # read at start, before the CONNACK
        await asyncio.sleep(0.05)
        seen = [on_disk()]
        buffer.set_link(True)  # connected
        for i in (1, 2):
            pipeline.add([Sample("c0", "value", float(i), "", T + i)])  # the batch is full: sealed
        await asyncio.sleep(0.3)  # past the first commit interval
        seen.append(on_disk())
        seen.append((len(buffer.peek()), 0))  # held in memory, to be published
        buffer.set_link(False)  # the link fails: what is held goes to disk now
        seen.append(on_disk())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    try:
        assert asyncio.run(run()) == [(0, 0), (0, 0), (1, 0), (1, 0)]
    finally:
        buffer.close()
