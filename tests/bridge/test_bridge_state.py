"""sensord/bridge/state.py: per-node sequence state, per-channel time order, persisted."""

from __future__ import annotations

from pathlib import Path

from sensord.bridge import DedupeState
from sensord.sensor import Sample

T0 = 1_700_000_000.0


def batch(start: float, n: int = 3) -> list[Sample]:
    return [Sample("air", "t", float(i), "°C", start + i) for i in range(n)]


def test_new_batches_are_taken_and_repeats_dropped(tmp_path: Path) -> None:
    state = DedupeState.open(tmp_path / "s.sqlite")
    first = state.admit("barn", 7, batch(T0))
    assert first.verdict == "new" and len(first.samples) == 3
    again = state.admit("barn", 7, batch(T0))
    assert again.verdict == "repeat" and again.samples == [] and again.held_back == 3
    nxt = state.admit("barn", 8, batch(T0 + 3))
    assert nxt.verdict == "new" and len(nxt.samples) == 3
    assert state.high("barn") == 8 and state.newest("barn", "air", "t") == T0 + 5


def test_state_survives_a_reopen_and_only_committed_state_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    state = DedupeState.open(path)
    state.admit("barn", 7, batch(T0))
    state.commit()
    state.admit("barn", 8, batch(T0 + 3))  # not committed: "crashed" before
    reopened = DedupeState.open(path)
    assert reopened.high("barn") == 7
    assert reopened.admit("barn", 7, batch(T0)).verdict == "repeat"
    assert reopened.admit("barn", 8, batch(T0 + 3)).verdict == "new"


def test_a_reset_node_is_recognised_by_newer_readings(tmp_path: Path) -> None:
    state = DedupeState.open(tmp_path / "s.sqlite")
    state.admit("barn", 1_700_000_500, batch(T0))
    reset = state.admit("barn", 1, batch(T0 + 100))
    assert reset.verdict == "reset" and reset.previous_high == 1_700_000_500 and len(reset.samples) == 3
    assert state.admit("barn", 2, batch(T0 + 200)).verdict == "new"
    assert state.admit("barn", 1, batch(T0 + 100)).verdict == "repeat"


def test_older_readings_of_a_channel_are_held_back_for_time_order(tmp_path: Path) -> None:
    state = DedupeState.open(tmp_path / "s.sqlite")
    state.admit("barn", 1, batch(T0 + 10))
    late = state.admit("barn", 2, batch(T0 + 8, 6))  # 8 to 12 already passed (10, 11, 12 written); 13 is new
    assert late.verdict == "new" and [s.ts for s in late.samples] == [T0 + 13] and late.held_back == 5


def test_nodes_are_independent(tmp_path: Path) -> None:
    state = DedupeState.open(tmp_path / "s.sqlite")
    state.admit("a", 5, batch(T0))
    assert state.admit("b", 5, batch(T0)).verdict == "new"
    assert state.nodes() == ["a", "b"]


def test_a_damaged_state_file_is_moved_aside_and_a_new_one_started(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"not a database " * 200)
    state = DedupeState.open(path)
    try:
        assert state.nodes() == []
    finally:
        state.close()
    (aside,) = tmp_path.glob("state.sqlite.corrupt-*")
    assert aside.read_bytes() == b"not a database " * 200
    assert "is damaged" in caplog.text and str(aside) in caplog.text
