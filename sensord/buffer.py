"""The durable offline buffer: sealed batches wait in SQLite until the broker has acknowledged them.

All SQL of sensord lives here. The daemon seals each finished batch (`seal`), publishes what `peek`
returns and deletes it with `ack` once the broker has acknowledged it. Readings of the still-open
batch are staged (`stage`) every commit interval, so a crash loses at most that window; at start-up
`staged()` hands them back. `max_bytes` caps the payload bytes kept: the oldest batches go first.

Two durability modes (`durability`, the config's `[buffer] durability`):
- "undelivered" (the daemon's default): while the broker acknowledges promptly (`set_link(True)`),
  a sealed batch is held in memory and handed to `peek` from there; its ack deletes it without a
  write. What is still unacknowledged after `hold_s` (the commit interval) is written (`tick`),
  and so is everything held when the link fails (`set_link(False)`) or the buffer closes. While
  the link is down or acknowledgements lag, `staging_needed()` asks the pipeline to stage the open
  batch as in "interval". A link that delivers costs no write per reading; a power cut (or kill -9)
  loses the open batch and what was held (at most `hold_s` old).
- "interval": every seal is written before it is published, the open batch is staged every commit
  interval whatever the link does: a power cut loses at most that window.

Durability of a write: WAL with synchronous=NORMAL. A commit is in the WAL file when COMMIT returns, so it
survives a crash of the process, kill -9 included. The WAL is fsynced only at checkpoints, so a
power cut or kernel crash may lose the commits not yet written back by the kernel (up to
vm.dirty_expire_centisecs, 30 s by default, and never more than since the last checkpoint); it
cannot corrupt the file (WAL frames carry checksums, a torn tail is ignored on recovery).

Write pattern, chosen for SD cards: one transaction per `stage`, `seal` and `ack_many` call, none per
reading. A commit appends each page it changed (4 KiB + a 24-byte frame header) to the WAL, without
fsync; a checkpoint every ~1000 pages copies the newest version of each page into the database file.

Storage failures (disk full, I/O error, read-only file system) never raise out of the write methods:
`seal` returns None and `stage`/`ack_many` return False, the caller keeps its data and retries at the
next flush. One WARNING per failure streak. Other SQLite failures raise `BufferStorageError`; one
raised by a write (corruption found at run time) is best handled by a restart, as `open()` moves a
damaged file aside. A batch the broker acknowledged but whose delete could not be written (disk
full) is remembered in memory: `peek` and the pending counts leave it out, so it is never sent
twice in one run, and the next successful write deletes it. Only if the process ends before that
write is it sent once more at the next start (consumers drop repeats by seq).

Sequence numbers never go back, whatever happens to the file (a deleted -wal after a crash, a
zero-length or corrupt file): besides the database, a tiny file `<path>.seq` holds an upper bound
of every seq issued. It is written (fsync) at open and when a seal passes the bound, which then
moves `SEQ_BLOCK` ahead, and at `close` (exact value). At open, the next seq is the largest of the
database's own, that bound, and a salvaged damaged file's; when `<path>.seq` is missing or
unreadable, also the wall clock in Unix seconds (a new node starts there, which costs a CBOR seq 2
bytes more per batch only until its 65,536th batch, after which a count from 1 costs 5 bytes too).
After a crash the seq may so skip up to `SEQ_BLOCK` numbers: a gap is not a loss. The one case
left unguarded: `<path>.seq` lost as well as the database's contents while the clock is wrong
(a Pi without RTC before NTP): the seq may then start below numbers already issued.

Integrity: `PRAGMA quick_check` does not read BLOB contents, so every batch and staged chunk
carries a CRC-32 of its bytes, checked by `peek` and `staged`. One that fails is moved to the table
`quarantine` (kept for inspection, never published) and named in one ERROR line.

One process owns the file (an exclusive lock, held until `close`): a second daemon, or a CLI
reading the file, gets `BufferStorageError` "in use by another process". Staged chunks do not count
towards `max_bytes` (the batcher bounds the open batch).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pwd
import sqlite3
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .errors import BufferStorageError, BufferUnwritable

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SCHEMA_VERSION = 2
# `durability`: "undelivered" writes only what the broker did not take promptly; "interval" writes
# every batch and stages the open one every commit interval (module docstring).
DURABILITY_MODES = ("undelivered", "interval")
# Seqs reserved per write of `<path>.seq`: at most this many are skipped after a crash.
SEQ_BLOCK = 1000
# How long open() waits for another process's lock on the file (a previous daemon still exiting).
_LOCK_TIMEOUT_S = 1.0
_SCHEMA = """
CREATE TABLE batch (
    seq INTEGER PRIMARY KEY, created REAL NOT NULL, first_ts REAL NOT NULL,
    readings INTEGER NOT NULL, size INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER);
