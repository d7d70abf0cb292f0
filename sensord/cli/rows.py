"""The rows `sensord decode` and `sensord listen` print: one JSON-ready object per reading.

Its own module because both commands use it and `cli` imports `listen`; it joins them in `cli/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..encoding import Batch


def reading_rows(batch: Batch) -> list[dict[str, object]]:
    """One JSON-ready object per reading, as `sensord listen` and `sensord decode` print them;
    `"unsynced": true` when the sender's clock was not synchronised (the time is not the true one)."""
    extra = {"unsynced": True} if batch.unsynced else {}
    return [{"node": batch.node, "sensor": s.sensor, "quantity": s.quantity, "value": s.value, "unit": s.unit,
             "ts": s.ts, "seq": batch.seq, **extra} for s in batch.samples]
