"""The entry-point look that spares importlib.metadata: never "none" where importlib.metadata finds one."""

from __future__ import annotations

import importlib.metadata
import sys
import zipfile
from pathlib import Path

import pytest

from sensord import entrypoints


def dist(site: Path, name: str, entry_points: str | bytes | None, *, suffix: str = ".dist-info") -> Path:
    info = site / f"{name}-1.0{suffix}"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if isinstance(entry_points, str):
        (info / "entry_points.txt").write_text(entry_points)
    elif isinstance(entry_points, bytes):
        (info / "entry_points.txt").write_bytes(entry_points)
    return info


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sys.path holds only this directory (and one that does not exist)."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.setattr(sys, "path", [str(path), str(tmp_path / "missing")])
    return path


def test_no_distribution_declares_the_group(site: Path) -> None:
    dist(site, "tool", "[console_scripts]\nsensord = tool:main\n")  # the name, but another section
    dist(site, "plain", None)
    (site / "old_distutils-1.0.egg-info").write_text("Metadata-Version: 1.1\nName: old-distutils\n")  # a file
    assert not entrypoints.may_exist("sensord")
    assert entrypoints.entry_points("sensord") == []
    assert importlib.metadata.entry_points(group="sensord") == ()  # importlib.metadata agrees


@pytest.mark.parametrize("text", ["[sensord]\nthermo = m\n", "[console_scripts]\nx = y\n\n  [ sensord ]  \nt = m\n",
                                  "[[sensord]]\nthermo = m\n", "[sensord]\r\nthermo = m\r\n"])
def test_a_section_of_the_group_defers_to_importlib_metadata(site: Path, text: str) -> None:
    dist(site, "sensord-thermo", text)
    assert entrypoints.may_exist("sensord")


def test_the_entry_points_are_importlib_metadatas_sorted_by_name(site: Path) -> None:
    dist(site, "b", "[sensord]\nzeta = b\n")
    dist(site, "a", "[sensord]\nalpha = a\n", suffix=".egg-info")
    assert [(ep.name, ep.value) for ep in entrypoints.entry_points("sensord")] == [("alpha", "a"), ("zeta", "b")]


def test_an_egg_directory_is_read(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    egg = site / "thermo-1.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "entry_points.txt").write_text("[sensord]\nthermo = m\n")
    monkeypatch.setattr(sys, "path", [str(egg)])
    assert entrypoints.may_exist("sensord")


def test_what_it_cannot_read_answers_maybe(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist(site, "latin", b"[sensord]\nth\xe9rmo = m\n")  # not UTF-8
    assert entrypoints.may_exist("sensord")

    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x-1.0.dist-info/entry_points.txt", "[sensord]\nx = x\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert entrypoints.may_exist("sensord")


def test_a_finder_of_distributions_of_its_own_answers_maybe(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Finder:
        @staticmethod
        def find_distributions(context: object = None) -> list[object]:
            return []

    assert not entrypoints.may_exist("sensord")
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    assert entrypoints.may_exist("sensord")


@pytest.mark.parametrize("group", ["console_scripts", "pytest11", "sensord"])
def test_it_agrees_with_importlib_metadata_on_this_interpreter(group: str) -> None:
    found = sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name)
    assert not found or entrypoints.may_exist(group)
    assert entrypoints.entry_points(group) == found
