"""The daemon with a clock that is wrong at start: recovery of staged readings, and end to end
through a real mosquitto. The wall clock and the sync state are injected; nothing sleeps for the
jump (the waits below are for readings and messages to arrive, at 0.1 s per read)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from daemon_harness import Node, assert_gapless, counter_values, readings, wait_until, write_config
from test_clock import DAYS, TRUE_EPOCH, Flag

from sensord import startup
from sensord.buffer import Buffer
from sensord.daemon import Daemon
from sensord.encoding import decode
from sensord.pipeline import Pipeline
from sensord.sensor import Sample
from sensord.staging import decode_chunk, encode_samples
from sensord.testing.broker import Subscription
from sensord.testing.clock import FakeClock
from sensord.timebase import TimeBase, read_boot_id

if TYPE_CHECKING:
    from sensord.testing.broker import Mosquitto


# -- staged readings recovered at the start ------------------------------------------------------

def recovering_daemon(tmp_path: Path, *, synced: bool) -> tuple[Daemon, FakeClock, Buffer]:
    """A daemon of boot "b1" whose clock is a day behind (or already right, `synced`), with three
    chunks staged by a previous run: true times, provisional times of boot "b0", and provisional
    times of this boot in a frame 5 s off this run's (the clock was stepped while unsynchronised)."""
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1, max_age_s=3600)
    clock = FakeClock(start=1000.0, epoch=TRUE_EPOCH if synced else TRUE_EPOCH - DAYS)
    timebase = TimeBase(Flag(synced), wait_s=600, monotonic=clock.monotonic, wall=clock.time, boot_id="b1")
    daemon = Daemon(str(cfg), startup.load(str(cfg), entry_points=False), timebase=timebase)
    buffer = daemon.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 20)
    previous = TRUE_EPOCH - DAYS - 1000.0 - 5.0  # the previous run's offset (wall - monotonic)
    buffer.stage(encode_samples([Sample("c0", "value", 1, "", TRUE_EPOCH - 100.0)]), readings=1)
    buffer.stage(encode_samples([Sample("c0", "value", 2, "", 1234.5)],
                                frame={"clock": "unsynced", "boot": "b0", "offset": 1000.0}), readings=1)
    buffer.stage(encode_samples([Sample("c0", "value", 3, "", 990.0 + previous)],  # at monotonic 990
                                frame={"clock": "unsynced", "boot": "b1", "offset": previous}), readings=1)
    daemon.pipeline = Pipeline(buffer, node="n1", batcher=daemon._batcher(), timebase=timebase)
    assert timebase.start() is synced
    return daemon, clock, buffer


def test_staged_readings_of_this_boot_wait_for_the_sync_and_get_their_true_time(tmp_path: Path) -> None:
    daemon, clock, buffer = recovering_daemon(tmp_path, synced=False)
    assert daemon.pipeline is not None
    daemon._recover_staged()
    batches = [decode(b.payload) for b in buffer.peek(10)]
    # An earlier boot's provisional times cannot be corrected: sent as they are, flagged.
    assert [(b.unsynced, [(s.value, s.ts) for s in b.samples]) for b in batches] == [
        (True, [(2, 1234.5)]), (False, [(1, TRUE_EPOCH - 100.0)])]
    # This boot's: held in the open batch, in this run's frame, and staged again in it (the seal
    # above deleted the old chunks).
    (held,) = daemon.pipeline.batcher.pending()
    assert held.value == 3 and held.ts == pytest.approx(990.0 + daemon.timebase.offset)
    (chunk,) = buffer.staged()
    assert decode_chunk(chunk) == ({"clock": "unsynced", "boot": "b1", "offset": daemon.timebase.offset}, [held])
    # The sync: a day forwards.
    clock.step(DAYS)
    assert isinstance(daemon.timebase.source, Flag)
    daemon.timebase.source.state = True
    assert daemon.pipeline.seal(final=True)
    last = decode(buffer.peek(10)[-1].payload)
    assert not last.unsynced and [(s.value, s.ts) for s in last.samples] == [(3, pytest.approx(TRUE_EPOCH - 10.0))]
    buffer.close()


def test_staged_readings_of_this_boot_recovered_after_the_sync_are_corrected_at_once(tmp_path: Path) -> None:
    daemon, _, buffer = recovering_daemon(tmp_path, synced=True)
    daemon._recover_staged()
    batches = [decode(b.payload) for b in buffer.peek(10)]
    assert [(b.unsynced, [(s.value, s.ts) for s in b.samples]) for b in batches] == [
        (True, [(2, 1234.5)]), (False, [(1, TRUE_EPOCH - 100.0), (3, pytest.approx(TRUE_EPOCH - 10.0))])]
    assert buffer.staged() == []
    buffer.close()


# -- end to end, real mosquitto ------------------------------------------------------------------

async def until(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.02)


