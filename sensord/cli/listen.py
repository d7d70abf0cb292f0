"""`sensord listen`: subscribe to nodes' batches and status, print one JSON object per reading."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..config import MqttConfig
from ..encoding import ENCODINGS, DecodeError, Encoding, decode
from ..mqtt import MqttLink
from .rows import reading_rows

log = logging.getLogger(__name__)


async def listen(*, host: str, port: int, prefix: str, node: str | None, count: int | None,
                 timeout_s: float | None, status: bool, emit: Callable[[dict[str, Any]], None],
                 mqtt: MqttConfig | None = None, encodings: Mapping[str, Encoding] = ENCODINGS) -> int:
    """Print readings until `count` readings or `timeout_s` seconds; returns the exit code.
    `encodings`: what batches may be in (the built-in ones and those of loaded plugins)."""
    base = mqtt or MqttConfig()
    config = MqttConfig(host=host, port=port, username=base.username, password_file=base.password_file,
                        tls=base.tls, protocol=base.protocol, keepalive_s=base.keepalive_s)
    link = MqttLink(config=config, client_id=f"sensord-listen-{os.getpid()}", timeout_s=10.0)
    who = node or "+"
    topics = [f"{prefix}/{who}/data"] + ([f"{prefix}/{who}/status"] if status else [])
    seen = 0

    async def receive() -> None:
        nonlocal seen
        await link.connect()
        await link.subscribe(topics, qos=1)
        async for message in link.messages():
            parts = message.topic.split("/")
            sender = parts[-2] if len(parts) >= 2 else "?"
            if message.topic.endswith("/status"):
                emit({"node": sender, "status": message.payload.decode("utf-8", "replace")})
                continue
            try:
                batch = decode(message.payload, encodings)
            except DecodeError as exc:
                log.warning("%s: %s", message.topic, exc)
                continue
            for row in reading_rows(batch):
                emit(row)
                seen += 1
                if count is not None and seen >= count:
                    return

    try:
        if timeout_s is None:
            await receive()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receive(), timeout_s)
    finally:
        await link.disconnect()
    return 0
