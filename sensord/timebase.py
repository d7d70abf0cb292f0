"""The time a reading is stamped with, and whether the wall clock behind it can be trusted yet.

A Raspberry Pi has no real-time clock: it boots at the time of its last shutdown (fake-hwclock,
systemd-timesyncd's saved clock) or at 1970, and NTP corrects it later, in one step. So the
scheduler takes a reading's instant from the monotonic clock (which never steps) and `TimeBase`
maps it to wall time: `ts = monotonic + offset`.

- Until a sync source says the clock is synchronised, `offset` stays what the wall clock said when
  sensord started (a fixed, provisional frame: a step of the unsynchronised clock changes nothing).
  At the sync, the true offset is known; `on_sync(delta)` lets the owner of the readings still in
  memory add `delta` to their times, so they get their true time.
- Once synchronised, `offset` follows the wall clock at every stamp (NTP's slewing, and a step
  while running, forwards or backwards, which is logged). The sync state is not asked again.

Sync sources (`[clock] sync_source`): `kernel` (adjtimex(2) with no modes, which only reads;
systemd's `ProtectClock=` forbids the call altogether), `timesyncd` (the file systemd-timesyncd
touches at each synchronisation), `auto` (the file if it is there, else the kernel where it can
be asked, else whether timesyncd runs) and `none` (the clock is always taken as set: a node with
an RTC). When no source can tell, a clock that reads earlier than `PLAUSIBLE_AFTER` is not set,
any other is. docs/clock.md has the whole design.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

SOURCES = ("auto", "kernel", "timesyncd", "none")
#: systemd-timesyncd touches this file on every synchronisation (systemd >= 239); it lives in
#: /run, so it is gone after a reboot until the first synchronisation of that boot.
TIMESYNCD_FILE = "/run/systemd/timesync/synchronized"
#: Overrides `[clock] sync_source` (the test suite sets `none`: the host's clock is not the test's).
ENV_VAR = "SENSORD_CLOCK_SYNC"
#: 2025-01-01T00:00:00Z. When no source can tell, a wall clock before this has not been set.
PLAUSIBLE_AFTER = 1_735_689_600.0
#: A change of the offset larger than this between two stamps is a step (NTP slews at most
#: 500 ppm, half a millisecond per second); smaller ones are followed silently.
STEP_S = 1.0
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised


class SyncSource(Protocol):
    """Says whether the system clock is synchronised: True, False, or None when it cannot tell."""

    name: str

    def __call__(self) -> bool | None: ...

    def describe(self) -> str:
        """What the last answer came from, for a log line."""
        ...


class Trusted:
    """`sync_source = "none"`: the clock is always taken as set."""

    name = "none"

    def __call__(self) -> bool | None:
        return True

    def describe(self) -> str:
        return 'no sync source (sync_source = "none": the clock is taken as set)'


class KernelSource:
    """The kernel's NTP state, from adjtimex(2) with `modes = 0` (read only, no privilege needed).

    Under systemd's `ProtectClock=yes` the call fails with EPERM whatever its arguments; then, and
    where there is no such call, this source cannot tell (None) and `error` says why."""

    name = "kernel"

    def __init__(self) -> None:
        self.error: str | None = None
        self._call: Callable[[Any], int] | None = None
        self._buf: Any = None
        self._last: int | None = None

    def __call__(self) -> bool | None:
        if self.error is not None:
            return None
        if self._call is None:
            try:
                import ctypes  # here: only nodes that ask the kernel pay for it

                libc = ctypes.CDLL(None, use_errno=True)
                self._call = libc.adjtimex
                # struct timex is 208 bytes on 64-bit Linux, less on 32-bit; modes (the first
                # field) is 0: read only. The state is the return value, so no layout is needed.
                self._buf = ctypes.create_string_buffer(512)
                self._errno: Callable[[], int] = ctypes.get_errno
            except (OSError, AttributeError) as exc:
                self.error = f"no adjtimex ({exc})"
                return None
        state = self._call(self._buf)
        if state < 0:
            code = self._errno()
            self.error = f"adjtimex: {os.strerror(code)}" + (
                " (a seccomp filter: the unit's ProtectClock= or SystemCallFilter=, or a container's)"
                if code == errno.EPERM else "")
            return None
        self._last = state
        return state != _TIME_ERROR

    def describe(self) -> str:
        if self.error is not None:
            return f"the kernel cannot be asked ({self.error})"
        return f"the kernel (adjtimex: {'TIME_ERROR' if self._last == _TIME_ERROR else 'synchronised'})"


class FileSource:
    """systemd-timesyncd: the clock is synchronised once `path` exists. `strict`: timesyncd is
    known to be the NTP client, so no file means not synchronised; otherwise no file and no
    timesyncd running (its directory absent) means this source cannot tell."""

    name = "timesyncd"

    def __init__(self, path: str = TIMESYNCD_FILE, *, strict: bool = True) -> None:
        self.path = path
        self.strict = strict

    def __call__(self) -> bool | None:
        if os.path.exists(self.path):
            return True
        if self.strict or os.path.isdir(os.path.dirname(self.path)):
            return False
        return None

    def describe(self) -> str:
        return f"systemd-timesyncd ({self.path})"


class AutoSource:
    """timesyncd's file when it is there; else the kernel, where the sandbox lets us ask; else
    timesyncd's directory (it runs, not synchronised yet); else None: nothing tells."""

    name = "auto"

    def __init__(self, path: str = TIMESYNCD_FILE, kernel: KernelSource | None = None) -> None:
        self.file = FileSource(path, strict=False)
        self.kernel = kernel or KernelSource()
        self._said: SyncSource | None = None

    def __call__(self) -> bool | None:
        if os.path.exists(self.file.path):
            self._said = self.file
            return True
        for source in (self.kernel, self.file):
            state = source()
            if state is not None:
                self._said = source
                return state
        self._said = None
        return None

    def describe(self) -> str:
        if self._said is not None:
            return self._said.describe()
        return (f"no source can tell ({self.kernel.error or 'kernel not asked'}; no {self.file.path} "
                "and systemd-timesyncd is not running)")


