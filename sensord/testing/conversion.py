"""A forced-mode conversion in a fake chip, timed by polls of its status register rather than by
a clock (the Bosch BME280/BMP280 and BME680 models): a test sets how many status reads it takes."""

from __future__ import annotations

from collections.abc import Callable


class PolledConversion:
    """A conversion that reads as running for `busy_reads` polls after `start()`, then calls
    `latch` once to put its results into the data registers."""

    def __init__(self, latch: Callable[[], None]) -> None:
        self._latch = latch
        self._busy = 0
        self._pending = False

    def start(self, busy_reads: int) -> None:
        """Start a conversion; with `busy_reads` 0 it ends at once."""
        self._pending = True
        self._busy = busy_reads
        if not self._busy:
            self.finish()

    def poll(self) -> bool:
        """One read of the status register: whether the conversion still runs (else it ends)."""
        if self._busy:
            self._busy -= 1
            return True
        self.finish()
        return False

    def finish(self) -> None:
        """End the running conversion, if any: latch its results."""
        if not self._pending:
            return
        self._pending = False
        self._latch()

    def cancel(self) -> None:
        """Drop a running conversion without results (a reset)."""
        self._busy = 0
        self._pending = False
