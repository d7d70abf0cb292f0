"""A virtual clock for scheduler tests: time moves only when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """Implements the scheduler's `Clock` protocol on virtual time.

    Tasks awaiting `sleep_until()` park until `run_until()` moves time to their deadline, in
    deadline order. A driver can simulate a slow read with `advance()`.
    """

    def __init__(self, *, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self.now = start
        self._offset = epoch - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self._offset

    def step(self, seconds: float) -> None:
        """Step the wall clock by `seconds` (NTP's first sync, `date -s`); monotonic time, and
        so every sleeper, is not affected."""
        self._offset += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward without waking anybody (a read that takes `seconds`)."""
        self.now += seconds

    @property
    def sleepers(self) -> int:
        """How many tasks are parked in `sleep_until()`."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self.now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    async def run_until(self, until: float, *, sleepers: int, settle_s: float = 5.0) -> None:
        """Wake parked tasks in deadline order up to monotonic time `until`.

        Before each step, waits (in real time, at most `settle_s`) until `sleepers` tasks are
        parked, so readings done in worker threads finish before virtual time moves on.
        """
        loop = asyncio.get_running_loop()
        while True:
            give_up = loop.time() + settle_s
            while self.sleepers < sleepers:
                if loop.time() > give_up:
                    raise TimeoutError(f"only {self.sleepers} of {sleepers} tasks parked at t={self.now}")
                await asyncio.sleep(0.001)
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers or self._sleepers[0][0] > until:
                self.now = max(self.now, until)
                return
            deadline, _, fut = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            fut.set_result(None)
            await asyncio.sleep(0)