def make_source(name: str, sync_file: str = TIMESYNCD_FILE) -> SyncSource:
    """The source called `name` (one of `SOURCES`)."""
    if name == "none":
        return Trusted()
    if name == "kernel":
        return KernelSource()
    if name == "timesyncd":
        return FileSource(sync_file)
    if name == "auto":
        return AutoSource(sync_file)
    raise ValueError(f"unknown clock sync source {name!r}; known: {', '.join(SOURCES)}")


def read_boot_id(path: str = _BOOT_ID) -> str | None:
    """This boot's id (the monotonic clock counts from the boot), or None when unreadable."""
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


class TimeBase:
    """Maps monotonic instants to wall time, provisionally until the clock is synchronised.

    `stamp(mono)` is what the scheduler calls for each read; it asks the source until the first
    time it says "synchronised". `hold_until` is the monotonic time until which the pipeline
    holds the open batch (so that its readings get their true time at the sync); 0 once synced
    or when nothing is held. `on_sync(delta_s)` runs once, at the sync, before the stamp that
    noticed it is returned: readings stamped before it are `delta_s` off."""

    def __init__(self, source: SyncSource, *, wait_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 boot_id: str | None = None, on_sync: Callable[[float], None] | None = None) -> None:
        self.source = source
        self.wait_s = wait_s
        self.boot_id = boot_id
        self.on_sync = on_sync
        self._monotonic = monotonic
        self._wall = wall
        self.offset = wall() - monotonic()
        self.synced = False
        self.hold_until = 0.0
        self.steps = 0  # steps of the wall clock seen while synchronised
        self.guessed = False  # no source could tell: the clock was judged by its date

    @classmethod
    def trusted(cls, *, monotonic: Callable[[], float] = time.monotonic,
                wall: Callable[[], float] = time.time) -> TimeBase:
        """A time base that takes the wall clock as set from the start (what tests and the
        harness use unless they test the clock)."""
        base = cls(Trusted(), monotonic=monotonic, wall=wall)
        base.synced = True
        return base

    def start(self) -> bool:
        """First look at the source, at the daemon's start: logs what it found and, when not
        synchronised, starts holding for `wait_s`. Returns whether the clock is synchronised."""
        if self.poll(quiet=True):
            if self.guessed:
                log.info("clock: taken as synchronised: %s, and it reads %s", self.source.describe(),
                         _utc(self._wall()))
            else:
                log.info("clock: synchronised (%s)", self.source.describe())
            return True
        self.hold_until = self._monotonic() + self.wait_s
        wall = self._wall()
        log.warning("clock: not synchronised (%s; it reads %s): readings are stamped on the monotonic clock and get "
                    "their true time at the sync; %s", self.source.describe(), _utc(wall),
                    f"batches are held up to {self.wait_s:g} s for it, then sent flagged as unsynchronised"
                    if self.wait_s > 0 else "batches sealed before it are sent flagged as unsynchronised")
        return False

    def poll(self, *, quiet: bool = False) -> bool:
        """Whether the clock is synchronised; asks the source until it says so once."""
        if self.synced:
            return True
        state = self.source()
        self.guessed = state is None
        if state is None:
            state = self._wall() >= PLAUSIBLE_AFTER
        if state:
            offset = self._wall() - self._monotonic()
            delta = offset - self.offset
            self.offset = offset
            self.synced = True
            self.hold_until = 0.0
            if not quiet:
                log.info("clock: synchronised (%s); %s", self.source.describe(),
                         f"readings taken before it are moved by {delta:+.3f} s to their true time"
                         if abs(delta) >= 0.0005 else "the clock was right: readings taken before it keep their time")
            if self.on_sync is not None and delta:
                self.on_sync(delta)
        return self.synced

    def stamp(self, mono: float) -> float:
        """Wall time (Unix seconds) of monotonic instant `mono`: true once synchronised,
        provisional (the frame of the start) before."""
        if not self.synced:
            self.poll()
        if self.synced:
            offset = self._wall() - self._monotonic()
            step = offset - self.offset
            if abs(step) > STEP_S:
                self.steps += 1
                log.info("clock: the wall clock stepped %s by %.3f s; readings from now on carry the new time",
                         "forwards" if step > 0 else "backwards", abs(step))
            self.offset = offset
        return mono + self.offset

    def holding(self) -> bool:
        """Whether the open batch is to be held now (not synchronised, the wait not over)."""
        return not self.synced and self._monotonic() < self.hold_until

    def frame(self) -> dict[str, object] | None:
        """What a staged chunk of provisional stamps needs to be corrected after a restart in the
        same boot (`{"boot": id, "offset": s}`); None once the stamps are true."""
        if self.synced:
            return None
        return {"clock": "unsynced", "boot": self.boot_id, "offset": self.offset}

    def describe(self) -> dict[str, object]:
        """The clock's part of the node's meta message."""
        return {"synced": self.synced, "source": self.source.name, "sync_wait_s": self.wait_s}


def _utc(ts: float) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f} s"
