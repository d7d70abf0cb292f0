"""`sensord listen`: subscribe to nodes' batches and status, print one JSON object per reading.

It stays up while the broker restarts: a lost connection is one line on stderr, then it
reconnects with capped, jittered backoff (`LISTEN_RECONNECT_MAX_S`), says so in one more line and
resubscribes. The broker then sends the retained status again; with `--status` it is printed when
it differs from the last one printed for that node, so status changes made while listen was away
show up. A broker that is not there yet at the start is waited for the same way (one line,
then retries). It exits only on Ctrl-C, `--count`, `--timeout` or an error that retrying cannot
fix (a wrong password, an untrusted certificate, an unknown host); `--timeout` without a single
connection is an error too (exit 1, naming the last failure).

`--session NAME`: a persistent session (client id `sensord-listen-NAME`, clean start off, session
expiry `SESSION_EXPIRY_S`, QoS 1 subscriptions): the broker queues the batches published while
listen is away (mosquitto: up to `max_queued_messages`, 1000 by default) and delivers them when
it comes back, after a broker restart or a restart of listen itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ..config import MqttConfig
from ..encoding import ENCODINGS, DecodeError, Encoding, decode
from ..errors import BrokerError
from ..mqtt import Backoff, MqttLink, Received, connect_timeout_s
from .rows import reading_rows

log = logging.getLogger(__name__)

#: How long the broker keeps a `--session` (and queues QoS 1 batches for it) while listen is away.
SESSION_EXPIRY_S = 86_400
#: The reconnect backoff's cap: short, as someone is watching.
LISTEN_RECONNECT_MAX_S = 10.0


def _say(line: str) -> None:
    print(f"sensord: {line}", file=sys.stderr, flush=True)


async def listen(*, host: str, port: int, prefix: str, node: str | None, count: int | None,
                 timeout_s: float | None, status: bool, emit: Callable[[dict[str, Any]], None],
                 mqtt: MqttConfig | None = None, encodings: Mapping[str, Encoding] = ENCODINGS,
                 session: str | None = None, backoff: Backoff | None = None,
                 say: Callable[[str], None] = _say) -> int:
    """Print readings until `count` readings or `timeout_s` seconds; returns the exit code.
    `encodings`: what batches may be in (the built-in ones and those of loaded plugins).
    `session`: the name of a persistent session (see the module docstring). `backoff` replaces
    the reconnect backoff (tests); `say` writes the one-line notices (lost, back) to stderr."""
    base = mqtt or MqttConfig()
    config = MqttConfig(host=host, port=port, username=base.username, password_file=base.password_file,
                        tls=base.tls, protocol=base.protocol, keepalive_s=base.keepalive_s)
    client_id = f"sensord-listen-{session}" if session else f"sensord-listen-{os.getpid()}"
    link = MqttLink(config=config, client_id=client_id, timeout_s=connect_timeout_s(config.keepalive_s),
                    session_expiry_s=SESSION_EXPIRY_S if session else None, keep_session=session is not None)
    backoff = backoff or Backoff(max_s=LISTEN_RECONNECT_MAX_S, first_s=0.5)
    where = f"{host}:{port}"
    who = node or "+"
    topics = [f"{prefix}/{who}/data"] + ([f"{prefix}/{who}/status"] if status else [])
    seen = 0
    last_status: dict[str, str] = {}

    def show(message: Received) -> bool:
        """Print one message; True once `count` readings are printed."""
        nonlocal seen
        parts = message.topic.split("/")
        sender = parts[-2] if len(parts) >= 2 else "?"
        if message.topic.endswith("/status"):
            text = message.payload.decode("utf-8", "replace")
            # After a reconnect the broker sends the retained status again: print only a change.
            if not (message.retain and last_status.get(sender) == text):
                emit({"node": sender, "status": text})
            last_status[sender] = text
            return False
        try:
            batch = decode(message.payload, encodings)
        except DecodeError as exc:
            log.warning("%s: %s", message.topic, exc)
            return False
        for row in reading_rows(batch):
            emit(row)
            seen += 1
            if count is not None and seen >= count:
                return True
        return False

    async def receive() -> bool:
        async for message in link.messages():
            if show(message):
                return True
        return False

    async def connected() -> bool:
        """Receive until `count` is reached (True) or the connection is lost (False)."""
        receiver = asyncio.create_task(receive())
        closed = asyncio.create_task(link.wait_closed())
        try:
            await asyncio.wait([receiver, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not receiver.done():
                receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, BrokerError):
            await closed
        try:
            return await receiver  # raises the receive's BrokerError, if that came first
        except asyncio.CancelledError:
            return False

    ever_connected = False
    last_error: BrokerError | None = None

    async def run() -> None:
        nonlocal ever_connected, last_error
        lost = False
        while True:
            try:
                await link.connect()
                await link.subscribe(topics, qos=1)
                if lost:
                    say(f"connected to {where}" + (" again" if ever_connected else ""))
                ever_connected, lost = True, False
                backoff.reset()
                if await connected():
                    return
                raise BrokerError(f"MQTT broker {where}: connection lost")
            except BrokerError as exc:
                if not exc.transient:
                    raise
                last_error = exc
                if not lost:
                    say(f"{exc}; {'reconnecting' if ever_connected else 'retrying'}")
                lost = True
            await link.disconnect()
            await asyncio.sleep(backoff.next_delay())

    try:
        if timeout_s is None:
            await run()
        else:
            try:
                await asyncio.wait_for(run(), timeout_s)
            except TimeoutError:
                if not ever_connected:
                    raise BrokerError(f"{last_error or f'MQTT broker {where}'}; no connection within "
                                      f"{timeout_s:g} s") from None
    finally:
        await link.disconnect()
    return 0
