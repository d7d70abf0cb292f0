"""docs/example-plugin, the TMP117 plugin that docs/plugins.md walks through, installed as a user
installs it: pip puts the dist (its module and its .dist-info with the `sensord` entry point) in a
directory on PYTHONPATH, and sensord, from this environment, finds it there. Then the commands a
user runs, and the plugin's own tests, which use only sensord's published fixtures."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_fake_node import detect_check_read, sensord_cmd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example dist (`pip install --no-deps --target`)."""
    work = tmp_path_factory.mktemp("example-plugin")
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in docs/.
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", ".*_cache"))
    target = work / "site"
    offline = ["--no-build-isolation", "--no-index"] if setuptools_builds_wheels() else []
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *offline,
                          "--target", str(target), str(source)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
    assert out.returncode == 0, out.stderr
    return target


def setuptools_builds_wheels() -> bool:
    """Whether this environment can build the dist without downloading a build backend:
    setuptools with `bdist_wheel` (setuptools 70.1 and later, or the `wheel` package)."""
    try:
        version = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def env_with(site: Path) -> dict[str, str]:
    """The environment that makes the installed dist visible (and keeps bytecode out of docs/)."""
    return {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}


def write_config(path: Path, sensors: str = "") -> Path:
    path.write_text(f'[node]\nid = "example"\n\n[plugins]\ndirs = []\n\n{sensors}')
    return path


def test_the_installed_dist_is_what_runs(site: Path, tmp_path: Path) -> None:
    code = "import importlib.metadata as m, sensord_tmp117 as p; print(p.__file__); print(m.version(p.__name__))"
    out = subprocess.run([sys.executable, "-c", code.replace("p.__name__", "'sensord-example-tmp117'")],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env_with(site)})
    assert out.returncode == 0, out.stderr
    where, version = out.stdout.split()
    assert where.startswith(str(site)) and version == "1.0.0"


def test_sensord_plugins_lists_it(site: Path, tmp_path: Path) -> None:
    out = sensord_cmd("plugins", "-c", str(write_config(tmp_path / "c.toml")), env=env_with(site), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("tmp117 ")]
    assert line.split() == ["tmp117", "1.0.0", "entry", "point", "tmp117"]  # name, version, source, types


def test_the_module_also_works_as_a_drop_in_file(tmp_path: Path) -> None:
    plugins_d = tmp_path / "plugins.d"
    plugins_d.mkdir()
    shutil.copy(EXAMPLE / "sensord_tmp117" / "__init__.py", plugins_d / "tmp117.py")
    config = tmp_path / "c.toml"
    config.write_text(f'[plugins]\ndirs = ["{plugins_d}"]\n\n[[sensor]]\nname = "fridge"\ntype = "tmp117"\n'
                      f"interval_s = 30\naddress = 0x4b\n")
    out = sensord_cmd("plugins", "-c", str(config), env={"PYTHONDONTWRITEBYTECODE": "1"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("tmp117 ")]
    assert line.split() == ["tmp117", "-", "drop-in", "tmp117"]
    out = sensord_cmd("read", "--fake", "--json", "-c", str(config), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == 21.0  # the drop-in's device model is on the fake bus too


def test_read_on_the_fake_node(site: Path, tmp_path: Path) -> None:
    # The fake node's ADS1115, LM75 and TMP102 models take 0x48-0x4A: the plugin's model goes to 0x4b.
    config = write_config(tmp_path / "c.toml", '[[sensor]]\nname = "fridge"\ntype = "tmp117"\ninterval_s = 30\n'
                                               'address = 0x4b\n')
    checked = sensord_cmd("check", "--open", "--fake", "-c", str(config), env=env_with(site), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "opened fridge: temperature [°C]" in checked.stdout
    out = sensord_cmd("read", "--fake", "--json", "-c", str(config), env=env_with(site), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert (row["sensor"], row["quantity"], row["unit"]) == ("fridge", "temperature", "°C")
    assert -55.0 <= row["value"] <= 150.0  # the TMP117's operating range
    assert row["value"] == 21.0  # TMP117Model's default temperature


def test_detect_finds_the_plugins_chip_and_its_config_reads(site: Path, tmp_path: Path) -> None:
    sensors, rows = detect_check_read(tmp_path, env=env_with(site))
    (tmp,) = [s for s in sensors if s["type"] == "tmp117"]
    # The first free address from the model's DEFAULT_ADDRESS (0x48): the built-in models take 0x48-0x4a.
    assert (tmp["name"], tmp["address"]) == ("tmp117_4b", 0x4B)
    assert [r["value"] for r in rows if r["sensor"] == "tmp117_4b"] == [21.0]
    assert {s["type"] for s in sensors} >= {"bme280", "sht3x", "scd4x", "ds18b20"}  # the built-ins still there


def test_the_plugins_own_tests_pass(site: Path, tmp_path: Path) -> None:
    # Run from elsewhere so that sensord_tmp117 comes from the installed copy, not the source.
    out = subprocess.run([sys.executable, "-m", "pytest", str(EXAMPLE / "tests"), "-p", "no:cacheprovider", "-q"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, **env_with(site)})
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=*\s*\d+ passed in [\d.]+s( \([\d:]+\))?\s*=*", summary), summary
