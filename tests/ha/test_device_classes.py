"""tests/ha/ha_device_classes.json still says what the installed Home Assistant accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hass import DEFAULT_VENV, INSTALL_HINT

pytestmark = pytest.mark.ha

HERE = Path(__file__).resolve().parent


def test_the_device_class_dump_is_current() -> None:
    python = DEFAULT_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{DEFAULT_VENV} has no Home Assistant: {INSTALL_HINT}", pytrace=False)
    done = subprocess.run([str(python), str(HERE / "dump_device_classes.py"), "--check"],
                          capture_output=True, text=True, cwd=HERE.parents[1])
    assert done.returncode == 0, done.stderr
