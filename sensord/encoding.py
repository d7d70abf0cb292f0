"""Batch payloads: samples to bytes and back. Pure, no I/O.

The `json` encoding (version 1) is compact JSON, one series per (sensor, quantity)::

    {"v": 1, "node": "barn", "seq": 7, "t0": 1700000000.0,
     "series": [{"s": "air", "q": "temperature", "u": "°C", "t": [0, 10000], "v": [21.5, 21.6]}]}

`t` holds milliseconds since `t0` (the first sample's time, in Unix seconds, ms precision).
Every batch is self-describing: it carries node, seq, names and units.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SensordError
from .scheduler import Sample

CONTENT_TYPE = "application/vnd.sensord.batch+json; v=1"
ENCODING = "json"


class DecodeError(SensordError, ValueError):
    """A payload is not a valid sensord batch."""


@dataclass(frozen=True)
class Batch:
    node: str
    seq: int
    samples: list[Sample]


def encode_batch(node: str, seq: int, samples: Sequence[Sample]) -> bytes:
    t0 = round(min((s.ts for s in samples), default=0.0), 3)
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for s in samples:
        entry = series.setdefault((s.sensor, s.quantity), {"s": s.sensor, "q": s.quantity, "u": s.unit,
                                                           "t": [], "v": []})
        entry["t"].append(round((s.ts - t0) * 1000))
        entry["v"].append(s.value)
    doc = {"v": 1, "node": node, "seq": seq, "t0": t0, "series": list(series.values())}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode_batch(payload: bytes) -> Batch:
    """The batch in `payload`; DecodeError with one clear line if it is not one."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not a sensord batch: invalid JSON ({exc})") from None
    try:
        if doc.get("v") != 1:
            raise DecodeError(f"unsupported batch version {doc.get('v')!r}, expected 1")
        t0 = float(doc["t0"])
        samples = []
        for entry in doc["series"]:
            if len(entry["t"]) != len(entry["v"]):
                raise DecodeError(f"series {entry['s']}/{entry['q']}: {len(entry['t'])} times, "
                                  f"{len(entry['v'])} values")
            for dt, value in zip(entry["t"], entry["v"], strict=True):
                samples.append(Sample(str(entry["s"]), str(entry["q"]), value, str(entry["u"]),
                                      round(t0 + dt / 1000, 3)))
        samples.sort(key=lambda s: s.ts)  # stable: keeps each series' order
        return Batch(str(doc["node"]), int(doc["seq"]), samples)
    except DecodeError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"not a sensord batch: missing or malformed field ({type(exc).__name__}: {exc})") from None


def encode_samples(samples: Sequence[Sample]) -> bytes:
    """Staging format for the open batch on disk: exact, simple, not sent anywhere."""
    return json.dumps([[s.sensor, s.quantity, s.value, s.unit, s.ts] for s in samples],
                      separators=(",", ":"), ensure_ascii=False).encode()


def decode_samples(data: bytes) -> list[Sample]:
    return [Sample(str(a), str(b), c, str(d), float(e)) for a, b, c, d, e in json.loads(data)]
