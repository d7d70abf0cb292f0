"""The plugin API: every name a plugin author uses imports from `sensord`; old paths still work
for one release, with a DeprecationWarning that names the new place."""

from __future__ import annotations

import importlib

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
