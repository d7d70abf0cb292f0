"""The `json` batch encoding (version 1): what sensord sent before `compact`. Pure, no I/O.

Kept so batches that older versions left in the offline buffer still decode after an upgrade,
and for consumers that want plain JSON. Compact JSON, one series per (sensor, quantity, unit)::

    {"v": 1, "node": "barn", "seq": 7, "t0": 1700000000.0,
     "series": [{"s": "air", "q": "temperature", "u": "°C", "t": [0, 10000], "v": [21.5, 21.6]}]}

`t` holds milliseconds since `t0` (the first sample's time, in Unix seconds, ms precision).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import DecodeError, EncodeError
from ..sensor import Sample
from .base import Batch, BatchData, budget, check_header, check_value, to_ms

CONTENT_TYPE = "application/vnd.sensord.batch+json; v=1"


class JsonEncoding:
    """sensord's JSON batch format, version 1."""

    name = "json"
    content_type = CONTENT_TYPE

    def matches(self, payload: bytes) -> bool:
        return payload.lstrip(b" \t\r\n")[:1] == b"{"

    def encode(self, batch: BatchData) -> bytes:
        check_header(batch.node, batch.seq)
        t0 = round(min((s.ts for s in batch.samples), default=0.0), 3)
        series: dict[tuple[str, str, str], dict[str, Any]] = {}
        for s in batch.samples:
            where = f"{s.sensor}/{s.quantity}"
            check_value(s.value, where)
            to_ms(s.ts, where)  # finite
            entry = series.setdefault((s.sensor, s.quantity, s.unit),
                                      {"s": s.sensor, "q": s.quantity, "u": s.unit, "t": [], "v": []})
            entry["t"].append(round((s.ts - t0) * 1000))
            entry["v"].append(s.value)
        doc: dict[str, Any] = {"v": 1, "node": batch.node, "seq": batch.seq, "t0": t0, "series": list(series.values())}
        if batch.unsynced:
            doc["unsynced"] = True
        try:
            return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        except ValueError as exc:  # a lone surrogate, an integer beyond 4300 digits
            raise EncodeError(f"json: {exc}") from None

    def decode(self, payload: bytes) -> Batch:
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise DecodeError(f"not a sensord batch: invalid JSON ({_first_line(exc)})") from None
        try:
            return _batch(doc)
        except DecodeError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise DecodeError(f"not a sensord batch: missing or malformed field "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None


def _batch(doc: Any) -> Batch:
    if doc.get("v") != 1:
        raise DecodeError(f"unsupported batch version {_short(doc.get('v'))}, expected 1")
    t0 = float(doc["t0"])
    if not math.isfinite(t0):
        raise DecodeError(f"t0 {t0!r} is not finite")
    samples = []
    used = 0
    for entry in doc["series"]:
        used = budget(len(entry["t"]), used, "json batch")
        if len(entry["t"]) != len(entry["v"]):
            raise DecodeError(f"series {_name(entry['s'])}/{_name(entry['q'])}: {len(entry['t'])} times, "
                              f"{len(entry['v'])} values")
        names = [entry[k] for k in ("s", "q", "u")]
        if not all(isinstance(n, str) for n in names):
            raise DecodeError(f"series {_short(names)}: sensor, quantity and unit must be strings")
        for dt, value in zip(entry["t"], entry["v"], strict=True):
            if not isinstance(value, int | float) or not isinstance(dt, int | float) or isinstance(dt, bool):
                raise DecodeError(f"series {names[0]}/{names[1]}: time {_short(dt)} and value {_short(value)} "
                                  "must be numbers (the value may be a boolean)")
            ts = round(t0 + dt / 1000, 3)
            if not math.isfinite(ts):
                raise DecodeError(f"series {names[0]}/{names[1]}: time {dt!r} is not finite")
            samples.append(Sample(names[0], names[1], value, names[2], ts))
    samples.sort(key=lambda s: s.ts)  # stable: keeps each series' order
    seq = doc["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise DecodeError(f"seq {_short(seq)} is not an integer")
    unsynced = doc.get("unsynced", False)
    if not isinstance(unsynced, bool):
        raise DecodeError(f"unsynced {_short(unsynced)} is not a boolean")
    return Batch(str(doc["node"]), seq, samples, unsynced)


def _name(value: object) -> str:
    return value if isinstance(value, str) and len(value) <= 40 else _short(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
