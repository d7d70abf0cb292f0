"""`sensord run`: the wiring. scheduler → batcher → buffer → MQTT, plus signals and shutdown order.

Shutdown (SIGTERM, SIGINT): stop reading, seal the open batch, deliver for up to
`[mqtt] stop_timeout_s`, publish `offline`, disconnect, close the buffer. What was not delivered
stays on disk and goes out first at the next start. SIGHUP reloads the config: the new file is
checked first (as `sensord check` does; if it fails, one ERROR line and nothing changes), the open batch is
sealed under the old settings (each batch describes itself), then sensors and the MQTT link are
rebuilt; the buffer and its pending batches are kept.

While the buffer cannot store (disk full, card gone read-only), readings wait in memory (bounded by
`memory_max_readings`) and sealing is retried once per `[buffer] commit_interval_s`, a batch of
`max_readings` at a time, never once per reading: reading goes on at the configured rate. Readings
still in memory at a stop are lost; they are counted in one ERROR line ("stopping: N readings could
not be stored ...") and `run()` returns 74 (EX_IOERR) instead of 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from typing import Any

from . import __version__, app
from .batch import Batcher
from .buffer import Buffer
from .config import Config, SensorSpec
from .encoding import (
    DEFAULT_ENCODING,
    ChannelInfo,
    ChannelKey,
    DecodeError,
    EncodeError,
    channel_info,
    decode_samples,
    encode_batch,
    encode_samples,
    sample_problem,
)
from .filters import ChannelFilters
from .hardware import Hardware
from .publisher import Publisher, Topics
from .scheduler import NextRead, Scheduler
from .sensor import Channel, Sample, Sensor
from .systemd import Notifier

log = logging.getLogger(__name__)

# While the buffer cannot store (disk full, read-only SD card), readings wait in memory in the
# open batch, about 130 bytes each: past this many the oldest are dropped (some 32 MiB).
MEMORY_MAX_READINGS = 250_000
# run()'s exit code when readings were lost at a stop because the buffer could not store them.
EX_IOERR = 74


class _TooLarge(Exception):
    """An encoded batch is over `[batch] max_bytes`: seal it in two halves instead."""


class Daemon:
    """One running node. `run()` returns the exit code."""

    def __init__(self, config_path: str, loaded: app.Loaded, *, hardware: Hardware | None = None,
                 notifier: Notifier | None = None, memory_max_readings: int = MEMORY_MAX_READINGS) -> None:
        self.config_path = config_path
        self.loaded = loaded
        self.hardware = hardware or Hardware()
        self.notifier = notifier or Notifier()
        self.started = time.time()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._wake = asyncio.Event()  # a batch was sealed
        self.buffer: Buffer | None = None
        self.buffer_path = loaded.config.buffer.path  # opened at start; a reload does not move it
        self.batcher: Batcher | None = None
        self._filters: dict[str, ChannelFilters] = {}  # sensor name → this run's filter state
        self._urgent: set[str] = set()
        self._channels: dict[ChannelKey, ChannelInfo] = {}
        self.memory_max_readings = memory_max_readings
        self._dropped_in_memory = 0  # readings dropped while the buffer could not store
        self._seal_retry_at = 0.0  # monotonic; after a refused seal, no new attempt before this
        self._lost = 0  # readings lost at a stop (could not be stored)
        self._schedule: dict[str, NextRead] = {}  # each sensor's next read, kept across reloads
        self._unsealable: set[str] = set()  # channels whose bad values were named

    @property
    def config(self) -> Config:
        return self.loaded.config

    # -- signals ---------------------------------------------------------------------------------

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
        self.buffer = Buffer.open(cfg.buffer.path, max_bytes=cfg.buffer.max_bytes)
        self._recover_staged()
        watchdog = asyncio.create_task(self._watchdog())
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
            self.buffer.close()
            self.hardware.close()
            self.notifier.close()

    def _recover_staged(self) -> None:
        """Readings staged by a previous run that died before sealing go out first, as one batch.

        Nothing staged can stop a start (a restart loop under systemd): a chunk that does not
        decode and a sample no encoding carries are dropped with one line saying how many; the
        staged chunks are deleted by the next seal."""
        assert self.buffer is not None
        samples: list[Sample] = []
        dropped: list[str] = []
        for chunk in self.buffer.staged():
            try:
                samples += decode_samples(chunk, dropped=dropped)
            except DecodeError as exc:
                log.warning("dropping a staged chunk of %d bytes left by the previous run: %s", len(chunk), exc)
        if dropped:
            log.warning("dropping %d staged readings left by the previous run that no encoding can carry "
                        "(first: %s)", len(dropped), dropped[0])
        if samples:
            log.info("recovered %d readings staged by the previous run", len(samples))
            try:
                self._seal_samples(samples)
            except Exception as exc:  # a start must not fail on what a previous run left behind
                log.error("cannot seal the %d readings staged by the previous run, dropping them: %s: %s",
                          len(samples), type(exc).__name__, exc)

    def _sealable(self, samples: list[Sample]) -> list[Sample]:
        """`samples` less those no encoding can carry, each channel named once per run: the
        scheduler lets none through, but a plugin filter's output or an old staged chunk could."""
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

    async def _generation(self, first: bool) -> bool:
        """Run with the current config until stop (returns False) or reload (returns True)."""
        cfg = self.config
        assert self.buffer is not None
        old_batcher = self.batcher
        self.batcher = Batcher(max_age_s=cfg.batch.max_age_s, max_readings=cfg.batch.max_readings,
                               max_bytes=cfg.batch.max_bytes)
        if old_batcher is not None:  # a reload while the buffer could not store: keep those readings
            self.batcher.carry_over(old_batcher)
        sensors = [(spec, app.build_sensor(spec, self.loaded, self.hardware)) for spec in cfg.enabled_sensors]
        # Fresh state per run: a reload restarts every chain (each channel's first value passes).
        self._filters = {spec.name: spec.filters.fresh() for spec, _ in sensors}
        self._urgent = {spec.name for spec, _ in sensors if spec.urgent} | set(cfg.batch.urgent)
        self._channels = self._channel_info(sensors)
        scheduler = Scheduler(sensors, sink=self._on_samples, schedule=self._schedule,
                              plugins=self.loaded.plugins.sensor_plugin)
        topics = Topics(cfg.mqtt.topic_prefix, cfg.node.id)
        publisher = Publisher(cfg, topics=topics, buffer=self.buffer, wake=self._wake,
                              meta=lambda: self._meta(sensors), notifier=self.notifier,
                              encodings=self.loaded.plugins.encodings)
        tasks = [asyncio.create_task(scheduler.run(), name="scheduler"),
                 asyncio.create_task(self._flusher(), name="flusher"),
                 asyncio.create_task(publisher.run(), name="publisher")]
        # Also after a reload: systemd holds the unit in "reloading" from RELOADING=1 until READY=1
        # (systemd 257 makes `systemctl reload` wait for it, and time out after 90 s).
        self.notifier.ready()
        log.info("sensord %s running: node %s, %s, broker %s:%d (%s)", __version__, cfg.node.id,
                 app.counted(len(sensors), "sensor"), cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.mode)
        crashed: asyncio.Future[Any] = asyncio.gather(*tasks)
        new: app.Loaded | None = None
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
        self._seal(final=True)
        if not reloading:
            self._count_lost()
        # On reload the link is closed normally (the broker discards the will, status stays
        # online) and the next generation connects with the new settings.
        await publisher.finish(timeout_s=cfg.mqtt.stop_timeout_s, offline=not reloading)
        crashed.cancel()
        await asyncio.gather(crashed, return_exceptions=True)
        if new is not None:
            self.loaded = new
        return reloading

    def _try_reload(self) -> app.Loaded | None:
        """The new config if it passes what `sensord check` checks (the same function), else None
        after one ERROR line saying why: the running config is kept."""
        try:
            new = app.load_runnable(self.config_path)
        except Exception as exc:  # keep running on the old config, say why
            log.error("reload failed, keeping the running config: %s", " ".join(str(exc).split()))
            return None
        if new.config.buffer.path != self.buffer_path:
            log.warning("reload: buffer.path changed to %s; the buffer stays at %s until restart",
                        new.config.buffer.path, self.buffer_path)
        log.info("reloaded %s", self.config_path)
        return new

    # -- batching --------------------------------------------------------------------------------

    def _on_samples(self, samples: Sequence[Sample]) -> None:
        """One read of one sensor: filter it, add what passes to the open batch."""
        assert self.batcher is not None
        if not samples:
            return
        sensor = samples[0].sensor
        now = time.monotonic()
        # After a refused seal, only the flusher retries (once per commit interval): sealing the
        # whole overgrown batch again for every new reading would starve the reading itself.
        may_seal = now >= self._seal_retry_at
        due = self.batcher.due_at()
        if may_seal and due is not None and due <= now:
            self._seal()  # the batch is due: this reading opens the next one (the flusher may not have run yet)
            may_seal = now >= self._seal_retry_at
        passed = self._filters[sensor].apply(samples)
        if passed and (self.batcher.add(passed) or sensor in self._urgent) and may_seal:
            self._seal()

    def _seal(self, *, final: bool = False) -> bool:
        """Seal the open batch, `max_readings` at a time (it outgrows that while storage refuses).

        On a refusal the rest stays in memory (bounded), and no seal is tried again for a commit
        interval; the buffer logs the failure streak once. `final` (at a stop or reload): one
        attempt regardless of that."""
        assert self.batcher is not None
        if not final and time.monotonic() < self._seal_retry_at:
            return False
        samples = self.batcher.pending()
        step = max(1, self.batcher.max_readings)
        for start in range(0, len(samples), step):
            if not self._seal_samples(samples[start:start + step]):
                if start:
                    self.batcher.discard_sealed(start)
                self._seal_retry_at = time.monotonic() + self.config.buffer.commit_interval_s
                self._bound_memory()
                return False
        self._seal_retry_at = 0.0
        if self._dropped_in_memory:
            log.warning("the buffer stores again; %d readings were dropped while it could not",
                        self._dropped_in_memory)
            self._dropped_in_memory = 0
        self.batcher.clear()
        return True

    def _count_lost(self) -> None:
        """At a stop: name, in one line, the readings that could not be stored and are lost."""
        assert self.batcher is not None and self.buffer is not None
        # Staged readings are on disk already: the next start seals them (_recover_staged).
        lost = len(self.batcher.unstaged()) + self._dropped_in_memory
        if not lost:
            return
        self._lost += lost
        log.error("stopping: %d readings could not be stored (%s at %s) and are lost%s", lost,
                  self.buffer.failure or "storage refused writes", self.buffer.path,
                  f" ({self._dropped_in_memory} of them dropped earlier to bound memory)"
                  if self._dropped_in_memory else "")
        self._dropped_in_memory = 0

    def _bound_memory(self) -> None:
        assert self.batcher is not None
        dropped = self.batcher.drop_oldest(self.memory_max_readings)
        if dropped and not self._dropped_in_memory:
            log.warning("the buffer cannot store and %d readings wait in memory: dropping the oldest "
                        "beyond that until it stores again", self.memory_max_readings)
        self._dropped_in_memory += dropped

    def _encoding(self) -> str:
        name = self.config.batch.encoding
        # per_channel is a way of publishing; the buffer keeps batches in the default encoding.
        return DEFAULT_ENCODING if name == app.PER_CHANNEL else name

    def _encode(self, seq: int, samples: list[Sample]) -> bytes:
        node, encoding = self.config.node.id, self._encoding()
        try:
            return encode_batch(node, seq, samples, encoding=encoding, channels=self._channels,
                                encodings=self.loaded.plugins.encodings)
        except EncodeError as exc:
            if encoding == DEFAULT_ENCODING:
                raise
            # Never lose readings to a format's limits (e.g. a name SenML cannot carry).
            log.warning("cannot encode a batch as %s (%s); sending it as %s", encoding, exc, DEFAULT_ENCODING)
            return encode_batch(node, seq, samples, channels=self._channels)

    def _seal_samples(self, samples: list[Sample]) -> bool:
        """Seal `samples` as one batch, or several when the payload would pass `max_bytes`."""
        assert self.buffer is not None
        samples = self._sealable(samples)
        if not samples:
            return True
        max_bytes = self.config.batch.max_bytes

        def encode(seq: int) -> bytes:
            payload = self._encode(seq, samples)
            if self.batcher is not None:
                self.batcher.observe(len(samples), len(payload))
            if len(payload) > max_bytes and len(samples) > 1:
                raise _TooLarge  # the buffer rolls the seal back; encoded once in the usual case
            return payload

        try:
            seq = self.buffer.seal(encode, readings=len(samples), first_ts=samples[0].ts)
        except _TooLarge:
            half = len(samples) // 2
            return self._seal_samples(samples[:half]) and self._seal_samples(samples[half:])
        if seq is None:
            return False  # storage refused; the buffer logged it, we keep the samples in memory
        self._wake.set()
        return True

    def _channel_info(self, sensors: Sequence[tuple[SensorSpec, Sensor]]) -> dict[ChannelKey, ChannelInfo]:
        """Unit and resolution of every channel, the resolution after the channel's filters."""
        described = []
        for spec, sensor in sensors:
            try:
                channels = sensor.channels()
            except Exception:  # a plugin's channels() may need open(); the encoder copes without
                channels = []
            described.append((spec.name, [Channel(c.quantity, c.unit, spec.filters.resolution(c.quantity, c.resolution))
                                          for c in channels]))
        return channel_info(described)

    def _stage(self) -> None:
        assert self.batcher is not None and self.buffer is not None
        chunk = self.batcher.unstaged()
        if chunk and self.buffer.stage(encode_samples(chunk), readings=len(chunk)):
            self.batcher.mark_staged()

    async def _flusher(self) -> None:
        """Seal the open batch when it is due; stage its new readings every commit interval."""
        assert self.batcher is not None
        commit_s = self.config.buffer.commit_interval_s
        next_stage = time.monotonic() + commit_s
        while True:
            now = time.monotonic()
            due = self.batcher.due_at()
            if due is not None and len(self.batcher) >= self.batcher.max_readings:
                due = now  # full, yet not sealed: storage refused it
            if due is not None:
                due = max(due, self._seal_retry_at)  # storage refused: retry at the next commit interval
            if due is not None and due <= now:
                if self._seal():
                    continue
                due = self._seal_retry_at
            if next_stage <= now:
                if not self._seal_retry_at:  # while seals are refused, their retries are the writes
                    self._stage()
                next_stage = now + commit_s
            wake = min(next_stage, due if due is not None else next_stage)
            await asyncio.sleep(max(0.0, wake - time.monotonic()))

    # -- helpers ---------------------------------------------------------------------------------

    def _meta(self, sensors: Sequence[tuple[SensorSpec, Sensor]]) -> dict[str, object]:
        assert self.buffer is not None
        stats = self.buffer.stats()
        described = []
        for spec, sensor in sensors:
            try:
                channels = [{"quantity": c.quantity, "unit": c.unit,
                             "resolution": spec.filters.resolution(c.quantity, c.resolution)}
                            for c in sensor.channels()]
            except Exception:  # a plugin's channels() may fail before open(); meta must not
                channels = []
            described.append({"name": spec.name, "type": spec.type, "interval_s": spec.interval_s,
                              "channels": channels})
        return {"node": self.config.node.id, "version": __version__, "started": round(self.started, 3),
                "encoding": self.config.batch.encoding, "sensors": described,
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


async def run_daemon(config_path: str, loaded: app.Loaded, *, hardware: Hardware | None = None) -> int:
    daemon = Daemon(config_path, loaded, hardware=hardware)
    with contextlib.suppress(asyncio.CancelledError):
        return await daemon.run()
    return 0