def skewed_daemon(tmp_path: Path, broker: Mosquitto, *, wait_s: float) -> tuple[Daemon, Flag, list[float]]:
    """An in-process daemon whose wall clock is 3 days behind (`skew[0]`) and not synchronised."""
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, interval_s=0.1, max_age_s=0.3)
    skew = [-3 * DAYS]
    flag = Flag(False)
    timebase = TimeBase(flag, wait_s=wait_s, wall=lambda: time.time() + skew[0], boot_id=read_boot_id())
    return Daemon(str(cfg), startup.load(str(cfg), entry_points=False), timebase=timebase), flag, skew


def test_a_node_that_starts_unsynchronised_sends_true_times_after_the_sync(tmp_path: Path, broker: Mosquitto) -> None:
    daemon, flag, skew = skewed_daemon(tmp_path, broker, wait_s=60)
    started = time.time()
    with Subscription(broker, "sensord/n1/data") as sub:
        async def main() -> None:
            task = asyncio.create_task(daemon.run())
            await until(lambda: daemon.pipeline is not None and len(daemon.pipeline.batcher) >= 10, 10,
                        "10 readings held")
            assert sub.messages == []  # held: nothing goes out with a wrong time
            skew[0] = 0.0  # NTP steps the clock ...
            flag.state = True  # ... and says so
            await until(lambda: len(readings(sub.messages)) >= 25, 10, "25 readings delivered")
            daemon.request_stop()
            assert await task == 0

        asyncio.run(main())
        rows = readings(sub.messages)
    assert not any(decode(m.payload).unsynced for m in sub.messages)
    assert_gapless(counter_values(rows, "c0"))
    times = [r["ts"] for r in rows]
    assert started - 0.5 <= times[0] and times[-1] <= time.time() + 0.5  # true times, not 3 days ago
    assert times == sorted(times)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.05 <= g <= 0.5 for g in gaps), gaps  # the monotonic 0.1 s grid, across the sync


def test_after_the_wait_batches_go_out_flagged_then_true_ones_after_the_sync(tmp_path: Path,
                                                                            broker: Mosquitto) -> None:
    daemon, flag, skew = skewed_daemon(tmp_path, broker, wait_s=0.5)
    with Subscription(broker, "sensord/n1/data") as sub:
        async def main() -> None:
            task = asyncio.create_task(daemon.run())
            await until(lambda: any(decode(m.payload).unsynced for m in sub.messages), 10, "a flagged batch")
            skew[0] = 0.0
            flag.state = True
            synced_at = time.time()
            await until(lambda: sum(not decode(m.payload).unsynced for m in sub.messages) >= 3, 10,
                        "3 batches after the sync")
            daemon.request_stop()
            assert await task == 0
            assert all(s.ts >= synced_at - 1.0 for m in sub.messages if not decode(m.payload).unsynced
                       for s in decode(m.payload).samples)

        asyncio.run(main())
        batches = sorted((decode(m.payload) for m in sub.messages), key=lambda b: b.seq)
    flags = [b.unsynced for b in batches]
    assert flags == sorted(flags, reverse=True) and flags[0] and not flags[-1]  # flagged, then not
    for batch in batches:
        for s in batch.samples:
            assert abs(s.ts - time.time() + (3 * DAYS if batch.unsynced else 0.0)) < 30
    assert_gapless(counter_values(readings(sub.messages), "c0"))


def test_sensord_run_holds_until_timesyncd_says_synchronised(tmp_path: Path, broker: Mosquitto,
                                                             nodes: list[Node]) -> None:
    """The real process, the file source: nothing goes out until the file appears, then all."""
    sync_file = tmp_path / "timesync" / "synchronized"
    sync_file.parent.mkdir()
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, interval_s=0.1, max_age_s=0.3)
    cfg.write_text(cfg.read_text().replace(
        "[plugins]", f'[clock]\nsync_source = "timesyncd"\nsync_file = "{sync_file}"\n[plugins]'))
    with Subscription(broker, "sensord/n1/#") as sub:
        node = Node(cfg).start(env={"SENSORD_CLOCK_SYNC": ""})  # the config's source, not the suite's
        nodes.append(node)
        wait_until(lambda: "clock: not synchronised (systemd-timesyncd" in node.log(), 10, "the hold is logged")
        wait_until(lambda: any(m.topic.endswith("/meta") for m in sub.messages), 10, "meta")
        time.sleep(0.5)  # five reads' worth: they must be held, not sent (a negative check needs a wait)
        assert not [m for m in sub.messages if m.topic.endswith("/data")]
        sync_file.touch()
        wait_until(lambda: len(readings(sub.messages)) >= 10, 10, "readings after the sync")
        assert node.stop()[0] == 0
        assert "clock: synchronised (systemd-timesyncd" in node.log()
        rows = readings(sub.messages)
    assert not any(decode(m.payload).unsynced for m in sub.messages if m.topic.endswith("/data"))
    assert_gapless(counter_values(rows, "c0"))


