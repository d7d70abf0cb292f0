"""Batcher bookkeeping and the JSON batch encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensord.batch import Batcher
from sensord.encoding import DecodeError, decode, encode_batch
from sensord.sensor import Sample


def sample(i: int, sensor: str = "a", quantity: str = "value") -> Sample:
    return Sample(sensor, quantity, i, "", 1_700_000_000.0 + i)


def test_batcher_full_and_due() -> None:
    now = [100.0]
    b = Batcher(max_age_s=60, max_readings=3, clock=lambda: now[0])
    assert b.due_at() is None and len(b) == 0
    assert b.add([sample(0)]) is False
    assert b.due_at() == 160.0
    now[0] = 130.0
    assert b.add([sample(1)]) is False
    assert b.due_at() == 160.0  # age counts from the first reading of the batch
    assert b.add([sample(2)]) is True
    assert [s.value for s in b.pending()] == [0, 1, 2]
    b.clear()
    assert b.due_at() is None and b.pending() == []


def test_batcher_staging_marks() -> None:
    b = Batcher(max_age_s=60, max_readings=100, clock=lambda: 0.0)
    b.add([sample(0), sample(1)])
    assert [s.value for s in b.unstaged()] == [0, 1]
    b.mark_staged()
    b.add([sample(2)])
    assert [s.value for s in b.unstaged()] == [2]
    b.clear()
    assert b.unstaged() == []


def test_batch_round_trip_and_order() -> None:
    samples = [sample(0, "a", "t"), sample(0, "b", "h"), sample(1, "a", "t"), sample(2, "b", "h")]
    payload = encode_batch("barn", 42, samples)
    batch = decode(payload)
    assert (batch.node, batch.seq) == ("barn", 42)
    assert batch.samples == samples
    assert len(payload) < 200


values = st.one_of(st.integers(-10**9, 10**9), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False, width=64))


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "kitchen"]), st.sampled_from(["t", "h"]), values,
                          st.integers(0, 3_600_000)), max_size=50))
def test_batch_round_trip_property(rows: list[tuple[str, str, object, int]]) -> None:
    rows.sort(key=lambda r: r[3])
    samples = [Sample(s, q, v, "°C", 1_700_000_000 + ms / 1000) for s, q, v, ms in rows]  # type: ignore[arg-type]
    decoded = decode(encode_batch("n", 1, samples)).samples

    def series(items: list[Sample]) -> dict[tuple[str, str], list[tuple[object, float]]]:
        out: dict[tuple[str, str], list[tuple[object, float]]] = {}
        for x in items:
            out.setdefault((x.sensor, x.quantity), []).append((x.value, round(x.ts, 3)))
        return out

    # Columnar: the order within each series is kept, and times to the millisecond.
    assert series(decoded) == series(samples)
    assert [d.ts for d in decoded] == sorted(d.ts for d in decoded)


@pytest.mark.parametrize(("payload", "message"), [
    (b"\xff\xfe", "not a sensord batch: unknown header 0xfffe"),
    (b"[1, 2]", "senml+json record 0: expected a map, found int"),
    (b'{"v": 2}', "unsupported batch version 2, expected 1"),
    (b'{"v": 1, "node": "n", "seq": 1, "t0": 0, "series": [{"s": "a", "q": "t", "u": "", "t": [1], "v": []}]}',
     "series a/t: 1 times, 0 values"),
])
def test_decode_errors(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert str(info.value).startswith(message)


def test_batcher_seals_before_max_bytes() -> None:
    b = Batcher(max_age_s=60, max_readings=10_000, max_bytes=1000, clock=lambda: 0.0)
    # First guess 48 B/reading with a 25% margin: full after 17 readings (17 * 60 >= 1000).
    assert not any(b.add([sample(i)]) for i in range(16))
    assert b.add([sample(16)])
    b.clear()
    b.observe(readings=100, payload_bytes=500)  # 5 B/reading measured
    assert not any(b.add([sample(i)]) for i in range(159))
    assert b.add([sample(159)])  # 160 * 5 * 1.25 = 1000


def test_drop_oldest_keeps_the_newest_and_the_staged_count_in_step() -> None:
    batcher = Batcher(max_age_s=60, max_readings=100, clock=lambda: 0.0)
    batcher.add([Sample("a", "t", float(i), "", float(i)) for i in range(10)])
    batcher.mark_staged()
    batcher.add([Sample("a", "t", float(i), "", float(i)) for i in range(10, 15)])
    assert batcher.drop_oldest(8) == 7
    assert [s.value for s in batcher.pending()] == [float(i) for i in range(7, 15)]
    assert [s.value for s in batcher.unstaged()] == [float(i) for i in range(10, 15)]  # 7..9 stay staged
    assert batcher.drop_oldest(8) == 0
