"""A plain wheel (not the editable install) carries both packages, the script and the entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# What a build must not see: the build happens in a copy, so it never writes into the checkout.
_NOT_SOURCES = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", ".state", "__pycache__",
                                      ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")


def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    # pip builds a local directory in place (build/, *.egg-info): build from a copy of the sources.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    before = sorted(p.name for p in ROOT.iterdir())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    assert sorted(p.name for p in ROOT.iterdir()) == before, "the build wrote into the checkout"
    (wheel,) = tmp_path.glob("sensord-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {"sensord/cli/__init__.py", "sensord/cli/listen.py", "sensord/testing/pytest_plugin.py",
            "sensord_plugins/sim.py", "sensord_plugins/system.py"} <= names
    # Every driver and chip model, found in the tree rather than listed (a new one needs no entry).
    assert {f"sensord_plugins/{p.name}" for p in (ROOT / "plugins").glob("*.py")} <= names
    assert {f"sensord/testing/models/{p.name}" for p in (ROOT / "sensord" / "testing" / "models").glob("*.py")} <= names
    assert "sensord = sensord.cli:run" in entry_points
    assert "[pytest11]" in entry_points and "sensord = sensord.testing.pytest_plugin" in entry_points

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import sensord, sensord_plugins.sim; print(sensord.__file__)"],
                           env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(target))
    out = subprocess.run([sys.executable, "-m", "sensord", "read", "--json", "-c", str(ROOT / "config" / "demo.toml")],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {json.loads(line)["sensor"] for line in out.stdout.splitlines()} == {"greenhouse", "soil", "counter", "host"}
