"""sensord/bridge/outputs.py: line protocol (with its escaping), JSON lines, per-channel topics."""

from __future__ import annotations

import json
from pathlib import Path

from sensord.bridge.outputs import (
    LineSink,
    channel_topic,
    escape_key,
    escape_measurement,
    latest_per_channel,
    line_protocol,
    quote_string,
    reading_rows,
    status_line,
)
from sensord.sensor import Sample

T0 = 1_700_000_000.0


def test_one_line_per_sensor_read_with_a_field_per_quantity() -> None:
    samples = [Sample("air", "temperature", 21.37, "°C", T0), Sample("air", "humidity", 45, "%", T0),
               Sample("door", "open", True, "", T0 + 0.25), Sample("air", "temperature", 21.38, "°C", T0 + 10)]
    lines, skipped = line_protocol("sensord", "barn", samples)
    assert skipped == 0
    assert lines == [
        "sensord,node=barn,sensor=air temperature=21.37,humidity=45i 1700000000000000000",
        "sensord,node=barn,sensor=door open=true 1700000000250000000",
        "sensord,node=barn,sensor=air temperature=21.38 1700000010000000000",
    ]


def test_escaping_follows_the_line_protocol_spec() -> None:
    assert escape_measurement("my meas,x=1") == r"my\ meas\,x=1"
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    assert quote_string('say "hi" \\o/') == r'"say \"hi\" \\o/"'
    lines, _ = line_protocol("m", "node 1,x=y", [Sample("s=1", "q q", 1.5, "", T0)], unsynced=True)
    assert lines == [r"m,node=node\ 1\,x\=y,sensor=s\=1,unsynced=true q\ q=1.5 1700000000000000000"]


def test_non_finite_values_are_left_out_and_counted() -> None:
    samples = [Sample("a", "x", float("nan"), "", T0), Sample("a", "y", float("inf"), "", T0),
               Sample("a", "z", 2.0, "", T0)]
    lines, skipped = line_protocol("m", "n", samples)
    assert lines == ["m,node=n,sensor=a z=2.0 1700000000000000000"] and skipped == 2


def test_timestamps_come_from_the_milliseconds_without_float_error() -> None:
    lines, _ = line_protocol("m", "n", [Sample("a", "x", 1, "", 1_700_000_000.123)])
    assert lines[0].endswith(" 1700000000123000000")


def test_status_line() -> None:
    assert status_line("sensord", "barn", "offline", 5) == 'sensord_status,node=barn state="offline" 5'


def test_json_rows_have_the_keys_of_listen() -> None:
    rows = list(reading_rows("barn", 7, [Sample("air", "t", 1.0, "°C", T0)], unsynced=True))
    assert rows == [{"node": "barn", "sensor": "air", "quantity": "t", "value": 1.0, "unit": "°C", "ts": T0,
                     "seq": 7, "unsynced": True}]


def test_channel_topics() -> None:
    assert channel_topic("plain", "barn", "air", "pm/2.5") == "plain/barn/air/pm/2.5"
    assert channel_topic("plain", "barn", "a+b", "x") is None
    assert channel_topic("plain", "barn", "a/b", "x") is None


def test_latest_per_channel() -> None:
    a, b, c = Sample("s", "q", 1, "", T0), Sample("s", "q", 2, "", T0 + 1), Sample("s", "r", 3, "", T0)
    assert latest_per_channel([a, b, c]) == {("s", "q"): b, ("s", "r"): c}


def test_file_sink_appends(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.lp"
    for text in ("one", "two"):
        sink = LineSink(str(target))
        sink.write([text, json.dumps({"x": 1})])
        sink.close()
    assert target.read_text().splitlines() == ["one", '{"x": 1}', "two", '{"x": 1}']


def test_a_string_field_stays_on_one_line() -> None:
    assert quote_string("a\nb\r") == r'"a\nb\r"'
    assert "\n" not in status_line("m", "n", "online\nsensord,node=x y=1 1", 1)
