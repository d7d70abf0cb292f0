"""Fixtures of the fault-injection tests: a tiny tmpfs that fills up.

Mounting needs root (or CAP_SYS_ADMIN), as in CI and the development container. Without it the
tests fail with the reason: they are never skipped, so a machine that cannot run them cannot pass.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class TinyDisk:
    """A tmpfs of `size_bytes` mounted at `path`; `fill()` takes all its free space."""

    path: Path
    size_bytes: int

    @property
    def filler(self) -> Path:
        return self.path / "filler"

    def fill(self) -> None:
        """Write zeros until the file system says ENOSPC (no block left, down to the last one)."""
        with self.filler.open("ab", buffering=0) as f:
            for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True, capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    """A 4 MiB tmpfs under `tmp_path`, unmounted after the test."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    size = 4 << 20
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "sensord-test-disk",
                           str(mount_point)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {mount_point}: {proc.stderr.strip() or proc.returncode}. "
                    "The disk-full tests need root or CAP_SYS_ADMIN (run them in the container or CI "
                    "as root); they are not skipped, so that a run without them cannot pass.")
    try:
        yield TinyDisk(mount_point, size)
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)  # a process still holds a file
