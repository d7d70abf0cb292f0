"""`sensord run`: the wiring. scheduler → pipeline (filters, batch, encode, seal) → buffer → MQTT, plus
signals and shutdown order.

Shutdown (SIGTERM, SIGINT): stop reading, seal the open batch, deliver for up to
`[mqtt] stop_timeout_s`, publish `offline`, disconnect, write what the buffer held in memory
("undelivered" durability), close the buffer. What was not delivered stays on disk and goes out
first at the next start. SIGHUP reloads the config: the new file is
checked first (as `sensord check` does; if it fails, one ERROR line and nothing changes), the open batch is
sealed under the old settings (each batch describes itself), then sensors and the MQTT link are
rebuilt; the buffer and its pending batches are kept.

While the buffer cannot store (disk full, card gone read-only), readings wait in memory (bounded by
`memory_max_readings`) and sealing is retried once per `[buffer] commit_interval_s`, a batch of
`max_readings` at a time, never once per reading: reading goes on at the configured rate. Readings
still in memory at a stop are lost; they are counted in one ERROR line ("stopping: N readings could
not be stored ...") and `run()` returns 74 (EX_IOERR) instead of 0.

The clock (sensord.timebase, docs/clock.md): one `TimeBase` for the whole run stamps every read.
Until the clock is synchronised the open batch is held up to `[clock] sync_wait_s` (also across a
reload); at the sync the readings in memory are moved to their true time. A stop before the sync
seals what is held, flagged `unsynced`. Staged readings recovered at the start keep their true
time when they have one, are corrected when they were staged earlier in this same boot, and are
sealed flagged `unsynced` when they come from an unsynchronised clock of an earlier boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, startup
from .batch import Batcher
from .buffer import Buffer
from .config import Config, SensorSpec
from .encoding import DEFAULT_ENCODING, DecodeError
from .filters.channels import filtered_channels
from .hardware import Hardware
from .linkwatch import LinkWatch
from .mqtt import Publisher, Topics
from .mqtt.discovery import Announcer
from .pipeline import MEMORY_MAX_READINGS, Pipeline
from .scheduler import NextRead, Scheduler
from .sensor import Sample, Sensor
from .staging import decode_chunk
from .systemd import Notifier
from .timebase import ENV_VAR as CLOCK_ENV_VAR
from .timebase import SOURCES, TimeBase, make_source, read_boot_id

log = logging.getLogger(__name__)

# run()'s exit code when readings were lost at a stop because the buffer could not store them.
EX_IOERR = 74


class Daemon:
    """One running node. `run()` returns the exit code."""

    def __init__(self, config_path: str, loaded: startup.Loaded, *, hardware: Hardware | None = None,
                 notifier: Notifier | None = None, memory_max_readings: int = MEMORY_MAX_READINGS,
                 timebase: TimeBase | None = None, linkwatch: LinkWatch | None = None) -> None:
        """`timebase`: the clocks and sync source (tests inject them); default from `[clock]`.
        `linkwatch`: the kernel's link-up events (`sensord.linkwatch`), which end the publisher's
        reconnect backoff."""
        self.config_path = config_path
        self.loaded = loaded
        self.hardware = hardware or Hardware()
        self.notifier = notifier or Notifier()
        self.started_mono = time.monotonic()  # the start's wall time is known once the clock is (meta)
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._wake = asyncio.Event()  # a batch was sealed
        self.buffer: Buffer | None = None
        self.buffer_path = loaded.config.buffer.path  # opened at start; a reload does not move it
        self.pipeline: Pipeline | None = None  # filters → batch → encode → seal; made with the buffer
        self.memory_max_readings = memory_max_readings
        self._lost = 0  # readings lost at a stop (could not be stored)
        self._schedule: dict[str, NextRead] = {}  # each sensor's next read, kept across reloads
        self.timebase = timebase or self._timebase()
        self.timebase.on_sync = self._clock_synced
        self._publisher: Publisher | None = None  # this generation's, for the link-up events
        self._linkwatch = linkwatch or LinkWatch(self._link_up)
        # Home Assistant discovery: what it published last is kept beside the buffer.
        self.announcer = Announcer(loaded.config, state_file=Path(self.buffer_path).with_name("homeassistant.json"),
                                   state_topic="", status_topic="", version=__version__)

    @property
    def config(self) -> Config:
        return self.loaded.config

    # -- signals ---------------------------------------------------------------------------------

    def _link_up(self, what: str) -> None:
        if self._publisher is not None:
            self._publisher.link_up(what)

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    # -- main ------------------------------------------------------------------------------------

    async def run(self) -> int:
        self._install_signals()
        cfg = self.config
        self.buffer = Buffer.open(cfg.buffer.path, max_bytes=cfg.buffer.max_bytes,
                                  durability=cfg.buffer.durability, hold_s=cfg.buffer.commit_interval_s)
        self.pipeline = Pipeline(self.buffer, node=cfg.node.id, batcher=self._batcher(), encoding=self._encoding(),
                                 encodings=self.loaded.plugins.encodings,
                                 commit_interval_s=cfg.buffer.commit_interval_s,
                                 memory_max_readings=self.memory_max_readings, on_sealed=self._wake.set,
                                 on_samples=self.announcer.observe, timebase=self.timebase)
        self.buffer.changed = self.pipeline.kick  # the link failed: the flusher stages from now on
        self.timebase.start()
        self._recover_staged()
        watchdog = asyncio.create_task(self._watchdog())
        self._linkwatch.start()
        try:
            first = True
            while True:
                reloading = await self._generation(first)
                first = False
                if not reloading:
                    break
            return EX_IOERR if self._lost else 0
        finally:
            watchdog.cancel()
            self._linkwatch.close()
            self.buffer.close()
            self.hardware.close()
            self.notifier.close()

    def _recover_staged(self) -> None:
        """Readings staged by a previous run that died before sealing go out first, as one batch.

        Nothing staged can stop a start (a restart loop under systemd): a chunk that does not
        decode and a sample no encoding carries are dropped with one line saying how many; the
        staged chunks are deleted by the next seal."""
        assert self.buffer is not None and self.pipeline is not None
        samples: list[Sample] = []  # true times
        earlier_boot: list[Sample] = []  # provisional times of an earlier boot: cannot be corrected
        this_boot: list[Sample] = []  # provisional times of this boot, now in this run's frame
        dropped: list[str] = []
        timebase = self.timebase
        for chunk in self.buffer.staged():
            try:
                frame, chunk_samples = decode_chunk(chunk, dropped=dropped)
            except DecodeError as exc:
                log.warning("dropping a staged chunk of %d bytes left by the previous run: %s", len(chunk), exc)
                continue
            if frame is None:
                samples += chunk_samples
            elif timebase.boot_id is None or frame.get("boot") != timebase.boot_id:
                earlier_boot += chunk_samples
            else:
                # The same boot: the monotonic clock runs on, so `ts - offset` is the reading's instant.
                offset = float(frame["offset"])  # a finite number: decode_chunk checked it
                this_boot += [Sample(s.sensor, s.quantity, s.value, s.unit, timebase.stamp(s.ts - offset))
                              for s in chunk_samples]
        if dropped:
            log.warning("dropping %d staged readings left by the previous run that no encoding can carry "
                        "(first: %s)", len(dropped), dropped[0])
        if this_boot and timebase.synced:
            samples, this_boot = samples + this_boot, []
        total = len(samples) + len(earlier_boot) + len(this_boot)
        if not total:
            return
        log.info("recovered %d readings staged by the previous run%s", total,
                 f" ({len(earlier_boot)} stamped before the clock was synchronised in an earlier boot: sent "
                 "flagged unsynced)" if earlier_boot else "")
        try:
            for group, unsynced in ((earlier_boot, True), (samples, False)):
                if group:
                    self.pipeline.seal_samples(group, unsynced=unsynced)
            if this_boot:
                # Still on the provisional clock: they wait in the open batch for the sync. Their
                # chunks say how to correct them and stay staged, unless a seal above deleted them:
                # then they are staged again at once, in this run's frame.
                self.pipeline.batcher.add(this_boot)
                if samples or earlier_boot:
                    self.pipeline.stage()
                else:
                    self.pipeline.batcher.mark_staged()
        except Exception as exc:  # a start must not fail on what a previous run left behind
            log.error("cannot seal the %d readings staged by the previous run, dropping them: %s: %s",
                      total, type(exc).__name__, exc)

    async def _generation(self, first: bool) -> bool:
        """Run with the current config until stop (returns False) or reload (returns True)."""
        cfg = self.config
        assert self.buffer is not None and self.pipeline is not None
        pipeline = self.pipeline
        sensors = [(spec, startup.build_sensor(spec, self.loaded, self.hardware)) for spec in cfg.enabled_sensors]
        # A reload while the buffer could not store: the new batcher takes over those readings.
        pipeline.configure([(spec.name, spec.filters, sensor) for spec, sensor in sensors], node=cfg.node.id,
                           batcher=self._batcher(), encoding=self._encoding(), encodings=self.loaded.plugins.encodings,
                           urgent={spec.name for spec, _ in sensors if spec.urgent} | set(cfg.batch.urgent),
                           commit_interval_s=cfg.buffer.commit_interval_s)
        self.buffer.set_durability(cfg.buffer.durability, hold_s=cfg.buffer.commit_interval_s)
        scheduler = Scheduler(sensors, sink=pipeline.add, schedule=self._schedule,
                              plugins=self.loaded.plugins.sensor_plugin, timebase=self.timebase)
        topics = Topics(cfg.mqtt.topic_prefix, cfg.node.id)
        self.announcer.configure(cfg, state_topic=topics.state, status_topic=topics.status,
                                 channels=lambda: startup.announced_channels(sensors))
        publisher = Publisher(cfg, topics=topics, buffer=self.buffer, wake=self._wake,
                              meta=lambda: self._meta(sensors), notifier=self.notifier,
                              encodings=self.loaded.plugins.encodings, announcer=self.announcer)
        self._publisher = publisher
        publisher.link_watched = self._linkwatch.watching
        pipeline.on_urgent = publisher.urgent
        tasks = [asyncio.create_task(scheduler.run(), name="scheduler"),
                 asyncio.create_task(pipeline.flush_forever(), name="flusher"),
                 asyncio.create_task(publisher.run(), name="publisher")]
        # Also after a reload: systemd holds the unit in "reloading" from RELOADING=1 until READY=1
        # (systemd 257 makes `systemctl reload` wait for it, and time out after 90 s).
        self.notifier.ready()
        log.info("sensord %s running: node %s, %s, broker %s:%d (%s)", __version__, cfg.node.id,
                 startup.counted(len(sensors), "sensor"), cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.mode)
        crashed: asyncio.Future[Any] = asyncio.gather(*tasks)
        new: startup.Loaded | None = None
        while True:
            stop_wait: asyncio.Future[Any] = asyncio.create_task(self._stop.wait())
            reload_wait: asyncio.Future[Any] = asyncio.create_task(self._reload.wait())
            done, _ = await asyncio.wait([stop_wait, reload_wait, crashed], return_when=asyncio.FIRST_COMPLETED)
            reloading = reload_wait in done and not self._stop.is_set()
            stop_wait.cancel()
            reload_wait.cancel()
            if crashed in done:
                crashed.result()  # re-raise: a component died; systemd restarts us
            if not reloading:
                break
            # Check the new config before taking anything down: a file that fails the checks of
            # `sensord check` leaves sensors, filters and the link running untouched.
            self._reload.clear()
            new = self._try_reload()
            if new is not None:
                break
            self.notifier.reloading()
            self.notifier.ready()

        if reloading:
            self.notifier.reloading()
        else:
            self.notifier.stopping()
        # Stop reading first, so the batch sealed below is the last one of this generation.
        for task in tasks[:2]:
            task.cancel()
        await asyncio.gather(*tasks[:2], return_exceptions=True)
        await scheduler.stop()
        if not (reloading and pipeline.holding()):  # a reload keeps holding for the sync
            pipeline.seal(final=True)
        if not reloading:
            self._count_lost()
        # On reload the link is closed normally (the broker discards the will, status stays
        # online) and the next generation connects with the new settings.
        await publisher.finish(timeout_s=cfg.mqtt.stop_timeout_s, offline=not reloading)
        if not reloading:
            self._count_unwritten()
        crashed.cancel()
        await asyncio.gather(crashed, return_exceptions=True)
        if new is not None:
            self.loaded = new
        return reloading

    def _try_reload(self) -> startup.Loaded | None:
        """The new config if it passes what `sensord check` checks (the same function), else None
        after one ERROR line saying why: the running config is kept."""
        try:
            new = startup.load_runnable(self.config_path)
        except Exception as exc:  # keep running on the old config, say why
            log.error("reload failed, keeping the running config: %s", " ".join(str(exc).split()))
            return None
        if new.config.buffer.path != self.buffer_path:
            log.warning("reload: buffer.path changed to %s; the buffer stays at %s until restart",
                        new.config.buffer.path, self.buffer_path)
        log.info("reloaded %s", self.config_path)
        return new

    # -- batching --------------------------------------------------------------------------------

    # -- the clock -------------------------------------------------------------------------------

    def _timebase(self) -> TimeBase:
        clock = self.config.clock
        name = os.environ.get(CLOCK_ENV_VAR) or clock.sync_source
        if name not in SOURCES:
            log.error("%s=%s: unknown clock sync source (known: %s); using [clock] sync_source = %s",
                      CLOCK_ENV_VAR, name, ", ".join(SOURCES), clock.sync_source)
            name = clock.sync_source
        # per_channel messages carry no times (the consumer stamps them): holding would only delay them.
        wait_s = 0.0 if self.config.batch.encoding == startup.PER_CHANNEL else clock.sync_wait_s
        return TimeBase(make_source(name, clock.sync_file), wait_s=wait_s, boot_id=read_boot_id())

    def _clock_synced(self, delta_s: float) -> None:
        """The clock was synchronised: the readings in memory were stamped `delta_s` off."""
        if self.pipeline is not None:
            self.pipeline.batcher.shift(delta_s)

    def _batcher(self) -> Batcher:
        batch = self.config.batch
        return Batcher(max_age_s=batch.max_age_s, max_readings=batch.max_readings, max_bytes=batch.max_bytes)

    def _encoding(self) -> str:
        name = self.config.batch.encoding
        # per_channel is a way of publishing; the buffer keeps batches in the default encoding.
        return DEFAULT_ENCODING if name == startup.PER_CHANNEL else name

    def _count_lost(self) -> None:
        """At a stop: name, in one line, the readings that could not be stored and are lost."""
        assert self.pipeline is not None and self.buffer is not None
        lost, dropped = self.pipeline.count_lost(), self.pipeline.dropped_in_memory
        if not lost:
            return
        self._lost += lost
        log.error("stopping: %d readings could not be stored (%s at %s) and are lost%s", lost,
                  self.buffer.failure or "storage refused writes", self.buffer.path,
                  f" ({dropped} of them dropped earlier to bound memory)" if dropped else "")
        self.pipeline.dropped_in_memory = 0

    def _count_unwritten(self) -> None:
        """At a stop, after the last delivery attempt: write what the buffer held in memory
        ("undelivered" durability); name what storage refused, as `_count_lost` does."""
        assert self.buffer is not None
        lost = self.buffer.persist()
        if lost:
            self._lost += lost
            log.error("stopping: %d undelivered readings could not be written (%s at %s) and are lost",
                      lost, self.buffer.failure or "storage refused writes", self.buffer.path)
            self.buffer.abandon_held()

    # -- helpers ---------------------------------------------------------------------------------

    def _meta(self, sensors: Sequence[tuple[SensorSpec, Sensor]]) -> dict[str, object]:
        assert self.buffer is not None
        stats = self.buffer.stats()
        described = []
        for spec, sensor in sensors:
            channels = [{"quantity": c.quantity, "unit": c.unit, "resolution": c.resolution}
                        for c in filtered_channels(spec.filters, sensor)]
            described.append({"name": spec.name, "type": spec.type, "interval_s": spec.interval_s,
                              "channels": channels})
        started = round(self.started_mono + self.timebase.offset, 3)
        return {"node": self.config.node.id, "version": __version__, "started": started,
                "encoding": self.config.batch.encoding, "sensors": described,
                "clock": {"sync_source": self.timebase.source.name, "sync_wait_s": self.timebase.wait_s},
                "buffer": {"pending_batches": stats.pending_batches, "pending_readings": stats.pending_readings,
                           "dropped_batches": stats.dropped_batches, "dropped_readings": stats.dropped_readings}}

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval is None:
            return
        # Pinged from the event loop itself: a wedged loop stops the pings and systemd restarts us.
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


async def run_daemon(config_path: str, loaded: startup.Loaded, *, hardware: Hardware | None = None) -> int:
    daemon = Daemon(config_path, loaded, hardware=hardware)
    with contextlib.suppress(asyncio.CancelledError):
        return await daemon.run()
    return 0
