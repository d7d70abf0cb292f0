"""`sensord listen` and `sensord buffer` as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sensord.buffer import Buffer
from sensord.encoding import encode_batch
from sensord.sensor import Sample
from sensord.testing.broker import Mosquitto, publish

ROOT = Path(__file__).resolve().parents[1]


def sensord(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensord", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@pytest.mark.broker
def test_listen_prints_readings_and_status() -> None:
    with Mosquitto() as broker:
        proc = subprocess.Popen([sys.executable, "-m", "sensord", "listen", "--host", broker.host, "--port",
                                 str(broker.port), "--status", "--count", "3", "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        broker.wait_for_log("Sending SUBACK", timeout_s=15)  # subscribed: what is published now reaches it
        publish(broker, "sensord/barn/status", b"online", retain=True)
        publish(broker, "sensord/barn/data", b"garbage")
        samples = [Sample("air", "temperature", 21.5, "\u00b0C", 1_700_000_000.0),
                   Sample("air", "temperature", 21.6, "\u00b0C", 1_700_000_010.0),
                   Sample("door", "contact", True, "", 1_700_000_011.0)]
        publish(broker, "sensord/barn/data", encode_batch("barn", 9, samples))
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"node": "barn", "status": "online"}
    assert lines[1] == {"node": "barn", "sensor": "air", "quantity": "temperature", "value": 21.5,
                        "unit": "\u00b0C", "ts": 1_700_000_000.0, "seq": 9}
    assert [r["value"] for r in lines[1:]] == [21.5, 21.6, True]
    assert "sensord/barn/data: not a sensord batch" in err and "Traceback" not in err


@pytest.mark.broker
def test_listen_timeout_exits_0() -> None:
    with Mosquitto() as broker:
        t0 = time.monotonic()
        out = sensord("listen", "--host", broker.host, "--port", str(broker.port), "--timeout", "0.5")
    assert (out.returncode, out.stdout) == (0, "")
    assert time.monotonic() - t0 < 10


def test_listen_waits_for_a_broker_that_is_not_there_and_times_out_with_one_clear_line() -> None:
    out = sensord("listen", "--host", "127.0.0.1", "--port", "1", "--timeout", "2")
    assert out.returncode == 1
    first, last = out.stderr.strip().splitlines()  # retrying, then why it gave up
    assert first.startswith("sensord: MQTT broker 127.0.0.1:1: connection refused") and first.endswith("; retrying")
    assert last.startswith("sensord: MQTT broker 127.0.0.1:1: connection refused")
    assert last.endswith("; no connection within 2 s")
    assert "Traceback" not in out.stderr


def test_listen_started_before_the_broker_prints_once_it_comes(broker: Mosquitto, tmp_path: Path) -> None:
    port = broker.port
    broker.kill()
    proc = subprocess.Popen([sys.executable, "-m", "sensord", "listen", "--host", "127.0.0.1", "--port", str(port),
                             "--status", "--count", "1", "--timeout", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # type: ignore[union-attr]
        assert first.startswith(f"sensord: MQTT broker 127.0.0.1:{port}: connection refused") and "retrying" in first
        broker.restart()
        batch = encode_batch("n1", 1, [Sample("t", "temperature", 21.5, "°C", 1_700_000_000.0)])
        publish(broker, "sensord/n1/data", batch, retain=True)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.strip() == f"sensord: connected to 127.0.0.1:{port}"
    assert json.loads(out.splitlines()[0])["value"] == 21.5


def test_buffer_command(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[buffer]\npath = "{tmp_path / "b.db"}"\n[plugins]\ndirs = []\n')
    out = sensord("buffer", "-c", str(cfg))
    assert out.returncode == 1 and "no buffer at" in out.stderr
    samples = [Sample("a", "v", i, "", 1_700_000_000.0 + i) for i in range(5)]
    # A clock at 1970: a new buffer's seq then starts at 1 (else at the Unix time, sensord.buffer).
    with Buffer.open(tmp_path / "b.db", max_bytes=1 << 20, clock=lambda: 0.0) as buf:
        buf.seal(lambda seq: encode_batch("n", seq, samples), readings=5, first_ts=samples[0].ts)
        buf.seal(lambda seq: encode_batch("n", seq, samples[:2]), readings=2, first_ts=samples[0].ts)
    out = sensord("buffer", "-c", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert (figures["pending_batches"], figures["pending_readings"], figures["dropped_readings"]) == (2, 7, 0)
    assert figures["pending_bytes"] > 0 and figures["oldest_age_s"] >= 0 and figures["next_seq"] == 3
    text = sensord("buffer", "-c", str(cfg))
    assert "pending_readings   7" in text.stdout


@pytest.mark.parametrize("encoding", ["compact", "senml+cbor", "senml+json", "json"])
def test_decode_command(tmp_path: Path, encoding: str) -> None:
    samples = [Sample("air", "temperature", 21.5, "\u00b0C", 1_700_000_000.0),
               Sample("door", "contact", True, "", 1_700_000_001.0)]
    path = tmp_path / "batch.bin"
    path.write_bytes(encode_batch("barn", 4, samples, encoding=encoding))
    out = sensord("decode", str(path))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows == [{"node": "barn", "sensor": "air", "quantity": "temperature", "value": 21.5, "unit": "\u00b0C",
                     "ts": 1_700_000_000.0, "seq": 4},
                    {"node": "barn", "sensor": "door", "quantity": "contact", "value": True, "unit": "",
                     "ts": 1_700_000_001.0, "seq": 4}]
    piped = subprocess.run([sys.executable, "-m", "sensord", "decode", "-"], input=path.read_bytes(),
                           capture_output=True, cwd=ROOT, timeout=30)
    assert piped.returncode == 0 and piped.stdout.decode() == out.stdout


def test_decode_bad_input_is_one_line(tmp_path: Path) -> None:
    payload = encode_batch("barn", 4, [Sample("a", "v", 1, "", 1_700_000_000.0)])
    (tmp_path / "cut.bin").write_bytes(payload[:-3])
    out = sensord("decode", str(tmp_path / "cut.bin"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"sensord: {tmp_path / 'cut.bin'}: ") and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    missing = sensord("decode", str(tmp_path / "none.bin"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


REVERSE_PLUGIN = '''
from sensord import hookimpl
from sensord.encoding import ENCODINGS


class Reverse:
    """JSON backwards: a stand-in for a third-party encoding."""

    name = "reverse"
    content_type = "application/x-reverse"

    def matches(self, payload):
        return payload[:1] == b"}"

    def encode(self, batch):
        return ENCODINGS["json"].encode(batch)[::-1]

    def decode(self, payload):
        return ENCODINGS["json"].decode(payload[::-1])


@hookimpl
def sensord_register_encodings():
    return [Reverse()]
'''


def plugin_config(tmp_path: Path, port: int = 1883) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "reverse.py").write_text(REVERSE_PLUGIN)
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n[plugins]\ndirs = ["{tmp_path / "plugins"}"]\n')
    return cfg


def test_decode_knows_the_encodings_of_the_configs_plugins(tmp_path: Path) -> None:
    cfg = plugin_config(tmp_path)
    path = tmp_path / "batch.bin"
    path.write_bytes(encode_batch("barn", 4, [Sample("a", "v", 1.5, "", 1_700_000_000.0)], encoding="json")[::-1])
    assert "not a sensord batch" in sensord("decode", str(path)).stderr  # without the plugin
    out = sensord("decode", "-c", str(cfg), str(path))
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["value"] for line in out.stdout.splitlines()] == [1.5]


@pytest.mark.broker
def test_listen_knows_the_encodings_of_the_configs_plugins(tmp_path: Path) -> None:
    with Mosquitto() as broker:
        cfg = plugin_config(tmp_path, broker.port)
        proc = subprocess.Popen([sys.executable, "-m", "sensord", "listen", "-c", str(cfg), "--node", "barn",
                                 "--count", "1", "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        broker.wait_for_log("Sending SUBACK", timeout_s=15)  # subscribed: what is published now reaches it
        payload = encode_batch("barn", 5, [Sample("a", "v", 2.5, "", 1_700_000_000.0)], encoding="json")[::-1]
        publish(broker, "sensord/barn/data", payload)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert [json.loads(line)["value"] for line in out.splitlines()] == [2.5]