CREATE TABLE staged (
    id INTEGER PRIMARY KEY, created REAL NOT NULL, readings INTEGER NOT NULL, data BLOB NOT NULL,
    crc INTEGER);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY, found REAL NOT NULL, what TEXT NOT NULL, seq INTEGER,
    readings INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER);
"""
# Version 1 had no crc columns and no quarantine table; open() adds them (the CRCs of the
# payloads as they are then: a version 1 file was never checked).
_MIGRATE_1_TO_2 = """
ALTER TABLE batch ADD COLUMN crc INTEGER;
ALTER TABLE staged ADD COLUMN crc INTEGER;
UPDATE batch SET crc = sensord_crc32(payload);
UPDATE staged SET crc = sensord_crc32(data);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY, found REAL NOT NULL, what TEXT NOT NULL, seq INTEGER,
    readings INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER);
"""
# `size` duplicates length(payload) so that summing it never reads the payloads' overflow pages.

# Primary result codes of a storage that refuses writes for now; the caller retries later.
_TRANSIENT = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _one_line(exc: object) -> str:
    """SQLite's messages (quick_check's above all) can span lines; a log line must not."""
    return " / ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _crc(data: bytes) -> int:
    return zlib.crc32(data)


class _MarkFailed(Exception):
    """`<path>.seq` could not be written: the seal must not issue a seq past the old bound."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _Corrupt(Exception):
    """The file is not a usable database; it is moved aside."""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A sealed batch waiting for delivery. `created` and `first_ts` are Unix epoch seconds."""

    seq: int
    created: float
    first_ts: float
    readings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class BufferStats:
    """A snapshot of the buffer, for status reports. Times are Unix epoch seconds."""

    pending_batches: int
    pending_readings: int
    pending_bytes: int
    staged_readings: int
    oldest_created: float | None
    dropped_batches: int
    dropped_readings: int
    next_seq: int


@dataclass(slots=True)
class _Held:
    """A sealed batch kept in memory ("undelivered" durability) and when it was sealed (monotonic)."""

    batch: StoredBatch
    sealed_at: float


class Buffer:
    """Sealed batches and the staged open batch, in one SQLite file (and, in "undelivered"
    durability, the batches not yet written in memory). Create it with `Buffer.open()`.

    Every method takes an internal lock, so calls may come from any thread; each is short.
    """

    def __init__(self, conn: sqlite3.Connection, *, path: Path, max_bytes: int,
                 clock: Callable[[], float], seq_floor: int = 0, seq_limit: int = 0,
                 durability: str = "interval", hold_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._conn = conn
        self._path = path
        self._mark = _mark_path(path)
        self._max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._failing = 0  # failed writes in the current storage-failure streak
        self._failure: str | None = None  # why the last write failed, while failing
        # The next seq is at least this (from <path>.seq or the clock, see the module docstring);
        # seqs below _seq_limit are covered by <path>.seq already.
        self._seq_floor = seq_floor
        self._seq_limit = seq_limit
        # Acknowledged by the broker, delete not yet written (disk full): seq -> size.
        self._delivered: dict[int, int] = {}
        # Failed their checksum but could not be moved to quarantine: never handed out.
        self._bad: set[int] = set()
        # Payload bytes pending, kept here so that a seal need not scan the table (we are the only
        # writer: the file is locked); updated only after a commit.
        self._pending_bytes = int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM batch").fetchone()[0])
        self._episode: list[int] | None = None  # [batches, readings] dropped in this cap episode
        self._monotonic = monotonic
        # Sealed, not yet written ("undelivered"), oldest first; every seq here is above every
        # seq in the file (held batches are written oldest first, and only while none is held
        # does a seal go to the file).
        self._held: dict[int, _Held] = {}
        self._link_ok = False  # the publisher's last word: connected and delivering
        self._stalled = False  # a held batch waited past hold_s for its ack: stage, as when down
        self._has_staged = bool(conn.execute("SELECT EXISTS (SELECT 1 FROM staged)").fetchone()[0])
        # Called when the flusher should look again (the daemon sets it to `Pipeline.kick`).
        self.changed: Callable[[], None] = lambda: None
        (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        self._seq_floor = max(self._seq_floor, stored)
        self._durability = "interval"
        self._hold_s = hold_s
        self.set_durability(durability, hold_s=hold_s)
        # Reserve the next block now rather than in the first seal: the fsync is a start-up cost,
        # and the next SEQ_BLOCK seals (held ones included) write nothing for it.
        if self._seq_floor >= self._seq_limit:
            with contextlib.suppress(_MarkFailed):  # a full disk: the first seal tries again
                self._reserve(self._seq_floor + SEQ_BLOCK)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, max_bytes: int,
             clock: Callable[[], float] = time.time, durability: str = "interval",
             hold_s: float = 5.0) -> Buffer:
        """Open or create the buffer file at `path` (parent directory created with mode 0o750).
        `durability` and `hold_s`: see the module docstring and `set_durability`.

        A file that is not a database, or fails `PRAGMA quick_check`, is moved aside to
        `<path>.corrupt-<UTC time>` (with its -wal) and a new buffer starts. The next seq is never
        below one issued before (module docstring). Raises `BufferUnwritable` if the file or its
        directory cannot be written (read-only file system, permissions: the message names the
        cause and the fix), `BufferStorageError` if it cannot be opened otherwise (locked by
        another process, newer schema) or moved aside.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        p = Path(path)
        try:
            p.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        except OSError as exc:
            _raise_if_unwritable(p, exc)
            raise BufferStorageError(f"buffer {p}: cannot create: {_one_line(exc)}") from exc
        _raise_if_unwritable(p, None)
        mark = _read_mark(p)
        # Without <path>.seq nothing vouches for the file's own next seq (a lost -wal, a file
        # emptied): start no lower than the wall clock.
        floor = mark if mark is not None else int(clock())
        try:
            conn = _connect(p, first_seq=max(1, floor))
        except _Corrupt as exc:
            moved = move_aside(p, clock())
            # Never reuse a seq: continue after the old file's, or from the clock if that is later.
            floor = max(1, floor, int(clock()), _salvage_next_seq(moved))
            log.warning("buffer %s is unreadable (%s); moved it to %s and started a new buffer "
                        "at seq %d", p, _one_line(exc), moved, floor)
            try:
                conn = _connect(p, first_seq=floor)
            except _Corrupt as again:
                raise BufferStorageError(f"buffer {p}: new file is unreadable too: {_one_line(again)}") from again
        return cls(conn, path=p, max_bytes=max_bytes, clock=clock, seq_floor=floor, seq_limit=mark or 0,
                   durability=durability, hold_s=hold_s)

    @property
    def dropping(self) -> bool:
        """True while the cap is dropping batches (until pending bytes fall below max_bytes / 2)."""
        return self._episode is not None

    @property
    def storage_failing(self) -> bool:
        """True while writes fail (disk full, I/O error); cleared by the next successful write."""
        return self._failing > 0

    @property
    def failure(self) -> str | None:
        """Why the last write failed (SQLite's message, e.g. "database or disk is full"), while
        `storage_failing`; else None."""
        return self._failure if self._failing else None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def durability(self) -> str:
        return self._durability

    def set_durability(self, durability: str, *, hold_s: float) -> None:
        """Switch modes (a reload): "interval" writes what is held at once. `hold_s` is how long
        a held batch may wait for its ack before it is written (the commit interval)."""
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}")
        if hold_s <= 0:
            raise ValueError(f"hold_s must be positive, got {hold_s}")
        self._durability, self._hold_s = durability, hold_s
        if durability == "interval" and self._held:
            self.persist()

    def set_link(self, ok: bool) -> None:
        """The publisher's news: True once connected (batches can be delivered), False when the
        connection failed or the broker refuses batches. On False, what is held is written now
        and `changed()` tells the pipeline's flusher to stage the open batch from now on."""
        was, self._link_ok = self._link_ok, ok
        if not ok:
            self.persist()
            if was:
                self.changed()

    def staging_needed(self) -> bool:
        """Whether the open batch should be staged every commit interval: always in "interval";
        in "undelivered" while the link is down, acknowledgements lag behind `hold_s`, or
        storage refuses writes (`tick` then retries them at that cadence)."""
        return (self._durability == "interval" or not self._link_ok or self._stalled or self._failing > 0
                or bool(self._delivered))

    def tick_at(self) -> float | None:
        """When (monotonic) `tick` must write a held batch: the oldest one's `hold_s` deadline;
        None when nothing is held, or while storage refuses (`staging_needed` covers that)."""
        with self._lock:
            if not self._held or self._failing:
                return None
            return next(iter(self._held.values())).sealed_at + self._hold_s

    def tick(self) -> None:
        """Every commit interval: write the held batches the broker has not acknowledged within
        `hold_s` (a link that fails silently, a slow PUBACK), and retry the deletes a full disk
        refused (with the link up, no other write may come for a long time)."""
        if self._delivered:
            with self._lock:
                self._write("ack", lambda conn: True)
        cutoff = self._monotonic() - self._hold_s
        with self._lock:  # seals may come from another thread
            overdue = bool(self._held) and next(iter(self._held.values())).sealed_at <= cutoff
        if overdue:
            self._stalled = True
            self.persist(sealed_before=cutoff)

    def persist(self, *, sealed_before: float | None = None) -> int:
        """Write the held batches (those sealed before `sealed_before`, monotonic; all by
        default) in one transaction; return the readings still held unwritten afterwards
        because storage refused (0 when all is on disk)."""
        with self._lock:
            batches = [h.batch for h in self._held.values()
                       if sealed_before is None or h.sealed_at <= sealed_before]
            if batches and self._write("seal", lambda conn: self._insert(conn, batches)) is not None:
                for batch in batches:
                    del self._held[batch.seq]
            return sum(h.batch.readings for h in self._held.values())

    def abandon_held(self) -> None:
        """Forget what is held (at a stop, after `persist` failed and the caller counted the
        readings as lost): `close` then neither retries nor reports them again."""
        with self._lock:
            for held in self._held.values():
                self._pending_bytes -= len(held.batch.payload)
            self._held.clear()

    def seal(self, encode: Callable[[int], bytes], *, readings: int, first_ts: float) -> int | None:
        """Store a finished batch; return its sequence number, or None if storage refused the write.

        In one transaction: write the batches held in memory (their seqs are older: the file
        stays in seq order), allocate the next sequence number, call `encode(seq)` for the payload,
        insert the batch, delete the staged chunks (the batch now holds them), and drop the oldest
        batches while pending payload bytes exceed `max_bytes`. The new batch itself is kept even
        if it alone exceeds `max_bytes`. If `encode` raises, nothing changes and the error
        propagates. On None, nothing changed: keep the readings and seal again later.
        """

        if self._durability == "undelivered" and self._link_ok and not self._has_staged:
            held = self._hold(encode, readings=readings, first_ts=first_ts)
            if held is None or isinstance(held, int):
                return held
            # Over max_bytes: write what is held, then the file's cap drops the oldest (below).
            encode = held.__getitem__
        earlier: list[StoredBatch] = []

        def work(conn: sqlite3.Connection) -> tuple[int, int, int, int]:
            if earlier:
                self._insert(conn, earlier)
            (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            seq = max(stored, self._seq_floor)
            if seq >= self._seq_limit:
                self._reserve(seq + SEQ_BLOCK)
            payload = encode(seq)
            conn.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (seq, self._clock(), first_ts, readings, len(payload), payload, _crc(payload)))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
            conn.execute("DELETE FROM staged")
            return (seq, *self._enforce_cap(conn, seq, self._pending_bytes + len(payload)))

        with self._lock:
            earlier.extend(h.batch for h in self._held.values())
            done = self._write("seal", work)
            if done is None:
                return None
            for batch in earlier:
                del self._held[batch.seq]
            seq, self._pending_bytes, dropped, dropped_readings = done
            self._seq_floor = seq + 1
            self._has_staged = False
            self._note_dropped(dropped, dropped_readings)
            return seq

    def _hold(self, encode: Callable[[int], bytes], *, readings: int,
              first_ts: float) -> int | dict[int, bytes] | None:
        """Seal into memory: the seq; None if `<path>.seq` could not be written; or, when the
        payload would take the pending bytes over max_bytes, {seq: payload} for the file's seal
        (the same seq: nothing was issued)."""
        with self._lock:
            seq = self._seq_floor
            if seq >= self._seq_limit:
                try:
                    self._reserve(seq + SEQ_BLOCK)
                except _MarkFailed as exc:
                    self._refused("seal", exc)
                    return None
            payload = encode(seq)
            if self._pending_bytes + len(payload) > self._max_bytes:
                return {seq: payload}
            self._held[seq] = _Held(StoredBatch(seq, self._clock(), first_ts, readings, payload), self._monotonic())
            self._pending_bytes += len(payload)
            self._seq_floor = seq + 1
            return seq

    def _note_dropped(self, dropped: int, dropped_readings: int) -> None:
        if dropped:
            if self._episode is None:
                self._episode = [0, 0]
                log.warning("buffer %s: over max_bytes=%d, dropping the oldest batches "
                            "(first: %d batches, %d readings); one summary when it drains",
                            self._path, self._max_bytes, dropped, dropped_readings)
            self._episode[0] += dropped
            self._episode[1] += dropped_readings

    def stage(self, data: bytes, *, readings: int) -> bool:
        """Append a chunk of the open batch's readings; False if storage refused the write.

        On False nothing was stored: include these readings in the next chunk.
        """

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT INTO staged (created, readings, data, crc) VALUES (?, ?, ?, ?)",
                         (self._clock(), readings, data, _crc(data)))
            return True

        with self._lock:
            if self._write("stage", work) is None:
                return False
            self._has_staged = True
            return True

    def staged(self) -> list[bytes]:
        """The staged chunks, oldest first: the open batch a crash left behind.

        A chunk that fails its checksum is left out, moved to quarantine and logged (ERROR)."""
        with self._lock:
            rows = self._read("SELECT id, readings, data, crc FROM staged ORDER BY id")
            good = []
            for chunk_id, readings, data, crc in rows:
                if crc == _crc(data):
                    good.append(data)
                else:
                    self._quarantine("staged", chunk_id, readings, crc, data)
            return good

    def staged_readings(self) -> int:
        """How many readings the staged chunks hold."""
        with self._lock:
            return int(self._read("SELECT COALESCE(SUM(readings), 0) FROM staged")[0][0])

    def peek(self, limit: int = 100, *, after_seq: int = 0) -> list[StoredBatch]:
        """Up to `limit` pending batches with seq > `after_seq`, oldest first. Nothing is removed.

        Batches delivered but not yet deleted (see `ack_many`) are left out. A batch that fails
        its checksum is left out too: moved to quarantine and logged (ERROR), never published."""
        out: list[StoredBatch] = []
        with self._lock:
            while len(out) < limit:
                rows = self._read("SELECT seq, created, first_ts, readings, payload, crc FROM batch "
                                  "WHERE seq > ? ORDER BY seq LIMIT ?",
                                  (after_seq, limit - len(out) + len(self._delivered) + len(self._bad)))
                if not rows:
                    break
                for seq, created, first_ts, readings, payload, crc in rows:
                    after_seq = seq
                    if seq in self._delivered or seq in self._bad or len(out) >= limit:
                        continue
                    if crc != _crc(payload):
                        self._quarantine("batch", seq, readings, crc, payload)
                        continue
                    out.append(StoredBatch(seq, created, first_ts, readings, payload))
            if len(out) < limit and self._held:
                out.extend(h.batch for seq, h in self._held.items() if seq > after_seq)
                del out[limit:]
        return out

    def ack(self, seq: int) -> bool:
        """Delete a delivered batch. See `ack_many`."""
        return self.ack_many((seq,))

    def ack_many(self, seqs: Iterable[int]) -> bool:
        """Delete delivered batches (call only after the broker acknowledged them).

        Unknown sequence numbers are ignored. False if storage refused the write (disk full):
        the batches are then remembered as delivered, left out of `peek` and the pending counts,
        and deleted by the next write that succeeds (any seal, stage or ack). Only if the
        process ends first are they published again, once, at the next start.
        """
        with self._lock:
            on_disk = []
            for seq in seqs:
                held = self._held.pop(seq, None)
                if held is None:
                    on_disk.append(seq)
                else:  # never written: nothing to delete
                    self._pending_bytes -= len(held.batch.payload)
            self._stalled = False  # the broker acknowledges again
            if not on_disk:
                self._episode_check()
                return True

        def work(conn: sqlite3.Connection) -> int:
            freed = 0
            for seq in on_disk:
                row = conn.execute("DELETE FROM batch WHERE seq = ? RETURNING size", (seq,)).fetchone()
                freed += row[0] if row else 0
            return self._pending_bytes - freed

        with self._lock:
            pending_bytes = self._write("ack", work)
            if pending_bytes is None:
                marks = ",".join("?" * len(on_disk))
                for seq, size in self._read(f"SELECT seq, size FROM batch WHERE seq IN ({marks})", tuple(on_disk)):
                    if seq not in self._delivered:
                        self._delivered[seq] = size
                        self._pending_bytes -= size
                return False
            self._pending_bytes = pending_bytes
            self._episode_check()
            return True

    def stats(self) -> BufferStats:
        """Counts for status reports: pending, staged, dropped so far (persisted), next seq."""
        with self._lock:
            hidden = "WHERE seq NOT IN (SELECT value FROM json_each(?))" if self._delivered or self._bad else ""
            params = (json.dumps([*self._delivered, *self._bad]),) if hidden else ()
            (batches, readings, size, oldest), = self._read(
                "SELECT COUNT(*), COALESCE(SUM(readings), 0), COALESCE(SUM(size), 0), MIN(created) "
                f"FROM batch {hidden}", params)
            (staged,), = self._read("SELECT COALESCE(SUM(readings), 0) FROM staged")
            meta = dict(self._read("SELECT key, value FROM meta"))
            for held in self._held.values():
                batches, readings, size = batches + 1, readings + held.batch.readings, size + len(held.batch.payload)
                oldest = held.batch.created if oldest is None else min(oldest, held.batch.created)
        return BufferStats(pending_batches=batches, pending_readings=readings, pending_bytes=size,
                           staged_readings=staged, oldest_created=oldest,
                           dropped_batches=meta["dropped_batches"],
                           dropped_readings=meta["dropped_readings"],
                           next_seq=max(meta["next_seq"], self._seq_floor))

    def close(self) -> None:
        """Write what is held in memory, delete what was delivered, checkpoint the WAL into the
        database file, truncate the WAL, record the exact next seq in `<path>.seq` and close.
        Idempotent. Held readings that storage refuses are lost: one ERROR line (the daemon
        calls `persist` first to count them)."""
        if not self._closed and self._held:
            lost = self.persist()
            if lost:
                log.error("buffer %s: %d undelivered readings could not be written at close (%s) "
                          "and are lost", self._path, lost, self.failure or "storage refused writes")
        with self._lock:
            if self._closed:
                return
            if self._delivered:
                self._write("ack", lambda conn: None)
            if self._delivered:
                log.warning("buffer %s: %d delivered batches could not be deleted (storage refuses "
                            "writes); they are published once more at the next start",
                            self._path, len(self._delivered))
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                (next_seq,) = self._conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                # Exact, now that the file holds every seal: the next start continues without a gap.
                _write_mark(self._mark, max(next_seq, self._seq_floor))
            except sqlite3.Error as exc:  # the WAL is still valid; the next open recovers from it
                log.warning("buffer %s: checkpoint at close failed: %s", self._path, _one_line(exc))
            except OSError as exc:  # <path>.seq keeps its older, larger bound: a gap, no repeat
                log.debug("buffer %s: cannot update %s: %s", self._path, self._mark, exc)
            self._conn.close()
            self._closed = True

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _episode_check(self) -> None:
        pending_bytes = self._pending_bytes
        if self._episode is not None and (pending_bytes == 0 or pending_bytes < self._max_bytes / 2):
            log.info("buffer %s: below max_bytes / 2 again; %d batches (%d readings) were "
                     "dropped while it was full", self._path, *self._episode)
            self._episode = None

    def _reserve(self, limit: int) -> None:
        """Record in `<path>.seq` that seqs below `limit` may be issued (inside a seal)."""
        try:
            _write_mark(self._mark, limit)
        except OSError as exc:
            raise _MarkFailed(exc) from exc
        self._seq_limit = limit

    def _quarantine(self, what: str, ident: int, readings: int, crc: int | None, data: bytes) -> None:
        """Move a batch (`ident` its seq) or staged chunk (its id) that failed its checksum to the
        quarantine table, and log it (lock held)."""

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO quarantine (found, what, seq, readings, data, crc) VALUES (?, ?, ?, ?, ?, ?)",
                         (self._clock(), what, ident if what == "batch" else None, readings, data, crc))
            if what == "batch":
                conn.execute("DELETE FROM batch WHERE seq = ?", (ident,))
                return len(data)
            conn.execute("DELETE FROM staged WHERE id = ?", (ident,))
            return 0

        moved = self._write("quarantine", work)
        if moved is not None:
            self._pending_bytes -= moved
            where = "moved to the table quarantine"
        else:  # storage refuses writes: never hand it out in this run; found again at the next start
            if what == "batch":
                self._bad.add(ident)
                self._pending_bytes -= len(data)
            where = "left in place (storage refuses writes) and skipped"
        name = f"batch seq {ident}" if what == "batch" else f"staged chunk {ident}"
        log.error("buffer %s: %s (%d readings) fails its checksum (stored %s, computed %08x); %s, "
                  "not published", self._path, name, readings,
                  "none" if crc is None else f"{crc:08x}", _crc(data), where)

    def _enforce_cap(self, conn: sqlite3.Connection, newest: int, total: int) -> tuple[int, int, int]:
        """Delete the oldest batches (never `newest`) until `total` pending bytes <= max_bytes.

        Returns the pending bytes left, the batches and the readings dropped.
        """
        dropped = dropped_readings = 0
        cutoff = None
        rows = conn.execute("SELECT seq, size, readings FROM batch WHERE seq < ? ORDER BY seq", (newest,))
        while total > self._max_bytes and (row := rows.fetchone()) is not None:
            cutoff, size, readings = row
            if cutoff in self._bad:
                continue  # already left out of the total
            total -= size
            dropped += 1
            dropped_readings += readings
        rows.close()
        if cutoff is not None:
            conn.execute("DELETE FROM batch WHERE seq <= ?", (cutoff,))
            conn.executemany("UPDATE meta SET value = value + ? WHERE key = ?",
                             [(dropped, "dropped_batches"), (dropped_readings, "dropped_readings")])
        return total, dropped, dropped_readings

    def _write(self, what: str, work: Callable[[sqlite3.Connection], _T]) -> _T | None:
        """Run `work` in one transaction; None (logged once per streak) if storage refused it.

        The same transaction first deletes the batches delivered while deletes failed."""
        conn = self._conn
        delivered = list(self._delivered)
        try:
            # IMMEDIATE: take the write lock up front, so the commit cannot fail on lock upgrade.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM batch WHERE seq = ?", [(seq,) for seq in delivered])
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, _MarkFailed) as exc:
            self._refused(what, exc)
            return None
        for seq in delivered:
            del self._delivered[seq]
        if delivered:
            self._bad.difference_update(delivered)
        if self._failing:
            log.info("buffer %s: writes succeed again after %d failures", self._path, self._failing)
            self._failing = 0
        return result

    def _refused(self, what: str, exc: sqlite3.Error | _MarkFailed) -> None:
        """A write failed: raise unless storage refuses for now (then log once per streak)."""
        if isinstance(exc, sqlite3.Error) and _code(exc) not in _TRANSIENT:
            raise BufferStorageError(f"buffer {self._path}: {what} failed: {_one_line(exc)}") from exc
        if not self._failing:
            log.warning("buffer %s: cannot write (%s); the caller keeps its data and retries "
                        "(logged once until a write succeeds)", self._path, _one_line(exc))
        self._failing += 1
        self._failure = _one_line(exc.exc if isinstance(exc, _MarkFailed) else exc)

    def _insert(self, conn: sqlite3.Connection, batches: list[StoredBatch]) -> bool:
        """Write held batches (inside a transaction); True (`_write` returns None on failure)."""
        conn.executemany("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(b.seq, b.created, b.first_ts, b.readings, len(b.payload), b.payload, _crc(b.payload))
                          for b in batches])
        conn.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'next_seq'", (batches[-1].seq + 1,))
        return True

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:  # rows of SQLite values
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise BufferStorageError(f"buffer {self._path}: read failed: {_one_line(exc)}") from exc


