"""What a daemon's start-up does not import: modules that only an error, another encoding or a
third-party plugin needs (issue 13: every module imported stays resident for the daemon's life).

Checked in a fresh interpreter that imports what `sensord run` imports and builds the runnable
node from a config with a `sim` sensor and a `round` filter (this interpreter has imported
everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
[plugins]
dirs = []
[[sensor]]
name = "s"
type = "sim"
interval_s = 1
filters = [{round = 1}]
"""


def loaded_by_start_up(tmp_path: Path) -> set[str]:
    cfg = tmp_path / "node.toml"
    cfg.write_text(CONFIG)
    code = ("import json, sys\nimport sensord.cli, sensord.daemon, sensord.mqtt.compat\n"
            "from sensord import startup\nstartup.load_runnable(sys.argv[1])\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def imports_itself(module: str, by: str) -> bool:
    code = f"import sys, {by}; print({module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_the_did_you_mean_and_decimal_modules_wait_for_their_use(tmp_path: Path) -> None:
    # difflib: only an error's did-you-mean; decimal: `round` on a value in exponent form, `step`, SenML.
    assert {"difflib", "decimal"} & loaded_by_start_up(tmp_path) == set()


def test_no_entry_point_scan_without_a_plugin_that_declares_one(tmp_path: Path) -> None:
    # No distribution in this venv declares [sensord]; the MQTT library's version comes from its module.
    if imports_itself("importlib.metadata", "pluggy"):
        pytest.skip("this pluggy imports importlib.metadata itself (1.0, bookworm's)")
    assert "importlib.metadata" not in loaded_by_start_up(tmp_path)


#: What `sensord check` must not import: the MQTT libraries, and asyncio and ssl with them (about
#: 55 ms of a check's start-up when `reconnect.describe_policy` imported them through `sensord.mqtt`).
CHECK_MUST_NOT_IMPORT = ("asyncio", "paho", "aiomqtt", "asyncio_mqtt", "ssl")


def test_check_imports_no_mqtt_library_asyncio_or_ssl(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(CONFIG)
    code = ("import sys\nfrom sensord.cli import main\ncode = main(['check', '-c', sys.argv[1]])\n"
            "print(code, *sorted(sys.modules))")  # not json: check must not import it either
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "reconnect: backoff" in out.stdout  # the policy is still printed
    code_, *modules = out.stdout.splitlines()[-1].split()
    assert code_ == "0", out.stdout
    heavy = sorted(m for m in modules if m.split(".")[0] in CHECK_MUST_NOT_IMPORT)
    assert heavy == []
    # Nor what a config without I2C sensors and the entity listing need not: the encoders, the
    # pipeline, the I2C helpers, hashlib (OpenSSL) for state keys that check does not show, json.
    unneeded = {"sensord.encoding", "sensord.pipeline", "sensord.i2c", "hashlib", "_hashlib", "json"}
    if not imports_itself("shutil", "pluggy"):  # bookworm's pluggy 1.0 does, with importlib.metadata
        unneeded.add("shutil")  # argparse's help formatter would, for the terminal's width
    assert unneeded & set(modules) == set()


def test_the_mqtt_package_still_re_exports_its_names() -> None:
    import sensord.mqtt as mqtt
    from sensord.mqtt import backoff, link, publisher

    assert mqtt.Publisher is publisher.Publisher
    assert mqtt.Backoff is link.Backoff is backoff.Backoff
    assert set(mqtt.__all__) <= set(dir(mqtt))
    for name in mqtt.__all__:
        getattr(mqtt, name)
    with pytest.raises(AttributeError):
        mqtt.nothing_here  # noqa: B018
