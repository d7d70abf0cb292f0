"""The bridge's per-node state, so each reading is written once: the highest batch sequence
number taken from each node and, per channel, the time of the newest reading written.

Rules (docs/fleet.md, "Exactly once"), for a batch from node N with sequence number `seq`:
- `seq` above N's highest: new. Its readings are written, except any not newer than what was
  already written for their channel (the output keeps time order per channel; such readings are
  counted as out of order).
- `seq` at or below N's highest, and every reading newer than N's newest written reading: the
  node's buffer was reset (its seq counter started again, see sensord.buffer), so the batch is
  taken and `seq` becomes N's highest. Recognised and logged, never silenced.
- otherwise a repeat (a re-send after a lost PUBACK, a replayed backlog): only readings newer
  than their channel's newest are written, normally none.

`admit()` changes the state in memory; `commit()` writes what changed in one SQLite transaction.
The caller writes its outputs first and commits after, so a crash between the two repeats a
batch's readings at worst, never loses them. Writes: one small transaction per batch, WAL mode.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..buffer import move_aside
from ..errors import SensordError
from ..sensor import Sample

log = logging.getLogger(__name__)

Verdict = Literal["new", "reset", "repeat"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node (node TEXT PRIMARY KEY, high TEXT NOT NULL, newest_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS channel (node TEXT NOT NULL, sensor TEXT NOT NULL, quantity TEXT NOT NULL,
    newest_ms INTEGER NOT NULL, PRIMARY KEY (node, sensor, quantity));
"""


class StateError(SensordError, OSError):
    """The state file cannot be opened or written."""


@dataclass(frozen=True)
class Admitted:
    """What `admit()` decided: the readings to write (in batch order) and how many it held back."""

    verdict: Verdict
    samples: list[Sample]
    held_back: int
    previous_high: int | None


@dataclass
class _Node:
    high: int
    newest_ms: int
    channels: dict[tuple[str, str], int] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)


def _ms(ts: float) -> int:
    return round(ts * 1000)


class DedupeState:
    """Per-node sequence and per-channel time state, kept in SQLite at `path`."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._nodes: dict[str, _Node] = {}
        self._dirty: set[str] = set()
        for node, high, newest in conn.execute("SELECT node, high, newest_ms FROM node"):
            self._nodes[node] = _Node(int(high), newest)
        for node, sensor, quantity, newest in conn.execute("SELECT node, sensor, quantity, newest_ms FROM channel"):
            if node in self._nodes:
                self._nodes[node].channels[(sensor, quantity)] = newest

    @classmethod
    def open(cls, path: str | Path) -> DedupeState:
        """Open (or create) the state file; StateError naming it if that fails. A damaged file
        (not a database, malformed) is moved aside as the node's buffer does
        (`<path>.corrupt-<UTC time>`) and a new one started: readings the old state had seen may
        then be written again, none goes missing."""
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = _connect(p)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # cannot open or write (permissions, a full disk): not damage
                moved = move_aside(p, time.time())
                log.warning("bridge state %s is damaged (%s): moved aside to %s; starting a new one "
                            "(batches it had seen may be written again)", p, exc, moved)
                conn = _connect(p)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"bridge state {p}: cannot open: {exc}") from None
        return cls(conn, str(p))

    def high(self, node: str) -> int | None:
        """The highest sequence number taken from `node`, None for a node not seen yet."""
        state = self._nodes.get(node)
        return state.high if state else None

    def newest(self, node: str, sensor: str, quantity: str) -> float | None:
        """The time of the newest reading written for a channel, in Unix seconds."""
        state = self._nodes.get(node)
        ms = state.channels.get((sensor, quantity)) if state else None
        return None if ms is None else ms / 1000

    def nodes(self) -> list[str]:
        return sorted(self._nodes)

    def admit(self, node: str, seq: int, samples: Iterable[Sample]) -> Admitted:
        """Decide what of a batch to write (module docstring) and record it in memory."""
        samples = list(samples)
        state = self._nodes.get(node)
        if state is None:
            state = self._nodes[node] = _Node(seq, -(2**62))
            verdict: Verdict = "new"
            previous = None
        else:
            previous = state.high
            if seq > state.high:
                verdict = "new"
            elif samples and min(_ms(s.ts) for s in samples) > state.newest_ms:
                verdict = "reset"
            else:
                verdict = "repeat"
            if verdict != "repeat":
                state.high = seq
        kept: list[Sample] = []
        for s in samples:
            key = (s.sensor, s.quantity)
            ms = _ms(s.ts)
            newest = state.channels.get(key)
            if newest is not None and ms <= newest:
                continue
            state.channels[key] = ms
            state.dirty.add(key)
            state.newest_ms = max(state.newest_ms, ms)
            kept.append(s)
        self._dirty.add(node)
        return Admitted(verdict, kept, len(samples) - len(kept), previous)

    def commit(self) -> None:
        """Write what `admit()` changed since the last commit, in one transaction."""
        if not self._dirty:
            return
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                for node in self._dirty:
                    state = self._nodes[node]
                    self._conn.execute("INSERT OR REPLACE INTO node VALUES (?, ?, ?)",
                                       (node, str(state.high), state.newest_ms))
                    self._conn.executemany("INSERT OR REPLACE INTO channel VALUES (?, ?, ?, ?)",
                                           [(node, s, q, state.channels[(s, q)]) for s, q in state.dirty])
                    state.dirty.clear()
        except sqlite3.Error as exc:
            raise StateError(f"bridge state {self.path}: cannot write: {exc}") from None
        self._dirty.clear()

    def close(self) -> None:
        self.commit()
        self._conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn
