"""The entry points of one group, without importing `importlib.metadata` when none can exist.

`importlib.metadata` imports `email`, `zipfile`, `csv`, `shutil`, `tempfile` and
`importlib.resources`: about 20 ms of `sensord check` and 0.7 MiB of every daemon on a node that
has no third-party plugin, which is most of them. `may_exist(group)` first reads what
importlib.metadata itself would read: the `entry_points.txt` of every `*.dist-info` and
`*.egg-info` directory (and an egg's `EGG-INFO`) in each directory on `sys.path`. Only when none
of them has a `[group]` section is the answer "none" without importlib.metadata; whatever this
look cannot read the way importlib.metadata does (a zip file on `sys.path`, a meta-path finder
of its own that finds distributions, a file that cannot be read or decoded) answers "maybe", and
importlib.metadata decides as before. It never decides that an entry point exists: a "maybe"
costs the import, never a plugin.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["entry_points", "may_exist"]


def entry_points(group: str) -> list[EntryPoint]:
    """The installed distributions' entry points of `group`, sorted by name."""
    if not may_exist(group):
        return []
    from importlib import metadata

    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def may_exist(group: str) -> bool:
    """False only when no distribution that importlib.metadata can find declares an entry point
    of `group` (see the module docstring)."""
    if any(finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions")
           for finder in sys.meta_path):
        return True
    for entry in sys.path:
        root = entry or "."
        if not os.path.isdir(root):
            if os.path.exists(root):
                return True  # a zip file (or a zipped egg): importlib.metadata reads inside it
            continue
        try:
            children = os.listdir(root)
        except OSError:
            continue  # importlib.metadata finds nothing there either
        egg = root.lower().endswith(".egg")
        for child in children:
            low = child.lower()
            if not (low.endswith((".dist-info", ".egg-info")) or (egg and low == "egg-info")):
                continue
            try:
                with open(os.path.join(root, child, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except (FileNotFoundError, NotADirectoryError):
                continue  # no entry points (a distutils `*.egg-info` is a file: no entry points either)
            except (OSError, UnicodeDecodeError):
                return True
            if any(_is_section(line.strip(), group) for line in text.splitlines()):
                return True
    return False


def _is_section(line: str, group: str) -> bool:
    """`[group]` as importlib.metadata reads a section header (`[[group]]` too), or with spaces."""
    return line.startswith("[") and line.endswith("]") and line.strip("[]").strip() == group
