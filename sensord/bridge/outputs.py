"""What the bridge writes: InfluxDB line protocol, JSON lines and plain per-channel topics.

Pure formatting here; the runner decides what to write and where. Line protocol follows
InfluxDB's spec: measurement names escape commas and spaces; tag keys, tag values and field keys
escape commas, equals signs and spaces; string field values are quoted with `"` and `\\` escaped.
Integers carry the `i` suffix, booleans are `true`/`false`. Line protocol has no NaN or infinity:
such a field is left out of its line (and counted by the caller). Timestamps are nanoseconds,
from the reading's own millisecond time.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..sensor import Sample, Value


def escape_measurement(name: str) -> str:
    return name.replace(",", r"\,").replace(" ", r"\ ")


def escape_key(text: str) -> str:
    """A tag key, tag value or field key."""
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def quote_string(text: str) -> str:
    """A string field value. Line breaks become the two characters `\\n` (`\\r`): a line of line
    protocol must stay one line."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped + '"'


def field_value(value: Value) -> str | None:
    """A field value in line protocol, None for NaN and infinities (line protocol has none)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if not math.isfinite(value):
        return None
    return repr(float(value))


def line_protocol(measurement: str, node: str, samples: Iterable[Sample], *,
                  unsynced: bool = False) -> tuple[list[str], int]:
    """One line per sensor read (node, sensor and time), a field per quantity; and the number of
    values left out (non-finite). Lines come in the order of their first reading."""
    lines: dict[tuple[str, int], list[str]] = {}
    skipped = 0
    for s in samples:
        text = field_value(s.value)
        if text is None:
            skipped += 1
            continue
        lines.setdefault((s.sensor, round(s.ts * 1000)), []).append(f"{escape_key(s.quantity)}={text}")
    head = f"{escape_measurement(measurement)},node={escape_key(node)}"
    extra = ",unsynced=true" if unsynced else ""
    return [f"{head},sensor={escape_key(sensor)}{extra} {','.join(fields)} {ms * 1_000_000}"
            for (sensor, ms), fields in lines.items()], skipped


def status_line(measurement: str, node: str, status: str, now_ns: int) -> str:
    """A node's status (`online`, `offline`) as a line of `{measurement}_status`, at the bridge's time."""
    head = f"{escape_measurement(measurement + '_status')},node={escape_key(node)}"
    return f"{head} state={quote_string(status)} {now_ns}"


def reading_rows(node: str, seq: int, samples: Iterable[Sample], *, unsynced: bool = False) -> Iterator[dict[str, Any]]:
    """One object per reading, with the keys `sensord listen` prints."""
    extra = {"unsynced": True} if unsynced else {}
    for s in samples:
        yield {"node": node, "sensor": s.sensor, "quantity": s.quantity, "value": s.value, "unit": s.unit,
               "ts": s.ts, "seq": seq, **extra}


def json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def channel_topic(out_prefix: str, node: str, sensor: str, quantity: str) -> str | None:
    """`{out_prefix}/{node}/{sensor}/{quantity}`, None when a name cannot be part of a topic."""
    for part in (node, sensor, quantity):
        if not part or set(part) & {"+", "#", "\0"}:
            return None
    if "/" in node or "/" in sensor:
        return None
    return f"{out_prefix}/{node}/{sensor}/{quantity}"


def latest_per_channel(samples: Iterable[Sample]) -> dict[tuple[str, str], Sample]:
    """The newest reading of each channel (the last one on a tie: batches are in time order)."""
    latest: dict[tuple[str, str], Sample] = {}
    for s in samples:
        old = latest.get((s.sensor, s.quantity))
        if old is None or s.ts >= old.ts:
            latest[(s.sensor, s.quantity)] = s
    return latest


class LineSink:
    """Lines to stdout (`"-"`) or appended to a file; flushed after each batch's lines."""

    def __init__(self, target: str, stream: IO[str] | None = None) -> None:
        self.target = target
        if target == "-":
            self._fh: IO[str] = stream or sys.stdout
            self._owned = False
        else:
            directory = os.path.dirname(target)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._fh = open(target, "a", encoding="utf-8")  # noqa: SIM115  (closed in close())
            self._owned = True

    def write(self, lines: Iterable[str]) -> None:
        text = "".join(line + "\n" for line in lines)
        if text:
            self._fh.write(text)
            self._fh.flush()

    def close(self) -> None:
        if self._owned:
            self._fh.close()
