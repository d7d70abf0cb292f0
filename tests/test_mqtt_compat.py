"""Which MQTT library generation sensord picks, and how it reads the library's version."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import types

import pytest

from sensord.mqtt import compat as mqtt_compat


def fake_aiomqtt(monkeypatch: pytest.MonkeyPatch, *, module_version: str, dist_version: str | None) -> None:
    module = types.ModuleType("aiomqtt")
    module.__version__ = module_version  # type: ignore[attr-defined]
    monkeypatch.setattr(mqtt_compat.importlib, "import_module",
                        lambda name: module if name == "aiomqtt" else pytest.fail(f"imported {name}"))

    def version(dist: str) -> str:
        assert dist == "aiomqtt"
        if dist_version is None:
            raise importlib.metadata.PackageNotFoundError(dist)
        return dist_version

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_debian_trixie_aiomqtt_with_a_placeholder_module_version_is_accepted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # python3-asyncio-mqtt 2.3.1 (trixie): aiomqtt.__version__ == "0.0.0", dist-info 2.3.1.
    fake_aiomqtt(monkeypatch, module_version="0.0.0", dist_version="2.3.1")
    lib, name = mqtt_compat._import_library()
    assert name == "aiomqtt"
    assert lib.__version__ == "0.0.0"


def test_aiomqtt_without_dist_info_falls_back_to_the_module_version(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aiomqtt(monkeypatch, module_version="2.5.0", dist_version=None)
    assert mqtt_compat._import_library()[1] == "aiomqtt"


def test_a_real_module_version_is_taken_without_reading_the_dist_info(monkeypatch: pytest.MonkeyPatch) -> None:
    # importlib.metadata (email, zipfile...) is imported only for trixie's placeholder.
    fake_aiomqtt(monkeypatch, module_version="2.5.1", dist_version=None)
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: pytest.fail("read the dist-info"))
    assert mqtt_compat._import_library()[1] == "aiomqtt"
    assert mqtt_compat._library_version(types.SimpleNamespace(__version__="3.0.0"), "aiomqtt") == "3.0.0"


@pytest.mark.parametrize("dist_version", ["1.2.1", "3.0.0"])
def test_other_aiomqtt_generations_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, dist_version: str) -> None:
    fake_aiomqtt(monkeypatch, module_version="0.0.0", dist_version=dist_version)
    with pytest.raises(ImportError, match=rf"needs aiomqtt 2\.x .*found aiomqtt {dist_version}$"):
        mqtt_compat._import_library()


def test_the_installed_generation_is_the_one_in_use() -> None:
    # .venv has aiomqtt 2.x; .venv-bookworm (like bookworm's package) only asyncio_mqtt 0.16.
    has_aiomqtt = importlib.util.find_spec("aiomqtt") is not None
    assert ("aiomqtt" if has_aiomqtt else "asyncio_mqtt") == mqtt_compat.LIBRARY
    assert mqtt_compat.lib.__name__ == mqtt_compat.LIBRARY


def test_only_the_mqtt_package_imports_the_mqtt_library() -> None:
    """sensord.mqtt is the one place that knows paho, aiomqtt and asyncio_mqtt (the test kit's paho
    subscriber in sensord.testing aside), so a library change touches one package."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    libraries = {"paho", "aiomqtt", "asyncio_mqtt"}
    found = []
    for path in sorted([*(root / "sensord").rglob("*.py"), *(root / "plugins").rglob("*.py")]):
        if path.is_relative_to(root / "sensord" / "mqtt") or path.is_relative_to(root / "sensord" / "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in libraries]
            if isinstance(node, ast.Constant) and node.value in libraries:  # importlib.import_module("...")
                found.append(f"{path.relative_to(root)}: {node.value!r}")
    assert found == []
