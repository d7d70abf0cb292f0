"""The batcher: collects stamped samples into the open batch and says when it must be sealed.

Pure bookkeeping, no I/O: the daemon seals (`take()`) when `add()` reports the batch full or
when `due_at()` has passed, and stages `unstaged()` samples to disk every commit interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .sensor import Sample


class Batcher:
    """The open batch: sealed at `max_readings` samples, when its first sample is `max_age_s` old,
    or when its payload would pass `max_bytes`.

    The payload size is only known after encoding, so the batcher estimates it from the bytes per
    reading of the last sealed batch (`observe()`), with a margin; the sealer splits a batch that
    still comes out too large."""

    # A reading never costs more than this in any built-in encoding (JSON with long names).
    FIRST_GUESS_BYTES = 48.0
    MARGIN = 1.25

    def __init__(self, *, max_age_s: float, max_readings: int, max_bytes: int = 1 << 28,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.max_readings = max_readings
        self.max_bytes = max_bytes
        self.bytes_per_reading = self.FIRST_GUESS_BYTES
        self._clock = clock
        self._samples: list[Sample] = []
        self._opened_at: float | None = None
        self._staged = 0  # how many of _samples are already on disk

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, samples: Sequence[Sample]) -> bool:
        """Add samples; True when the batch is full and should be sealed now."""
        if samples and self._opened_at is None:
            self._opened_at = self._clock()
        self._samples.extend(samples)
        return (len(self._samples) >= self.max_readings
                or len(self._samples) * self.bytes_per_reading * self.MARGIN >= self.max_bytes)

    def observe(self, readings: int, payload_bytes: int) -> None:
        """Learn the bytes per reading from a batch just encoded."""
        if readings:
            self.bytes_per_reading = max(1.0, payload_bytes / readings)

    def due_at(self) -> float | None:
        """Monotonic time at which the open batch reaches `max_age_s`; None when it is empty."""
        return None if self._opened_at is None else self._opened_at + self.max_age_s

    def pending(self) -> list[Sample]:
        """The open batch's samples (a copy); `clear()` once they are sealed on disk."""
        return list(self._samples)

    def clear(self) -> None:
        """Start a new, empty batch (the old one was sealed)."""
        self._samples = []
        self._staged = 0
        self._opened_at = None

    def unstaged(self) -> list[Sample]:
        """Samples not yet written to the buffer's staging area."""
        return self._samples[self._staged:]

    def has_unstaged(self) -> bool:
        """Whether some samples are not yet written to the staging area."""
        return len(self._samples) > self._staged

    def mark_staged(self) -> None:
        self._staged = len(self._samples)

    def shift(self, delta_s: float) -> None:
        """Move every sample's time by `delta_s`: the clock was synchronised, and the samples in
        memory were stamped in the provisional frame (sensord.timebase). What is staged keeps its
        frame on disk, which says how to correct it after a crash."""
        self._samples = [Sample(s.sensor, s.quantity, s.value, s.unit, s.ts + delta_s) for s in self._samples]

    def drop_oldest(self, keep: int) -> int:
        """Keep only the newest `keep` samples; return how many were dropped."""
        dropped = max(0, len(self._samples) - keep)
        if dropped:
            del self._samples[:dropped]
            self._staged = max(0, self._staged - dropped)
        return dropped

    def discard_sealed(self, count: int) -> None:
        """The first `count` samples were sealed (a seal of part of an overgrown batch). The seal
        cleared the staging area, so the rest counts as unstaged again."""
        del self._samples[:count]
        self._staged = 0
        if not self._samples:
            self._opened_at = None

    def carry_over(self, old: Batcher) -> None:
        """Take over the samples of the previous generation's batcher (a reload while the
        buffer could not store them), with their age and staging state."""
        assert not self._samples, "carry_over() is for a new batcher"
        self._samples, self._staged, self._opened_at = list(old._samples), old._staged, old._opened_at