def test_a_reload_keeps_holding_and_the_sync_corrects_both_generations(tmp_path: Path, broker: Mosquitto) -> None:
    daemon, flag, skew = skewed_daemon(tmp_path, broker, wait_s=60)
    started = time.time()
    with Subscription(broker, "sensord/n1/#") as sub:
        async def main() -> None:
            task = asyncio.create_task(daemon.run())
            await until(lambda: daemon.pipeline is not None and len(daemon.pipeline.batcher) >= 5, 10, "5 held")
            first = daemon.pipeline.batcher if daemon.pipeline else None
            daemon.request_reload()
            await until(lambda: daemon.pipeline is not None and daemon.pipeline.batcher is not first
                        and len(daemon.pipeline.batcher) >= 10, 10, "carried over, 10 held")
            skew[0] = 0.0
            flag.state = True
            await until(lambda: len(readings(sub.messages)) >= 15, 10, "15 readings delivered")
            daemon.request_stop()
            assert await task == 0

        asyncio.run(main())
        data = [m for m in sub.messages if m.topic.endswith("/data")]
        meta = [m for m in sub.messages if m.topic.endswith("/meta")]
    assert not any(decode(m.payload).unsynced for m in data)
    rows = readings(data)
    values = counter_values(rows, "c0")
    restart = values.index(0, 1)  # the reload builds the sensor anew: its counter starts again
    assert restart >= 5
    assert_gapless(values[:restart])
    assert_gapless(values[restart:])
    times = [r["ts"] for r in rows]
    assert all(started - 0.5 <= t <= time.time() + 0.5 for t in times)
    assert times == sorted(times)
    # The meta message sent at the (re)connect before the sync carries the provisional start time;
    # the clock part says where the sync state comes from.
    doc = json.loads(meta[-1].payload)
    assert doc["clock"] == {"sync_source": "test", "sync_wait_s": 60}


@pytest.mark.parametrize(("env", "encoding", "expected"), [
    ("", "compact", ("timesyncd", 120.0)), ("none", "compact", ("none", 120.0)),
    ("bogus", "compact", ("timesyncd", 120.0)), ("", "per_channel", ("timesyncd", 0.0))])
def test_the_time_base_follows_the_config_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture, env: str,
                                                              encoding: str, expected: tuple[str, float]) -> None:
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1, batch_extra=f'encoding = "{encoding}"')
    clock = f'[clock]\nsync_source = "timesyncd"\nsync_file = "{tmp_path}/sync"\nsync_wait_s = 120\n'
    cfg.write_text(cfg.read_text().replace("[plugins]", clock + "[plugins]"))
    monkeypatch.setenv("SENSORD_CLOCK_SYNC", env)
    daemon = Daemon(str(cfg), startup.load(str(cfg), entry_points=False))
    assert (daemon.timebase.source.name, daemon.timebase.wait_s) == expected
    assert ("unknown clock sync source" in caplog.text) == (env == "bogus")


def test_held_readings_are_staged_every_commit_interval_whatever_the_durability(tmp_path: Path,
                                                                                broker: Mosquitto) -> None:
    """In "undelivered" durability the open batch is staged only while the link fails; readings
    held for the sync cannot be delivered either, so they are staged, with their frame."""
    daemon, _, _ = skewed_daemon(tmp_path, broker, wait_s=60)
    assert daemon.config.buffer.durability == "undelivered"

    async def main() -> None:
        task = asyncio.create_task(daemon.run())
        await until(lambda: daemon.buffer is not None and daemon.buffer.staged_readings() >= 5, 10,
                    "held readings staged")
        assert daemon.buffer is not None
        frame, samples = decode_chunk(daemon.buffer.staged()[0])
        assert frame is not None and frame["boot"] == daemon.timebase.boot_id and samples
        daemon.request_stop()
        assert await task == 0

    asyncio.run(main())


def test_a_sensor_read_seldom_does_not_keep_the_sync_unnoticed(tmp_path: Path, broker: Mosquitto) -> None:
    """One read a minute: the flusher asks the source at its staging wake-ups while it holds."""
    daemon, flag, skew = skewed_daemon(tmp_path, broker, wait_s=60)
    cfg = Path(daemon.config_path)
    cfg.write_text(cfg.read_text().replace("interval_s = 0.1", "interval_s = 60").replace(
        "commit_interval_s = 0.5", "commit_interval_s = 0.2"))
    daemon.loaded = startup.load(str(cfg), entry_points=False)
    with Subscription(broker, "sensord/n1/data") as sub:
        async def main() -> None:
            task = asyncio.create_task(daemon.run())
            await until(lambda: daemon.pipeline is not None and len(daemon.pipeline.batcher) == 1, 10, "read 0 held")
            skew[0] = 0.0
            flag.state = True
            synced_at = time.monotonic()
            await until(lambda: sub.messages, 10, "the held reading delivered")
            assert time.monotonic() - synced_at < 5  # not at the next read, a minute later
            daemon.request_stop()
            assert await task == 0

        asyncio.run(main())
        (batch,) = [decode(m.payload) for m in sub.messages]
    assert not batch.unsynced and abs(batch.samples[0].ts - time.time()) < 10
