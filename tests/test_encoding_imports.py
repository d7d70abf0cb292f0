"""The codec stands alone: `import sensord.encoding` and `sensord.decode()` load no part of the
daemon, so a server that only reads batches does not pull in the scheduler, the config, the
filters, the buffer, MQTT or asyncio.

Each check runs in a fresh interpreter (this one has imported everything already) and looks at
`sys.modules` after the import and an encode/decode round trip; the failure message lists every
sensord module that was loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sensord.encoding import ENCODINGS, encode_batch
from sensord.sensor import Sample

#: Parts of sensord the codec must not load: the stages before and after it, the plugin loading
#: (which imports the codec, so the reverse would be a cycle), the daemon and the CLI.
FORBIDDEN_SENSORD = (
    "sensord.scheduler", "sensord.config", "sensord.filters", "sensord.filters_builtin", "sensord.batch",
    "sensord.pipeline", "sensord.buffer", "sensord.staging", "sensord.mqtt", "sensord.plugins", "sensord.daemon",
    "sensord.app", "sensord.startup", "sensord.cli", "sensord.cli.listen", "sensord.testing",
)
#: Libraries only those parts use: the event loop, the MQTT clients, SQLite, timeit (benchmarks).
FORBIDDEN_OTHER = ("asyncio", "paho", "aiomqtt", "asyncio_mqtt", "sqlite3", "timeit")

SAMPLES = [Sample("air", "temperature", 21.5, "°C", 1_700_000_000.0), Sample("door", "open", True, "", 1_700_000_001.0)]

def loaded_after(code: str, *args: str) -> list[str]:
    """The names in `sys.modules` after running `code` in a fresh interpreter (checking its exit)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.splitlines()[-1]))


def forbidden(modules: list[str]) -> list[str]:
    """The forbidden packages and modules among `modules` (a package counts once, with its submodules)."""
    return [f for f in (*FORBIDDEN_SENSORD, *FORBIDDEN_OTHER)
            if any(m == f or m.startswith(f + ".") for m in modules)]


def check(modules: list[str]) -> None:
    own = [m for m in modules if m == "sensord" or m.startswith("sensord.")]
    print("sensord modules loaded:", " ".join(own))  # shown by `pytest -rP`
    assert not forbidden(modules), f"loads {forbidden(modules)}; sensord modules loaded: {own}"
    assert "sensord.encoding" in own


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_import_sensord_encoding_loads_only_the_codec(name: str) -> None:
    payload = encode_batch("n", 1, SAMPLES, encoding=name)
    modules = loaded_after(
        "import sys\n"
        "import sensord.encoding as enc\n"
        "batch = enc.decode(bytes.fromhex(sys.argv[1]))\n"
        "again = enc.encode_batch(batch.node, batch.seq, batch.samples, encoding=sys.argv[2])\n"
        "assert enc.decode(again) == batch, (enc.decode(again), batch)\n",
        payload.hex(), name)
    check(modules)


def test_sensord_decode_loads_only_the_codec() -> None:
    payload = encode_batch("barn", 7, SAMPLES)
    modules = loaded_after(
        "import sys\n"
        "import sensord\n"
        "batch = sensord.decode(bytes.fromhex(sys.argv[1]))\n"
        "assert (batch.node, batch.seq, len(batch.samples)) == ('barn', 7, 2), batch\n"
        "assert issubclass(sensord.DecodeError, ValueError)\n",
        payload.hex())
    check(modules)


def test_the_check_sees_a_forbidden_module() -> None:
    """The check itself: importing the scheduler beside the codec is caught."""
    modules = loaded_after("import sensord.encoding, sensord.scheduler")
    assert "sensord.scheduler" in forbidden(modules)
