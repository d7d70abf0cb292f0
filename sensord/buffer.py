"""The durable offline buffer: sealed batches wait in SQLite until the broker has acknowledged them.

All SQL of sensord lives here. The daemon seals each finished batch (`seal`), publishes what `peek`
returns and deletes it with `ack` once the broker has acknowledged it. Readings of the still-open
batch are staged (`stage`) every commit interval, so a crash loses at most that window; at start-up
`staged()` hands them back. `max_bytes` caps the payload bytes kept: the oldest batches go first.

Durability: WAL with synchronous=NORMAL. A commit is in the WAL file when COMMIT returns, so it
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
damaged file aside.

One process owns the file (an exclusive lock, held until `close`): a second daemon, or a CLI
reading the file, gets `BufferStorageError` "in use by another process". Staged chunks do not count
towards `max_bytes` (the batcher bounds the open batch).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .errors import BufferStorageError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SCHEMA_VERSION = 1
# How long open() waits for another process's lock on the file (a previous daemon still exiting).
_LOCK_TIMEOUT_S = 1.0
_SCHEMA = """
CREATE TABLE batch (
    seq INTEGER PRIMARY KEY, created REAL NOT NULL, first_ts REAL NOT NULL,
    readings INTEGER NOT NULL, size INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE staged (
    id INTEGER PRIMARY KEY, created REAL NOT NULL, readings INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# `size` duplicates length(payload) so that summing it never reads the payloads' overflow pages.

# Primary result codes of a storage that refuses writes for now; the caller retries later.
_TRANSIENT = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


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


class Buffer:
    """Sealed batches and the staged open batch, in one SQLite file. Create it with `Buffer.open()`.

    Every method takes an internal lock, so calls may come from any thread; each is short.
    """

    def __init__(self, conn: sqlite3.Connection, *, path: Path, max_bytes: int,
                 clock: Callable[[], float]) -> None:
        self._conn = conn
        self._path = path
        self._max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._failing = 0  # failed writes in the current storage-failure streak
        # Payload bytes pending, kept here so that a seal need not scan the table (we are the only
        # writer: the file is locked); updated only after a commit.
        self._pending_bytes = int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM batch").fetchone()[0])
        self._episode: list[int] | None = None  # [batches, readings] dropped in this cap episode

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, max_bytes: int,
             clock: Callable[[], float] = time.time) -> Buffer:
        """Open or create the buffer file at `path` (parent directory created with mode 0o750).

        A file that is not a database, or fails `PRAGMA quick_check`, is moved aside to
        `<path>.corrupt-<UTC time>` (with its -wal) and a new buffer starts. Its `next_seq` is the
        Unix time in seconds (ahead of any seq issued before, as batches are sealed far less often
        than once a second), or the old file's next_seq if readable and larger (a clock still at
        1970): consumers see a gap, never a step back. Raises `BufferStorageError` if the file
        cannot be opened (permissions, locked by another process, newer schema) or moved aside.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        p = Path(path)
        try:
            p.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        except OSError as exc:
            raise BufferStorageError(f"buffer {p}: cannot create: {exc}") from exc
        try:
            conn = _connect(p, first_seq=1)
        except _Corrupt as exc:
            moved = _move_aside(p, clock())
            # Never reuse a seq: continue after the old file's, or from the clock if that is later.
            first_seq = max(1, int(clock()), _salvage_next_seq(moved))
            log.warning("buffer %s is unreadable (%s); moved it to %s and started a new buffer "
                        "at seq %d", p, exc, moved, first_seq)
            try:
                conn = _connect(p, first_seq=first_seq)
            except _Corrupt as again:
                raise BufferStorageError(f"buffer {p}: new file is unreadable too: {again}") from again
        return cls(conn, path=p, max_bytes=max_bytes, clock=clock)

    @property
    def dropping(self) -> bool:
        """True while the cap is dropping batches (until pending bytes fall below max_bytes / 2)."""
        return self._episode is not None

    @property
    def storage_failing(self) -> bool:
        """True while writes fail (disk full, I/O error); cleared by the next successful write."""
        return self._failing > 0

    def seal(self, encode: Callable[[int], bytes], *, readings: int, first_ts: float) -> int | None:
        """Store a finished batch; return its sequence number, or None if storage refused the write.

        In one transaction: allocate the next sequence number, call `encode(seq)` for the payload,
        insert the batch, delete the staged chunks (the batch now holds them), and drop the oldest
        batches while pending payload bytes exceed `max_bytes`. The new batch itself is kept even
        if it alone exceeds `max_bytes`. If `encode` raises, nothing changes and the error
        propagates. On None, nothing changed: keep the readings and seal again later.
        """

        def work(conn: sqlite3.Connection) -> tuple[int, int, int, int]:
            (seq,) = conn.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            payload = encode(seq)
            conn.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?)",
                         (seq, self._clock(), first_ts, readings, len(payload), payload))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
            conn.execute("DELETE FROM staged")
            return (seq, *self._enforce_cap(conn, seq, self._pending_bytes + len(payload)))

        with self._lock:
            done = self._write("seal", work)
            if done is None:
                return None
            seq, self._pending_bytes, dropped, dropped_readings = done
            if dropped:
                if self._episode is None:
                    self._episode = [0, 0]
                    log.warning("buffer %s: over max_bytes=%d, dropping the oldest batches "
                                "(first: %d batches, %d readings); one summary when it drains",
                                self._path, self._max_bytes, dropped, dropped_readings)
                self._episode[0] += dropped
                self._episode[1] += dropped_readings
            return seq

    def stage(self, data: bytes, *, readings: int) -> bool:
        """Append a chunk of the open batch's readings; False if storage refused the write.

        On False nothing was stored: include these readings in the next chunk.
        """

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT INTO staged (created, readings, data) VALUES (?, ?, ?)",
                         (self._clock(), readings, data))
            return True

        with self._lock:
            return self._write("stage", work) is not None

    def staged(self) -> list[bytes]:
        """The staged chunks, oldest first: the open batch a crash left behind."""
        with self._lock:
            return [row[0] for row in self._read("SELECT data FROM staged ORDER BY id")]

    def staged_readings(self) -> int:
        """How many readings the staged chunks hold."""
        with self._lock:
            return int(self._read("SELECT COALESCE(SUM(readings), 0) FROM staged")[0][0])

    def peek(self, limit: int = 100, *, after_seq: int = 0) -> list[StoredBatch]:
        """Up to `limit` pending batches with seq > `after_seq`, oldest first. Nothing is removed."""
        with self._lock:
            rows = self._read("SELECT seq, created, first_ts, readings, payload FROM batch "
                              "WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [StoredBatch(*row) for row in rows]

    def ack(self, seq: int) -> bool:
        """Delete a delivered batch. See `ack_many`."""
        return self.ack_many((seq,))

    def ack_many(self, seqs: Iterable[int]) -> bool:
        """Delete delivered batches (call only after the broker acknowledged them).

        Unknown sequence numbers are ignored. False if storage refused the write: the batches stay
        pending and will be published again (consumers deduplicate by seq), so back off first.
        """
        seqs = list(seqs)

        def work(conn: sqlite3.Connection) -> int:
            freed = 0
            for seq in seqs:
                row = conn.execute("DELETE FROM batch WHERE seq = ? RETURNING size", (seq,)).fetchone()
                freed += row[0] if row else 0
            return self._pending_bytes - freed

        with self._lock:
            pending_bytes = self._write("ack", work)
            if pending_bytes is None:
                return False
            self._pending_bytes = pending_bytes
            if self._episode is not None and (pending_bytes == 0 or pending_bytes < self._max_bytes / 2):
                log.info("buffer %s: below max_bytes / 2 again; %d batches (%d readings) were "
                         "dropped while it was full", self._path, *self._episode)
                self._episode = None
            return True

    def stats(self) -> BufferStats:
        """Counts for status reports: pending, staged, dropped so far (persisted), next seq."""
        with self._lock:
            (batches, readings, size, oldest), = self._read(
                "SELECT COUNT(*), COALESCE(SUM(readings), 0), COALESCE(SUM(size), 0), MIN(created) "
                "FROM batch")
            (staged,), = self._read("SELECT COALESCE(SUM(readings), 0) FROM staged")
            meta = dict(self._read("SELECT key, value FROM meta"))
        return BufferStats(pending_batches=batches, pending_readings=readings, pending_bytes=size,
                           staged_readings=staged, oldest_created=oldest,
                           dropped_batches=meta["dropped_batches"],
                           dropped_readings=meta["dropped_readings"], next_seq=meta["next_seq"])

    def close(self) -> None:
        """Checkpoint the WAL into the database file, truncate the WAL and close. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # the WAL is still valid; the next open recovers from it
                log.warning("buffer %s: checkpoint at close failed: %s", self._path, exc)
            self._conn.close()
            self._closed = True

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _enforce_cap(self, conn: sqlite3.Connection, newest: int, total: int) -> tuple[int, int, int]:
        """Delete the oldest batches (never `newest`) until `total` pending bytes <= max_bytes.

        Returns the pending bytes left, the batches and the readings dropped.
        """
        dropped = dropped_readings = 0
        cutoff = None
        rows = conn.execute("SELECT seq, size, readings FROM batch WHERE seq < ? ORDER BY seq", (newest,))
        while total > self._max_bytes and (row := rows.fetchone()) is not None:
            cutoff, size, readings = row
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
        """Run `work` in one transaction; None (logged once per streak) if storage refused it."""
        conn = self._conn
        try:
            # IMMEDIATE: take the write lock up front, so the commit cannot fail on lock upgrade.
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if _code(exc) not in _TRANSIENT:
                raise BufferStorageError(f"buffer {self._path}: {what} failed: {exc}") from exc
            if not self._failing:
                log.warning("buffer %s: cannot write (%s); the caller keeps its data and retries "
                            "(logged once until a write succeeds)", self._path, exc)
            self._failing += 1
            return None
        if self._failing:
            log.info("buffer %s: writes succeed again after %d failures", self._path, self._failing)
            self._failing = 0
        return result

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:  # rows of SQLite values
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise BufferStorageError(f"buffer {self._path}: read failed: {exc}") from exc


def _connect(path: Path, *, first_seq: int) -> sqlite3.Connection:
    """Connect, set the PRAGMAs, check integrity, create or check the schema."""
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each transaction is explicit.
        conn = sqlite3.connect(path, timeout=_LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise BufferStorageError(f"buffer {path}: cannot open: {exc}") from exc
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
        elif version != SCHEMA_VERSION:
            raise BufferStorageError(f"buffer {path}: schema version {version}, this sensord knows "
                                     f"{SCHEMA_VERSION}; upgrade sensord or move the file away")
    except sqlite3.Error as exc:
        conn.close()
        if _code(exc) in _CORRUPT:
            raise _Corrupt(str(exc)) from exc
        if _code(exc) == sqlite3.SQLITE_BUSY:
            raise BufferStorageError(f"buffer {path}: in use by another process ({exc})") from exc
        raise BufferStorageError(f"buffer {path}: cannot open: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path, now: float) -> Path:
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
                                 f"{target}: {exc}; move or delete it by hand") from exc
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
