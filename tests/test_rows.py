"""`reading_rows`: what `sensord decode` and `sensord listen` print, one object per reading."""

from __future__ import annotations

from sensord.cli.rows import reading_rows
from sensord.encoding import Batch
from sensord.sensor import Sample


def test_one_row_per_reading_with_node_and_seq() -> None:
    batch = Batch("barn", 7, [Sample("air", "temperature", 21.5, "°C", 1.0), Sample("door", "open", True, "", 2.5)])
    assert reading_rows(batch) == [
        {"node": "barn", "sensor": "air", "quantity": "temperature", "value": 21.5, "unit": "°C", "ts": 1.0, "seq": 7},
        {"node": "barn", "sensor": "door", "quantity": "open", "value": True, "unit": "", "ts": 2.5, "seq": 7},
    ]
