"""When Home Assistant discovery goes out (the messages themselves: `sensord.homeassistant`).

`Announcer` lives as long as the daemon (across reloads) and is driven by the publisher:

- after each drain (persistent mode: after every delivery; duty cycle: before going back to
  sleep) it publishes the device discovery message if it differs from the one last published, and
  the state message (the latest value of each channel that changed, and the diagnostics; every
  value for `DISCOVERY_GRACE_S` after a device message, see there);
- what was last published is kept in a small state file beside the buffer, written only when the
  discovery changes, so a restart or a duty-cycle wake-up publishes nothing new, a channel removed
  from the config is removed from Home Assistant (listed with its platform only), a changed node id
  clears the old device, and `discovery = false` clears the retained config once;
- in persistent mode it subscribes to `{discovery_prefix}/status`: Home Assistant's `online` birth
  message (sent live when it starts) makes it publish discovery and the whole state again, for a
  broker that lost its retained messages. A duty-cycle node is not connected to hear it.

A broker that refuses the discovery or state topics (an ACL), or never acknowledges them, costs
one WARNING line; discovery is then left alone until the next connection, and the batches go on on
the same connection (a link that really died shows it by its keepalive or the next batch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import homeassistant as ha
from ..config import Config
from ..errors import BrokerRefused, BrokerTimeout, ConfigError
from ..sensor import Channel, Sample, Value
from .link import MqttLink

log = logging.getLogger(__name__)

#: Home Assistant subscribes to the state topic only once it has processed a device message, and
#: then gets only the retained state message, the last one: each state message is whole (every
#: value, not only what changed) for this long after a device message went out, so a value that
#: does not change is not lost to a Home Assistant that was slower than the next state message.
DISCOVERY_GRACE_S = 60.0


class Announcer:
    """Home Assistant discovery and state for one node. `channels` is called after each drain
    (channels can change when a sensor opens); the entities and the device message are made
    again only when what it returns changed."""

    def __init__(self, config: Config, *, state_file: str | Path, state_topic: str, status_topic: str,
                 version: str, model: str | None = None, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.state_file = Path(state_file)
        self.version = version
        self.model = model if model is not None else ha.device_model()
        self.clock = clock
        self.monotonic = monotonic
        self.started = monotonic()
        self.last_delivery: float | None = None
        self.tracker = ha.StateTracker([])
        self._birth = False
        self._whole_until = -float("inf")  # monotonic: state messages are whole until then
        self._delivered = False  # batches went out since the last state message
        self._refused = False  # this connection's broker refused or ignored a topic: leave discovery alone
        self._warned = False  # that was logged; again only after discovery went out once more
        self._broken_channels: str | None = None
        self._file_problem = False
        self._published: dict[str, Any] | None = None  # the state file's content, read once
        self._loaded = False
        self.configure(config, state_topic=state_topic, status_topic=status_topic, channels=list)

    def configure(self, config: Config, *, state_topic: str, status_topic: str,
                  channels: Callable[[], list[tuple[str, Channel]]]) -> None:
        """A (re)loaded config: the daemon calls this for each generation, before it connects."""
        self.config = config.homeassistant
        self.node = config.node.id
        self.file = config.file
        self.duty = config.mqtt.mode == "duty_cycle"
        self.state_topic = state_topic
        self.status_topic = status_topic
        self._channels = channels
        self._made_from: list[tuple[str, Channel]] | None = None  # the channels `_entities` were made from
        self._entities: list[ha.Entity] | None = None
        self._message: dict[str, Any] = {}
        self._published_is_current = False  # the device message on the broker is `_message`
        if self.config.discovery:
            self._current_entities()

    # -- what the publisher calls ------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to after connecting (none in duty-cycle mode)."""
        return [f"{self.config.discovery_prefix}/status"] if self.config.discovery and not self.duty else []

    def on_message(self, topic: str, payload: bytes, retain: bool) -> bool:
        """True when Home Assistant announced itself (a live `online`, not the retained copy a
        subscription gets): the publisher then runs `after_drain` soon."""
        if topic == f"{self.config.discovery_prefix}/status" and payload.strip() == b"online" and not retain:
            log.info("Home Assistant announced itself; publishing discovery again")
            self._birth = True
            return True
        return False

    def connected(self) -> None:
        self._refused = False
        if not self.duty:
            # The broker may have restarted without its retained messages: one whole state message.
            self.tracker.forget_sent()

    def observe(self, samples: Sequence[Sample]) -> None:
        """Sealed samples (the pipeline's hook): the latest value of each channel."""
        observe = self.tracker.observe
        for s in samples:
            observe(s.sensor, s.quantity, s.value)

    def delivered(self) -> None:
        """The broker acknowledged a page of batches."""
        self.last_delivery = self.clock()
        self._delivered = True

    async def after_drain(self, link: MqttLink, buffer_figures: Mapping[str, int]) -> None:
        """Publish what changed: the discovery message, then (when batches were delivered since the
        last state message, or Home Assistant asked) the state message."""
        if self._refused:
            return
        try:
            if not self.config.discovery:
                await self._clear(link)
                return
            entities = self._current_entities()
            if entities is None:
                return
            birth = self._birth
            if await self._discover(link):
                self._whole_until = self.monotonic() + DISCOVERY_GRACE_S
            if not (self._delivered or birth):
                return
            everything = self.monotonic() < self._whole_until
            payload = self.tracker.message(self._diagnostics(buffer_figures), everything=everything)
            if payload is not None:
                await link.publish(self.state_topic, payload, qos=0, retain=True)
            self._delivered = False
            self._warned = False
        except (BrokerRefused, BrokerTimeout) as exc:
            # Discovery must never take the batches' link down: leave it until the next connection.
            # A link that really died shows it to the publisher by its keepalive, or the next batch.
            self._refused = True
            if not self._warned:
                log.warning("Home Assistant discovery: %s; the batches go on without it, and discovery is tried "
                            "again on the next connection (allow the topics %s/# and %s for this client, or set "
                            "[homeassistant] discovery = false)", exc, self.config.discovery_prefix, self.state_topic)
            self._warned = True

    # -- steps ---------------------------------------------------------------------------------------

    def _current_entities(self) -> list[ha.Entity] | None:
        """The entities of the channels the sensors have now; made again (and the device message
        with them) only when those changed, e.g. a sensor that found its chip's channels at open()."""
        channels = self._channels()
        if channels == self._made_from:
            return self._entities
        self._made_from = channels
        try:
            entities = ha.entities(self.node, channels, file=self.file)
        except ConfigError as exc:  # channels that only collide once the sensors opened
            if str(exc) != self._broken_channels:
                log.error("Home Assistant discovery left out: %s", exc)
                self._broken_channels = str(exc)
            self._entities = None
            return None
        self._broken_channels = None
        self._entities = entities
        self._message = ha.discovery_message(node=self.node, entities=entities, status_topic=self.status_topic,
                                             state_topic=self.state_topic, version=self.version, model=self.model)
        self._published_is_current = False
        self.tracker.reconfigure(entities)
        return entities

    def _diagnostics(self, figures: Mapping[str, int]) -> dict[str, Value]:
        out: dict[str, Value] = {"_b": figures.get("pending_readings", 0),
                                 "_x": figures.get("dropped_readings", 0),
                                 "_u": int(self.monotonic() - self.started)}
        if self.last_delivery is not None:
            out["_d"] = int(self.last_delivery)
        return out

    async def _discover(self, link: MqttLink) -> bool:
        """Publish the device message if it is not the one last published (or Home Assistant asked
        for it). True when it went out: the next state message then carries every value."""
        if self._published_is_current and not self._birth:
            return False
        topic = ha.discovery_topic(self.config.discovery_prefix, self.node)
        message = self._message
        previous = self._load()
        same_topic = previous is not None and previous.get("topic") == topic
        if same_topic and previous is not None and previous.get("message") == message and not self._birth:
            self._published_is_current = True
            return False
        removed: dict[str, str] = {}
        if previous is not None and not same_topic:
            await link.publish(str(previous.get("topic")), b"", qos=1, retain=True)  # the node was renamed
        elif previous is not None:
            now = ha.announced(message)
            removed = {cid: p for cid, p in ha.announced(previous.get("message", {})).items() if cid not in now}
        await link.publish(topic, ha.encode(ha.with_removed(message, removed)), qos=1, retain=True)
        self._save({"topic": topic, "message": message})
        self._published_is_current = True
        if removed:
            log.info("Home Assistant discovery: removed %s", ", ".join(sorted(removed)))
        self._birth = False
        return True

    async def _clear(self, link: MqttLink) -> None:
        """`discovery = false`: take back what an earlier run announced, once."""
        previous = self._load()
        if previous is None:
            return
        await link.publish(str(previous.get("topic")), b"", qos=1, retain=True)
        await link.publish(self.state_topic, b"", qos=1, retain=True)
        log.info("Home Assistant discovery is off: cleared the retained device message %s", previous.get("topic"))
        self._published = None
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    # -- the state file ------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        if self._loaded:
            return self._published
        self._loaded = True
        try:
            data = json.loads(self.state_file.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # damaged: announce again, which rewrites it
            log.warning("Home Assistant discovery: cannot read %s (%s); publishing discovery again",
                        self.state_file, exc)
            return None
        self._published = data if isinstance(data, dict) else None
        return self._published

    def _save(self, data: dict[str, Any]) -> None:
        self._published, self._loaded = data, True
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(ha.encode(data))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_file)
            self._file_problem = False
        except OSError as exc:  # a full disk: discovery went out; it is published again next time
            if not self._file_problem:
                log.warning("Home Assistant discovery: cannot write %s: %s", self.state_file, exc)
            self._file_problem = True
            with contextlib.suppress(OSError):
                tmp.unlink()
