"""MQTT keepalive driven by the link, not by a once-a-second timer in the library.

MQTT (3.1.1 §3.1.2.10, 5 §3.1.2.10) asks the client to send *some* control packet within every
keepalive interval; the broker drops a client it has not heard from for 1.5 times that. A PINGREQ
is only needed when nothing else went out: a node that publishes a batch every minute with a
keepalive of five minutes never pings. paho instead pings whenever nothing went out *or came in*
for the keepalive (so also while publishing QoS 0), and its callers check that once a second,
which is what woke an idle node 60 times a minute (see `sensord.mqtt.compat`).

`keep_alive()` sleeps until the keepalive is due, measured from the last packet that went out,
sends PINGREQ then, and waits `answer_s` for the PINGRESP: a broker (or a path to it) that does
not answer is gone, and the link drops the connection, as it does after a missing PUBACK.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from .compat import Failure

__all__ = ["Clock", "MonotonicClock", "Pinger", "keep_alive"]


class Pinger(Protocol):
    """What keepalive needs of a connection (`compat.Connection`, the test kit's `FakeConnection`)."""

    def idle_s(self) -> float:
        """Seconds since the last packet to the broker went out."""
        ...

    async def ping(self, timeout_s: float) -> None:
        """PINGREQ, then wait for PINGRESP; `compat.Failure` when none comes in time or the connection ends."""
        ...


class Clock(Protocol):
    """Monotonic time and a sleep until a point of it (`sensord.testing.clock.FakeClock` in tests)."""

    def monotonic(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...


class MonotonicClock:
    """The real monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def keep_alive(conn: Pinger, *, keepalive_s: float, answer_s: float, clock: Clock) -> str:
    """Keep `conn` alive until the broker fails to answer a PINGREQ within `answer_s`; return why.

    Wakes once per `keepalive_s` at most while packets go out (to find the deadline moved), and
    once more per PINGREQ only when none did. Raises `compat.Failure("lost")` if the connection
    ends otherwise; cancel it when the connection is closed."""
    pinged_at = -math.inf  # also a PINGREQ counts, should a connection not stamp it
    while True:
        wait_s = keepalive_s - min(conn.idle_s(), clock.monotonic() - pinged_at)
        if wait_s > 0:
            await clock.sleep_until(clock.monotonic() + wait_s)
            continue
        pinged_at = clock.monotonic()
        try:
            await conn.ping(answer_s)
        except Failure as failure:
            if failure.kind != "timeout":
                raise
            return f"no PINGRESP within {answer_s:g} s"
