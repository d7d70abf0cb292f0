"""The bridge's loop: messages from the broker in, decoded and de-duplicated readings out.

`Bridge.handle()` does the work for one message and knows nothing of the MQTT library (it gets a
`publish` callable), so tests drive it directly; `run_bridge()` wires it to `sensord.mqtt.MqttLink`
with a persistent session (MQTT 5 Clean Start 0 and a Session Expiry Interval, QoS 1), so what
the broker queued while the bridge was down arrives when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..encoding import MAX_PAYLOAD_BYTES, DecodeError, Encoding, decode, detect
from ..errors import BrokerError
from ..mqtt import Backoff, MqttLink, format_value
from .config import BridgeFile
from .outputs import LineSink, channel_topic, json_line, latest_per_channel, line_protocol, reading_rows, status_line
from .state import DedupeState

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]
STATE_FILE = "state.sqlite"


def topic_filters(prefix: str, nodes: tuple[str, ...] = (), shared_group: str = "") -> list[str]:
    """The subscriptions: data, status and meta of the listed nodes (every node when none),
    through `$share/{group}/` when a shared group is set (MQTT 5 shared subscriptions)."""
    share = f"$share/{shared_group}/" if shared_group else ""
    return [f"{share}{prefix}/{node}/{kind}" for node in (nodes or ("+",)) for kind in ("data", "status", "meta")]


def _odd(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


class BadInput:
    """Counts bad messages per node and kind; logs the first at once, then at most one line per
    node and kind every `interval_s` with the count since the last line."""

    def __init__(self, *, interval_s: float, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.interval_s = interval_s
        self.counts: dict[tuple[str, str], int] = {}
        self._clock = clock
        self._log = logger
        self._last: dict[tuple[str, str], float] = {}
        self._unlogged: dict[tuple[str, str], int] = {}
        self.lines = 0

    #: Most (node, kind) pairs kept apart; past it, garbage under ever new node ids (a flood of
    #: odd topics) is counted under node "*" so memory stays bounded.
    MAX_KEYS = 10_000

    def report(self, node: str, kind: str, detail: str) -> None:
        key = (node, kind)
        if key not in self.counts and len(self.counts) >= self.MAX_KEYS:
            key = ("*", kind)
        self.counts[key] = self.counts.get(key, 0) + 1
        self._unlogged[key] = self._unlogged.get(key, 0) + 1
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return
        self._last[key] = now
        count = self._unlogged.pop(key)
        self.lines += 1
        self._log.warning("node %r: %s (%d since the last such line, %d in all): %s",
                          key[0], kind, count, self.counts[key], detail)


@dataclass
class Stats:
    """What the bridge did, for logs, tests and the benchmark."""

    batches: int = 0
    readings: int = 0
    repeats: int = 0
    resets: int = 0
    held_back: int = 0
    skipped_values: int = 0
    bad: dict[str, int] = field(default_factory=dict)


class Bridge:
    """Turns one node message into output lines and retained topics; see the module docstring."""

    def __init__(self, *, file: BridgeFile, state: DedupeState, encodings: Mapping[str, Encoding],
                 line_sink: LineSink | None = None, json_sink: LineSink | None = None,
                 publish: Publish | None = None, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = file.bridge
        self.prefix = file.mqtt.topic_prefix
        self.state = state
        self.encodings = encodings
        self.line_sink = line_sink
        self.json_sink = json_sink
        self.publish = publish if self.config.out_prefix else None
        self.clock = clock
        self.bad = BadInput(interval_s=self.config.bad_input_log_interval_s, clock=monotonic)
        self.stats = Stats()
        self._prefix_parts = self.prefix.split("/")

    def _report(self, node: str, kind: str, detail: str) -> None:
        self.stats.bad[kind] = self.stats.bad.get(kind, 0) + 1
        self.bad.report(node, kind, detail)

    async def handle(self, topic: str, payload: bytes) -> None:
        """One message from `{prefix}/{node}/data|status|meta`."""
        parts = topic.split("/")
        n = len(self._prefix_parts)
        if len(parts) != n + 2 or parts[:n] != self._prefix_parts:
            self._report("?", "unexpected topic", repr(topic))
            return
        node, kind = parts[n], parts[n + 1]
        if kind == "data":
            await self._data(node, payload)
        elif kind in ("status", "meta"):
            await self._pass_through(node, kind, payload)

    async def _pass_through(self, node: str, kind: str, payload: bytes) -> None:
        if _odd(node):
            self._report(node, "odd characters in node id", f"{kind} message dropped")
            return
        if len(payload) > 65536:
            self._report(node, f"{kind} too large", f"{len(payload)} bytes")
            return
        text = payload.decode("utf-8", "replace")
        if text:
            if kind == "status":
                if self.line_sink is not None:
                    self.line_sink.write([status_line(self.config.measurement, node, text, time.time_ns())])
                if self.json_sink is not None:
                    self.json_sink.write([json_line({"node": node, "status": text})])
            elif self.json_sink is not None:
                try:
                    meta: object = json.loads(text)
                except ValueError:
                    meta = text
                self.json_sink.write([json_line({"node": node, "meta": meta})])
        if self.publish is not None:
            await self.publish(f"{self.config.out_prefix}/{node}/{kind}", payload)

    async def _data(self, node: str, payload: bytes) -> None:
        try:
            encoding = detect(payload, self.encodings)
        except DecodeError as exc:
            self._report(node, "not a batch", str(exc))
            return
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._report(node, "payload too large", f"{encoding.name} payload of {len(payload)} bytes "
                                                    f"is larger than {MAX_PAYLOAD_BYTES}")
            return
        try:
            batch = decode(payload, self.encodings)
        except DecodeError as exc:
            self._report(node, f"bad {encoding.name} batch", str(exc))
            return
        if batch.node != node:
            self._report(node, "node id differs from the topic's", f"batch says {batch.node!r}, dropped")
            return
        if _odd(node) or any(_odd(s.sensor) or _odd(s.quantity) for s in batch.samples):
            self._report(node, "odd characters in names", f"batch seq {batch.seq} has control characters "
                                                           "in its node, sensor or quantity names; dropped")
            return
        admitted = self.state.admit(node, batch.seq, batch.samples)
        self.stats.batches += 1
        if admitted.verdict == "reset":
            self.stats.resets += 1
            log.warning("node %r: sequence went back from %s to %d with newer readings: its buffer was reset; "
                        "taking its batches from here", node, admitted.previous_high, batch.seq)
        elif admitted.verdict == "repeat":
            self.stats.repeats += 1
            log.debug("node %r: batch seq %d is a repeat (highest %s)", node, batch.seq, admitted.previous_high)
        if admitted.held_back and admitted.verdict != "repeat":
            self._report(node, "readings older than already written",
                         f"{admitted.held_back} of batch seq {batch.seq} left out to keep time order")
        self.stats.held_back += admitted.held_back
        samples = admitted.samples
        if samples:
            if self.line_sink is not None:
                lines, skipped = line_protocol(self.config.measurement, node, samples, unsynced=batch.unsynced)
                self.line_sink.write(lines)
                if skipped:
                    self.stats.skipped_values += skipped
                    self._report(node, "non-finite values", f"{skipped} left out of line protocol")
            if self.json_sink is not None:
                self.json_sink.write(json_line(r) for r in reading_rows(node, batch.seq, samples,
                                                                         unsynced=batch.unsynced))
            if self.publish is not None:
                for (sensor, quantity), s in latest_per_channel(samples).items():
                    topic = channel_topic(self.config.out_prefix, node, sensor, quantity)
                    if topic is None:
                        self._report(node, "name not usable in a topic", f"{sensor}/{quantity}")
                        continue
                    await self.publish(topic, format_value(s.value))
            self.stats.readings += len(samples)
        self.state.commit()


async def run_bridge(file: BridgeFile, *, encodings: Mapping[str, Encoding], stdout: IO[str] | None = None,
                     stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set); returns the exit code."""
    cfg = file.bridge
    state = DedupeState.open(Path(cfg.state_dir) / STATE_FILE)
    line_sink = LineSink(cfg.line_protocol, stdout) if cfg.line_protocol else None
    json_sink = LineSink(cfg.json_lines, stdout) if cfg.json_lines else None
    link = MqttLink(config=file.mqtt, client_id=cfg.client_id, session_expiry_s=cfg.session_expiry_s or None,
                    timeout_s=10.0, logger=log.getChild("mqtt"), ack_when_handled=True)

    async def publish(topic: str, payload: bytes) -> None:
        await link.publish(topic, payload, qos=1, retain=True)

    bridge = Bridge(file=file, state=state, encodings=encodings, line_sink=line_sink, json_sink=json_sink,
                    publish=publish)
    filters = topic_filters(file.mqtt.topic_prefix, cfg.nodes, cfg.shared_group)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    backoff = Backoff(max_s=file.mqtt.reconnect_max_s)

    async def receive() -> None:
        failing = False
        while True:
            try:
                await link.connect()
                await link.subscribe(filters, qos=1)
                log.info("bridge %s: subscribed to %s (state %s, %d nodes known)", cfg.client_id,
                         ", ".join(filters), state.path, len(state.nodes()))
                backoff.reset()
                failing = False
                async for message in link.messages():
                    try:
                        await bridge.handle(message.topic, message.payload)
                    except BrokerError:
                        raise
                    except Exception as exc:  # noqa: BLE001  the loop keeps every other node running
                        log.error("message on %r: %s: %s", message.topic, type(exc).__name__, exc)
                return
            except BrokerError as exc:
                if not failing:
                    log.warning("%s; reconnecting", exc)
                failing = True
                await link.disconnect()
                await asyncio.sleep(backoff.next_delay())

    task = asyncio.create_task(receive())
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, waiter):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await link.disconnect()
        state.close()
        for sink in (line_sink, json_sink):
            if sink is not None:
                sink.close()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    log.info("bridge %s stopped: %d batches, %d readings written, %d repeats, %d resets", cfg.client_id,
             bridge.stats.batches, bridge.stats.readings, bridge.stats.repeats, bridge.stats.resets)
    return 0
