"""sensord/bridge/runner.py: `Bridge.handle()` on messages, without a broker."""

from __future__ import annotations

import asyncio
import io
import json
import tomllib
from pathlib import Path

import pytest

from sensord.bridge import DedupeState, parse_bridge_config
from sensord.bridge.outputs import LineSink
from sensord.bridge.runner import Bridge, topic_filters
from sensord.encoding import ENCODINGS, MAX_PAYLOAD_BYTES, Batch, BatchData, encode_batch
from sensord.sensor import Sample

T0 = 1_700_000_000.0


class Kit:
    def __init__(self, tmp_path: Path, toml: str = "", encodings: dict | None = None) -> None:  # type: ignore[type-arg]
        self.file = parse_bridge_config(tomllib.loads(toml or '[bridge]\njson_lines = "x"\nout_prefix = "plain"\n'),
                                        "bridge.toml")
        self.lp, self.js = io.StringIO(), io.StringIO()
        self.published: list[tuple[str, bytes]] = []
        self.now = 0.0
        self.tmp_path = tmp_path
        self.encodings = encodings or dict(ENCODINGS)
        self.reopen()

    def reopen(self) -> None:
        async def publish(topic: str, payload: bytes) -> None:
            self.published.append((topic, payload))

        self.state = DedupeState.open(self.tmp_path / "state.sqlite")
        self.bridge = Bridge(file=self.file, state=self.state, encodings=self.encodings,
                             line_sink=LineSink("-", self.lp), json_sink=LineSink("-", self.js), publish=publish,
                             monotonic=lambda: self.now)

    def send(self, topic: str, payload: bytes) -> None:
        asyncio.run(self.bridge.handle(topic, payload))

    def lines(self) -> list[str]:
        return self.lp.getvalue().splitlines()

    def rows(self) -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in self.js.getvalue().splitlines()]


def payload(node: str, seq: int, start: float, n: int = 2, encoding: str = "compact") -> bytes:
    samples = [s for i in range(n) for s in (Sample("air", "temperature", 20 + i / 10, "°C", start + i),
                                              Sample("air", "humidity", 40 + i, "%", start + i))]
    return encode_batch(node, seq, samples, encoding=encoding)


def test_topic_filters() -> None:
    assert topic_filters("sensord") == ["sensord/+/data", "sensord/+/status", "sensord/+/meta"]
    assert topic_filters("p", ("a",), "g") == ["$share/g/p/a/data", "$share/g/p/a/status", "$share/g/p/a/meta"]


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_builtin_encoding_becomes_lines_rows_and_topics(tmp_path: Path, encoding: str) -> None:
    kit = Kit(tmp_path)
    kit.send("sensord/barn/data", payload("barn", 7, T0, encoding=encoding))
    assert kit.lines() == ["sensord,node=barn,sensor=air temperature=20.0,humidity=40i 1700000000000000000",
                           "sensord,node=barn,sensor=air temperature=20.1,humidity=41i 1700000001000000000"]
    assert [(r["quantity"], r["value"], r["seq"]) for r in kit.rows()] == [
        ("temperature", 20.0, 7), ("humidity", 40, 7), ("temperature", 20.1, 7), ("humidity", 41, 7)]
    assert kit.published == [("plain/barn/air/temperature", b"20.1"), ("plain/barn/air/humidity", b"41")]


def test_a_plugin_encoding_is_decoded(tmp_path: Path) -> None:
    class Lines:
        name, content_type = "lines", "text/x-test"

        def matches(self, payload: bytes) -> bool:
            return payload.startswith(b"L1 ")

        def encode(self, batch: BatchData) -> bytes:
            raise NotImplementedError

        def decode(self, payload: bytes) -> Batch:
            _, node, seq, value = payload.decode().split()
            return Batch(node, int(seq), [Sample("s", "q", float(value), "", T0)])

    kit = Kit(tmp_path, encodings={**ENCODINGS, "lines": Lines()})
    kit.send("sensord/n1/data", b"L1 n1 3 2.5")
    assert kit.lines() == ["sensord,node=n1,sensor=s q=2.5 1700000000000000000"]


