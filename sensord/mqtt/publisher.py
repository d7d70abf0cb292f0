"""The MQTT loop: drains the buffer oldest first and keeps the node's status and meta current.

A batch leaves the buffer only after the broker acknowledged it (PUBACK at QoS 1), so delivery
is at-least-once and in order; consumers drop repeats by `seq`. Connection failures are logged
once per streak (at ERROR when only a change in the config or on the broker helps: a wrong CA,
password or ACL) and retried with capped, jittered exponential backoff.

Modes:
- `persistent`: stay connected; keepalive pings only.
- `duty_cycle`: connect when a batch is sealed, deliver everything pending, disconnect. Under
  MQTT 5 the will carries a Will Delay Interval a little longer than the wake-up period and the
  node disconnects with reason 0x04 (Disconnect with Will Message): the broker holds `offline`
  back, the next wake-up cancels it, and a node that misses its wake-up turns `offline` by itself.
  MQTT 3.1.1 has no will delay: the node disconnects normally, its status stays `online` between
  wake-ups, and only a connection lost mid-session (not a missed wake-up) publishes `offline`.

Cutting the backoff short (`link_up`, `urgent`): the daemon's `sensord.linkwatch` reports the
kernel's link-up events; one ends the current backoff step at once and restarts the backoff. A
reading of an urgent sensor while disconnected gets one extra attempt per backoff step. In
duty-cycle mode an asleep node ignores link events (nothing to send, the radio stays quiet), and
one with batches due and no route to the broker (its own link down) waits for the event, or
`reconnect_max_s`, instead of retrying on the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..buffer import Buffer, StoredBatch
from ..config import Config
from ..encoding import ENCODINGS, DecodeError, Encoding, decode, detect
from ..errors import BrokerRefused
from ..sensor import Value
from ..systemd import Notifier
from .compat import Connection
from .discovery import Announcer
from .link import Backoff, ConnectionFactory, MqttLink, Will, connect_timeout_s

# The name it had as the module sensord.publisher: log filters and tests look for it.
log = logging.getLogger("sensord.publisher")

ONLINE, OFFLINE = b"online", b"offline"
PAGE = 20  # batches in flight at once while draining (paho's default max in-flight is 20)


@dataclass(frozen=True)
class Topics:
    prefix: str
    node: str

    @property
    def data(self) -> str:
        return f"{self.prefix}/{self.node}/data"

    @property
    def status(self) -> str:
        return f"{self.prefix}/{self.node}/status"

    @property
    def meta(self) -> str:
        return f"{self.prefix}/{self.node}/meta"

    @property
    def state(self) -> str:
        """The latest values for Home Assistant (sensord.homeassistant)."""
        return f"{self.prefix}/{self.node}/state"


def will_delay_s(config: Config) -> int:
    """Duty cycle: how long the broker holds the will back. Batches are sealed at most
    `max_age_s` after their first reading, which comes at most one (shortest) interval after the
    last seal; twice that period plus slack for a slow connect."""
    intervals = [s.interval_s for s in config.enabled_sensors] or [config.batch.max_age_s]
    period = config.batch.max_age_s + min(intervals)
    return math.ceil(2 * period) + 2


def format_value(value: Value) -> bytes:
    """One value as the per-channel MQTT payload: the shortest exact text.

    Integers as integers (`21`), floats as Python's shortest round-trip repr (`21.37`, `1e-05`,
    `nan`, `inf`), booleans as `true` / `false`.
    """
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    return repr(float(value)).encode()


class Publisher:
    """Owns the MQTT link of one daemon generation."""

    def __init__(self, config: Config, *, topics: Topics, buffer: Buffer, wake: asyncio.Event,
                 meta: Callable[[], dict[str, Any]], notifier: Notifier,
                 encodings: Mapping[str, Encoding] = ENCODINGS,
                 connection_factory: ConnectionFactory = Connection, backoff: Backoff | None = None,
                 announcer: Announcer | None = None) -> None:
        """`connection_factory` goes to `MqttLink` (tests pass `FakeBroker.connection`); `backoff`
        replaces the reconnect backoff (capped at `[mqtt] reconnect_max_s`), e.g. to record it;
        `announcer` publishes Home Assistant discovery and state after each drain."""
        self.config = config
        self.mqtt = config.mqtt
        self.topics = topics
        self.buffer = buffer
        self.wake = wake
        self.meta = meta
        self.notifier = notifier
        self.duty = self.mqtt.mode == "duty_cycle"
        self.encodings = encodings
        self.per_channel = config.batch.encoding == "per_channel"
        delay = will_delay_s(config) if self.duty else None
        # A broker silent for 1.5 x keepalive counts as gone (as the broker judges us); the same
        # bound, within [3 s, 30 s], limits how long a connect or a PUBACK may take.
        timeout_s = self.link_timeout_s = connect_timeout_s(self.mqtt.keepalive_s)
        self.link = MqttLink(config=self.mqtt, client_id=self.mqtt.client_id or f"sensord-{config.node.id}",
                             will=Will(topics.status, OFFLINE, qos=1, retain=True, delay_s=delay),
                             session_expiry_s=(2 * delay if delay else None), timeout_s=timeout_s,
                             connection_factory=connection_factory)
        self.backoff = backoff or Backoff(max_s=self.mqtt.reconnect_max_s)
        self.connected = False
        self._finishing = False
        self._abandoned = False  # finish() gave up waiting: the loop must end even if a cancel was lost
        self._drained = asyncio.Event()
        self._failing = False
        self._failing_permanent = False  # this streak's ERROR line was logged
        self._refusing = False  # the broker refuses batches (PUBACK failure code): see _on_refusal
        self._meta_sent = False
        self._retried_for_finish = False
        self._task: asyncio.Task[None] | None = None
        self.announcer = announcer
        self._reader: asyncio.Task[None] | None = None  # messages on our subscriptions
        # What cuts a reconnect backoff short (see link_up and urgent): the kernel saying the link
        # is back, and a reading of an urgent sensor (one extra attempt per backoff step).
        self._link_up = asyncio.Event()
        self._link_up_what = ""
        self._link_up_at = 0.0
        self._urgent = asyncio.Event()
        self._urgent_used = False  # this backoff step had its extra attempt
        self._step_end: float | None = None  # loop time the current backoff step ends
        #: Link-up events arrive (the daemon's `LinkWatch` runs): in duty-cycle mode a node with no
        #: route to the broker then waits for one instead of retrying on the backoff.
        self.link_watched = False
        self._awaiting_link = False  # logged that it waits for the link
        self._stats = buffer.stats()  # refreshed by _set_status after each drain

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        self._set_status()
        while not self._abandoned:
            if self.duty:
                await self._wait_for_work()
            try:
                if not self.connected:
                    await self._connect()
                await self._drain()
                if self.announcer is not None and self.connected:
                    await self.announcer.after_drain(self.link, self._figures())
                    if self.wake.is_set():
                        continue  # sealed (or a stop began) while it published: drain before parking
                if self.duty and not self._finishing:
                    await self._disconnect(send_will=self.link.protocol == "5")
                elif not self.duty:
                    await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure means: drop the link, back off, retry
                await self._on_failure(exc)

    async def _connect(self) -> None:
        await self.link.connect()
        self.connected = True
        if self._failing:
            log.info("connected to %s:%d again (MQTT %s)", self.mqtt.host, self.mqtt.port, self.link.protocol)
        else:
            log.info("connected to %s:%d (MQTT %s)", self.mqtt.host, self.mqtt.port, self.link.protocol)
        self._failing = False
        self._failing_permanent = False
        self.backoff.reset()
        self._link_up.clear()
        self._urgent.clear()
        self._urgent_used = False
        self._step_end = None
        self._awaiting_link = False
        self.buffer.set_link(True)
        await self.link.publish(self.topics.status, ONLINE, qos=1, retain=True)
        if not (self.duty and self._meta_sent):
            await self._publish_meta()
        if self.announcer is not None:
            self.announcer.connected()
            topics = self.announcer.subscriptions()
            if topics:
                await self.link.subscribe(topics, qos=0)
                self._reader = asyncio.create_task(self._read_messages(), name="subscriptions")

    async def _read_messages(self) -> None:
        """Messages on the subscriptions (Home Assistant's birth): wake the loop when one matters.
        Ends with the connection; the loop notices that through `wait_closed`."""
        assert self.announcer is not None
        with contextlib.suppress(Exception):
            async for message in self.link.messages():
                if self.announcer.on_message(message.topic, message.payload, message.retain):
                    self.wake.set()

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    def _figures(self) -> dict[str, int]:
        stats = self._stats  # as of the end of the drain (_set_status)
        return {"pending_readings": stats.pending_readings, "dropped_readings": stats.dropped_readings}

    async def _publish_meta(self) -> None:
        payload = json.dumps(self.meta(), separators=(",", ":"), ensure_ascii=False).encode()
        await self.link.publish(self.topics.meta, payload, qos=1, retain=True,
                                content_type="application/json")
        self._meta_sent = True

    async def _drain(self) -> None:
        """Publish pending batches oldest first, a page at a time; ack a page once all its PUBACKs are in."""
        while True:
            self.wake.clear()
            page = self.buffer.peek(PAGE)
            if not page:
                break
            if self.per_channel:
                await self._publish_per_channel(page)
            else:
                await asyncio.gather(*(self.link.publish(self.topics.data, b.payload, qos=self.mqtt.qos,
                                                         content_type=self._content_type(b.payload))
                                       for b in page))
            # False: delivered, but the delete could not be written (disk full). The buffer then
            # leaves these batches out of peek and deletes them with its next successful write
            # (Buffer.ack_many), so the loop goes on instead of sending this page again at once.
            self.buffer.ack_many([b.seq for b in page])
            if self.announcer is not None:
                self.announcer.delivered()
            if self._refusing:
                log.info("the broker takes the batches again")
                self._refusing = False
                self.backoff.reset()
                self.buffer.set_link(True)
            self._set_status()
        self._set_status()
        if self._finishing:
            self._drained.set()

    def _content_type(self, payload: bytes) -> str | None:
        """From the payload itself: a batch buffered before an upgrade or a config change may be
        in another encoding than the one configured now."""
        try:
            return detect(payload, self.encodings).content_type
        except DecodeError:
            return None

    async def _publish_per_channel(self, page: list[StoredBatch]) -> None:
        """Compatibility mode: one plain-text message per reading on {prefix}/{node}/{sensor}/{quantity}."""
        for stored in page:
            try:
                batch = decode(stored.payload, self.encodings)
            except DecodeError as exc:  # cannot happen for batches we sealed; never block the queue
                log.error("batch %d cannot be decoded, dropping it: %s", stored.seq, exc)
                continue
            base = f"{self.topics.prefix}/{self.topics.node}"
            # In chunks: hundreds of concurrent publishes make the client warn about pending calls.
            for i in range(0, len(batch.samples), PAGE):
                await asyncio.gather(*(self.link.publish(f"{base}/{s.sensor}/{s.quantity}", format_value(s.value),
                                                         qos=self.mqtt.qos) for s in batch.samples[i:i + PAGE]))

    async def _idle(self) -> None:
        """Persistent mode: wait for the next sealed batch, or for the connection to drop."""
        if self._finishing:
            await asyncio.Event().wait()  # finish() takes over from here
        waiter = asyncio.create_task(self.wake.wait())
        closed = asyncio.create_task(self.link.wait_closed())
        try:
            done, _ = await asyncio.wait([waiter, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            closed.cancel()
        if closed in done:
            closed.result()  # raises the reason the link went down
            raise ConnectionError("connection closed")

    async def _wait_for_work(self) -> None:
        while not self.buffer.peek(1) and not self._finishing:
            self.wake.clear()
            await self.wake.wait()
            # Asleep, the node ignores link events (it has nothing to send); one that came meanwhile
            # must not cut the backoff of this wake-up's connect.
            self._link_up.clear()
        if self._finishing and not self.buffer.peek(1):
            self._drained.set()
            await asyncio.Event().wait()

    async def _disconnect(self, *, send_will: bool) -> None:
        self.connected = False
        self._stop_reader()
        await self.link.disconnect(send_will=send_will)
        self._set_status()

    async def _on_failure(self, exc: Exception) -> None:
        if isinstance(exc, BrokerRefused) and self.connected:
            await self._on_refusal(exc)
            return
        was_connected, self.connected = self.connected, False
        self.buffer.set_link(False)  # what the buffer holds in memory goes to disk now
        self._stop_reader()
        with contextlib.suppress(Exception):
            await self.link.disconnect()
        pending = self.buffer.stats().pending_readings
        # Not transient (wrong CA, wrong password, not authorized): nothing changes until someone
        # fixes the config or the broker, so ERROR (journalctl -p err), once per streak.
        permanent = not getattr(exc, "transient", True)
        if was_connected and not permanent:
            log.warning("connection to %s:%d lost: %s; %d readings buffered", self.mqtt.host, self.mqtt.port,
                        exc, pending)
        elif permanent and not self._failing_permanent:
            log.error("cannot connect to %s:%d: %s; this needs a change in the config or on the broker: "
                      "%d readings stay buffered, retrying with backoff up to %g s", self.mqtt.host,
                      self.mqtt.port, exc, pending, self.mqtt.reconnect_max_s)
        elif not self._failing:
            log.warning("cannot connect to %s:%d: %s; retrying with backoff up to %g s", self.mqtt.host,
                        self.mqtt.port, exc, self.mqtt.reconnect_max_s)
        else:
            log.debug("still cannot connect: %s", exc)
        self._failing = True
        self._failing_permanent = permanent or self._failing_permanent
        self._set_status()
        self._urgent.clear()  # an urgent reading sealed before this attempt was what it tried to send
        loop = asyncio.get_running_loop()
        # A link event while connected counts only if the connection may have been dead already
        # (a link that flapped faster than the keepalive noticed), not one from hours ago.
        if loop.time() - self._link_up_at > self.mqtt.keepalive_s + 2 * self.link_timeout_s:
            self._link_up.clear()
        if self.duty and self.link_watched and getattr(exc, "no_route", False):
            # The node's own link is down: retrying cannot help before it is back, and the kernel
            # says when. Wait for that, or for reconnect_max_s in case it comes back unannounced
            # (a route the watch does not report); the backoff does not advance meanwhile.
            if not self._awaiting_link:
                log.info("no route to %s: waiting for the link to come back (or %g s)", self.mqtt.host,
                         self.mqtt.reconnect_max_s)
                self._awaiting_link = True
            if self._step_end is None:
                self._step_end = loop.time() + self.mqtt.reconnect_max_s
        elif self._step_end is None:  # else the extra attempt for an urgent reading failed: finish the step
            self._step_end = loop.time() + self.backoff.next_delay()
        await self._back_off(self._step_end - loop.time())

    # -- what cuts the backoff short -------------------------------------------------------------

    def link_up(self, what: str) -> None:
        """The kernel reports the link back (`sensord.linkwatch`: carrier or operstate up, an
        address or a default route added): while disconnected, try at once and restart the
        backoff from its first step. `what` says which event, for the log."""
        self._link_up_what = what
        self._link_up_at = asyncio.get_running_loop().time()
        self._link_up.set()

    def urgent(self) -> None:
        """A reading of an urgent sensor was sealed: while disconnected, one extra attempt now,
        at most once per backoff step (the step's wait then goes on)."""
        if not self.connected:
            self._urgent.set()

    async def _back_off(self, delay_s: float) -> None:
        """Wait out one backoff step, or less: a stop (once), a link-up event, an urgent reading."""
        waits = {asyncio.create_task(self._finish_requested()), link := asyncio.create_task(self._link_up.wait())}
        urgent = None if self._urgent_used else asyncio.create_task(self._urgent.wait())
        if urgent is not None:
            waits.add(urgent)
        try:
            done, _ = await asyncio.wait(waits, timeout=max(0.0, delay_s), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if link in done:
            log.info("%s: connecting now", self._link_up_what)
            self._link_up.clear()
            self.backoff.reset()
        elif urgent is not None and urgent in done:
            log.info("urgent reading while disconnected: one extra attempt now")
            self._urgent.clear()
            self._urgent_used = True
            return  # the step goes on if it fails
        self._urgent_used = False
        self._step_end = None

    async def _on_refusal(self, exc: BrokerRefused) -> None:
        """The broker took the connection but not the batch: keep both, back off, send it again.
        Logged once per streak (ERROR when only a change on the broker or in the config helps)."""
        self.buffer.set_link(False)
        if not self._refusing:
            pending = self.buffer.stats().pending_readings
            log.log(logging.WARNING if exc.transient else logging.ERROR,
                    "%s; %d readings stay buffered, retrying with backoff up to %g s",
                    exc, pending, self.mqtt.reconnect_max_s)
        else:
            log.debug("still refused: %s", exc)
        self._refusing = True
        waiter = asyncio.create_task(self._finish_requested())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, self.backoff.next_delay())

    async def _finish_requested(self) -> None:
        """Cut the backoff short once, when a stop asks for a last delivery attempt."""
        if self._finishing and self._retried_for_finish:
            await asyncio.Event().wait()
        while not self._finishing:
            self.wake.clear()
            await self.wake.wait()
        self._retried_for_finish = True

    def _set_status(self) -> None:
        stats = self._stats = self.buffer.stats()
        if self.connected or (self.duty and not self._failing):
            text = f"{'connected' if self.connected else 'sleeping'}, {stats.pending_batches} batches pending"
        else:
            text = f"offline, {stats.pending_readings + stats.staged_readings} readings buffered"
        self.notifier.status(text)

    # -- shutdown --------------------------------------------------------------------------------

    async def finish(self, *, timeout_s: float, offline: bool) -> None:
        """Deliver what is pending for up to `timeout_s`, then (on stop) publish `offline` and disconnect."""
        self._finishing = True
        self.wake.set()
        if self.buffer.peek(1):
            try:
                await asyncio.wait_for(self._drained.wait(), timeout_s)
            except TimeoutError:
                stats = self.buffer.stats()
                log.warning("stopping with %d readings undelivered; they stay in %s for the next start",
                            stats.pending_readings, self.config.buffer.path)
        self._abandoned = True
        # Cancel until it ends: a library call finishing just as the cancel arrives can swallow
        # it (Python 3.11's wait_for), and the task would then wait for work forever.
        while self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        if self.connected:
            try:
                if offline:
                    await asyncio.wait_for(self.link.publish(self.topics.status, OFFLINE, qos=1, retain=True),
                                           max(1.0, min(timeout_s, 5.0)))
            except Exception as exc:  # the broker will publish the will instead
                log.warning("could not publish offline: %s", exc)
            self._stop_reader()
            with contextlib.suppress(Exception):
                await self.link.disconnect()
            self.connected = False
