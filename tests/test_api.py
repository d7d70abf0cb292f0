"""The plugin API: every name a plugin author uses imports from `sensord`; old paths still work
for one release, with a DeprecationWarning that names the new place."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sensord

# Old path → the object it must still give.
MOVED = [
    ("sensord.scheduler", "Sample", "sensord.sensor"),
    ("sensord.enc_base", "MAX_PAYLOAD_BYTES", "sensord.encoding"),
    ("sensord.enc_base", "MAX_READINGS", "sensord.encoding"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_old_import_path_warns_and_gives_the_same_object(old: str, name: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        obj = getattr(importlib.import_module(old), name)
    assert obj is getattr(importlib.import_module(new), name)


def test_sample_is_in_the_api() -> None:
    assert "Sample" in sensord.__all__
    assert sensord.Sample(sensor="s", quantity="q", value=1, unit="", ts=0.0).value == 1


DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def documented_names() -> list[str]:
    """The names in the table of docs/plugins.md's "The plugin API" section."""
    text = DOCS.read_text()
    section = text.split("## The plugin API", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Za-z_0-9]+)`", row)]


def test_the_docs_list_the_api() -> None:
    names = documented_names()
    assert len(names) > 30 and len(set(names)) == len(names)
    # Every name of sensord.__all__ is documented, and every documented name is in __all__.
    assert sorted(names) == sorted(set(sensord.__all__) - {"__version__"})


@pytest.mark.parametrize("name", documented_names())
def test_each_documented_name_imports_from_sensord(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from sensord import {name}", namespace)
    assert namespace[name] is getattr(sensord, name)


def test_import_sensord_loads_no_stage() -> None:
    """The filter and encoding names are lazy: `import sensord` stays a small import."""
    code = "import sys, sensord; print(' '.join(sorted(m for m in sys.modules if m.startswith('sensord'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "sensord" in loaded
    assert not [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in
                {"filters", "encoding", "config", "scheduler", "pipeline", "mqtt", "daemon", "buffer"}], loaded