def test_repeated_and_replayed_batches_are_written_once(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    for seq in (1, 2, 2, 1, 3, 2):
        kit.send("sensord/barn/data", payload("barn", seq, T0 + 10 * seq))
    assert len(kit.rows()) == 3 * 4
    assert kit.bridge.stats.repeats == 3 and kit.bridge.stats.readings == 12
    kit.reopen()  # a restart: the state comes back from the file
    kit.send("sensord/barn/data", payload("barn", 3, T0 + 30))
    kit.send("sensord/barn/data", payload("barn", 4, T0 + 40))
    assert [r["seq"] for r in kit.rows()][-5:] == [3, 4, 4, 4, 4]
    assert len(kit.rows()) == 16


def test_a_node_reset_is_recognised_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kit = Kit(tmp_path)
    kit.send("sensord/barn/data", payload("barn", 1_700_000_100, T0))
    kit.send("sensord/barn/data", payload("barn", 1, T0 + 60))
    kit.send("sensord/barn/data", payload("barn", 2, T0 + 70))
    assert [r["seq"] for r in kit.rows()] == [1_700_000_100] * 4 + [1] * 4 + [2] * 4
    assert kit.bridge.stats.resets == 1
    assert "sequence went back from 1700000100 to 1 with newer readings: its buffer was reset" in caplog.text


def test_status_and_meta_pass_through(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.send("sensord/barn/status", b"offline")
    kit.send("sensord/barn/meta", b'{"sensors": []}')
    assert kit.lines()[0].startswith('sensord_status,node=barn state="offline" ')
    assert kit.rows() == [{"node": "barn", "status": "offline"}, {"node": "barn", "meta": {"sensors": []}}]
    assert kit.published == [("plain/barn/status", b"offline"), ("plain/barn/meta", b'{"sensors": []}')]


def test_bad_input_is_counted_and_logged_once_per_node_and_kind_per_interval(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kit = Kit(tmp_path)
    for _ in range(5):
        kit.send("sensord/barn/data", b"hello")
    kit.send("sensord/shed/data", b"hello")
    kit.send("sensord/barn/data", b"\xd9\xd5\xb1garbage")
    kit.send("sensord/barn/data", payload("barn", 9, T0))  # good input still goes through
    lines = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert lines == [
        "node 'barn': not a batch (1 since the last such line, 1 in all): not a sensord batch: unknown header "
        "0x68656c6c (known encodings: compact, json, senml+json, senml+cbor)",
        "node 'shed': not a batch (1 since the last such line, 1 in all): not a sensord batch: unknown header "
        "0x68656c6c (known encodings: compact, json, senml+json, senml+cbor)",
        lines[2]]
    assert lines[2].startswith("node 'barn': bad compact batch (1 since the last such line, 1 in all): ")
    kit.now = 61.0
    kit.send("sensord/barn/data", b"hello")
    assert caplog.records[-1].message.startswith("node 'barn': not a batch (5 since the last such line, 6 in all)")
    assert kit.bridge.bad.counts[("barn", "not a batch")] == 6
    assert len(kit.rows()) == 4


def test_odd_node_ids(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.send('sensord/a b,c="d"/data', payload('a b,c="d"', 1, T0))
    assert kit.lines()[0].startswith(r'sensord,node=a\ b\,c\="d",sensor=air ')
    kit.send("sensord/line\nbreak/data", payload("line\nbreak", 1, T0))
    kit.send("sensord/spoof/data", payload("barn", 1, T0))
    assert set(kit.bridge.stats.bad) == {"odd characters in names", "node id differs from the topic's"}
    assert len(kit.rows()) == 4


def test_a_32_mib_payload_is_refused_before_decoding(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    big = b"{" + b" " * MAX_PAYLOAD_BYTES
    kit.send("sensord/barn/data", big)
    assert kit.bridge.stats.bad == {"payload too large": 1}
    kit.send("sensord/barn/data", payload("barn", 1, T0))
    assert len(kit.rows()) == 4


def test_bad_input_counters_stay_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = Kit(tmp_path)
    monkeypatch.setattr(kit.bridge.bad, "MAX_KEYS", 3)
    for i in range(10):
        kit.send(f"sensord/n{i}/data", b"junk")
    assert len(kit.bridge.bad.counts) == 4 and kit.bridge.bad.counts[("*", "not a batch")] == 7