def _connect(path: Path, *, first_seq: int) -> sqlite3.Connection:
    """Connect, set the PRAGMAs, check integrity, create or check the schema."""
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each transaction is explicit.
        conn = sqlite3.connect(path, timeout=_LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise BufferStorageError(f"buffer {path}: cannot open: {_one_line(exc)}") from exc
    try:
        # One process owns the buffer: EXCLUSIVE holds the file lock until close, so a second
        # daemon fails clearly instead of double-publishing, and WAL then keeps its index in
        # heap memory instead of an mmapped -shm file that the kernel would write back to the card.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        # WAL: a commit appends to one file sequentially, instead of writing a rollback journal,
        # the database pages and two fsyncs.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            log.warning("buffer %s: journal_mode is %s, not wal; more writes per commit", path, mode)
        # NORMAL in WAL mode: no fsync per commit, durable across process crashes (module docstring).
        conn.execute("PRAGMA synchronous = NORMAL")
        # The default made explicit: a checkpoint per ~1000 pages (4 MiB) of WAL. Rarer checkpoints
        # write a page rewritten by many commits (meta, staged) to the database file only once.
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
        # Debian's SQLite is built with SECURE_DELETE on: deleted payloads would be overwritten with
        # zeros, an extra write of every freed page. Sensor readings are not secret.
        conn.execute("PRAGMA secure_delete = OFF")
        # Take the exclusive lock now, not at the first write.
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
        check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
            raise _Corrupt(f"quick_check: {check}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")
            # Not executescript(): it would COMMIT first; this way schema and version are one commit.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("next_seq", first_seq), ("dropped_batches", 0), ("dropped_readings", 0)])
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        elif version == 1:
            conn.create_function("sensord_crc32", 1, _crc, deterministic=True)
            conn.execute("BEGIN IMMEDIATE")
            for statement in _MIGRATE_1_TO_2.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
            log.info("buffer %s: added a checksum to each batch (schema version 1 to %d)", path, SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise BufferStorageError(f"buffer {path}: schema version {version}, this sensord knows "
                                     f"{SCHEMA_VERSION}; upgrade sensord or move the file away")
    except sqlite3.Error as exc:
        conn.close()
        if _code(exc) in _CORRUPT:
            raise _Corrupt(str(exc)) from exc
        if _code(exc) == sqlite3.SQLITE_BUSY:
            raise BufferStorageError(f"buffer {path}: in use by another process ({_one_line(exc)})") from exc
        raise BufferStorageError(f"buffer {path}: cannot open: {_one_line(exc)}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def move_aside(path: Path, now: float) -> Path:
    """Rename the database and its -wal/-shm to `<path>.corrupt-<UTC time>[-n]`."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                # A stale -wal next to a new database would be replayed into it: move it too.
                os.replace(source, f"{target}{suffix}")
    except OSError as exc:
        raise BufferStorageError(f"buffer {path} is unreadable and cannot be moved aside to "
                                 f"{target}: {_one_line(exc)}; move or delete it by hand") from exc
    return target


def _salvage_next_seq(moved: Path) -> int:
    """An upper bound of the next sequence number a damaged buffer file would have issued, or 0."""
    try:
        # immutable: write nothing next to the damaged file; writable_schema: read a truncated file.
        conn = sqlite3.connect(f"{moved.resolve().as_uri()}?immutable=1", uri=True)
        try:
            conn.execute("PRAGMA writable_schema = ON")
            (value,) = conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        finally:
            conn.close()
        wal = Path(f"{moved}-wal")
        # immutable ignores the WAL; each seal there wrote at least one page, so add its page count.
        return int(value) + (wal.stat().st_size // 4096 if wal.exists() else 0)
    except (sqlite3.Error, TypeError, ValueError, OSError):
        return 0


def _mark_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.seq")


def _read_mark(path: Path) -> int | None:
    """The bound recorded in `<path>.seq`, or None if it is missing or damaged."""
    mark = _mark_path(path)
    try:
        text = mark.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("buffer %s: cannot read %s (%s); the wall clock bounds the next seq", path, mark, exc)
        return None
    fields = text.split()
    if len(fields) == 2 and fields[0].isdigit() and fields[1] == b"%08x" % _crc(fields[0]):
        return int(fields[0])
    log.warning("buffer %s: %s is damaged; the wall clock bounds the next seq", path, mark)
    return None


def _write_mark(mark: Path, value: int) -> None:
    """Overwrite `<path>.seq` in place and fsync it: a fixed-length record, so that after the
    first write no new block is needed (it still works on a full disk)."""
    digits = b"%020d" % value
    created = not mark.exists()
    fd = os.open(mark, os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        os.pwrite(fd, digits + b" %08x\n" % _crc(digits), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new directory entry must survive a power cut too
        dir_fd = os.open(mark.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _raise_if_unwritable(path: Path, exc: OSError | None) -> None:
    """Raise `BufferUnwritable` naming the cause and the fix if the service user cannot write the
    buffer file or its directory (read-only file system, ownership, mode)."""
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    reason = None
    try:
        readonly = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        readonly = False
    if readonly or (exc is not None and exc.errno == errno.EROFS):
        reason = (f"{directory} is on a read-only file system; remount it read-write, or set [buffer] "
                  "path to a writable place (an SD card that turned read-only by itself is failing: see dmesg)")
    else:
        for target in (directory, path, Path(f"{path}-wal"), _mark_path(path)):
            mode = os.W_OK | (os.X_OK if target.is_dir() else os.R_OK)
            if target.exists() and not os.access(target, mode):
                st = target.stat()
                try:
                    owner = pwd.getpwuid(st.st_uid).pw_name
                except KeyError:
                    owner = f"uid {st.st_uid}"
                kind = "directory" if target.is_dir() else "file"
                reason = (f"permission denied for user {user}: {kind} {target} belongs to {owner} with "
                          f"mode {stat.S_IMODE(st.st_mode):04o}; fix: chown {user} {target}, or run "
                          f"sensord as {owner}")
                break
        if reason is None and exc is not None and exc.errno in (errno.EACCES, errno.EPERM):
            reason = f"permission denied for user {user}: {_one_line(exc)}"
    if reason is not None:
        raise BufferUnwritable(f"buffer {path}: cannot write: {reason}") from exc
