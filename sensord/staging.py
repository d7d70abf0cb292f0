"""The staging format: the open batch on disk, between commits, in the buffer's `staged` table.

JSON rows `[sensor, quantity, value, unit, ts]`: exact, simple, never sent anywhere (the wire
encodings are in `sensord.encoding`). The daemon stages the samples of the open batch every
commit interval (`Buffer.stage`) and, after a crash, reads them back (`Buffer.staged`) and seals
them. `sample_problem` tells whether every encoding can carry a sample: `decode_samples` drops
the samples that fail it, and the daemon checks again before it seals. Pure, no I/O.

A chunk staged before the clock was synchronised starts with its time frame, an object
`{"clock": "unsynced", "boot": <boot id>, "offset": <s>}` (`TimeBase.frame()`): its times are
`monotonic + offset` of that boot, so a restart in the same boot can correct them
(`decode_chunk`); an older sensord skips the object as one malformed row.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import DecodeError
from .sensor import INT_MAX, INT_MIN, Sample, brief_repr

__all__ = ["decode_chunk", "decode_samples", "encode_samples", "sample_problem"]


def encode_samples(samples: Sequence[Sample], *, frame: Mapping[str, object] | None = None) -> bytes:
    """Staging format for the open batch on disk: exact, simple, not sent anywhere. `frame`: the
    time frame of provisional stamps (`TimeBase.frame()`), written first.

    Never raises: a value JSON cannot hold (which the scheduler lets through none of) is staged as
    its repr, a lone surrogate as its escape, and `decode_samples` drops such samples by name."""
    rows: list[object] = [dict(frame)] if frame else []
    rows += [[s.sensor, s.quantity, s.value, s.unit, s.ts] for s in samples]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False,
                      default=brief_repr).encode("utf-8", "backslashreplace")


def decode_samples(data: bytes, *, dropped: list[str] | None = None) -> list[Sample]:
    """The samples of a staging chunk (`encode_samples`), their times as staged. DecodeError (one
    line) if `data` is not a chunk. A sample that is malformed or fails `sample_problem` (a value
    no encoding carries, staged by an older sensord that did not check values) is a DecodeError
    too, unless `dropped` is given: then it is skipped and a short description appended there."""
    return decode_chunk(data, dropped=dropped)[1]


def decode_chunk(data: bytes, *, dropped: list[str] | None = None) -> tuple[dict[str, Any] | None, list[Sample]]:
    """The time frame of a staging chunk (None: its times are true ones) and its samples, as
    `decode_samples` gives them."""
    try:
        rows = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"staged chunk: invalid JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(rows, list):
        raise DecodeError(f"staged chunk: {type(rows).__name__}, expected a list of samples")
    frame = None
    if rows and isinstance(rows[0], dict) and rows[0].get("clock") == "unsynced":
        frame, rows = rows[0], rows[1:]
        offset = frame.get("offset")
        if not isinstance(offset, int | float) or isinstance(offset, bool) or not math.isfinite(offset):
            raise DecodeError(f"staged chunk: time frame {brief_repr(frame)} has no finite offset")
    samples = []
    for i, row in enumerate(rows):
        sample = None
        if isinstance(row, list) and len(row) == 5:
            sample = Sample(*row)
            problem = sample_problem(sample)
        else:
            problem = f"{brief_repr(row)} is not [sensor, quantity, value, unit, ts]"
        if problem is None and sample is not None:
            samples.append(sample if type(sample.ts) is float else dataclasses.replace(sample, ts=float(sample.ts)))
        elif dropped is None:
            raise DecodeError(f"staged chunk: sample {i}: {problem}")
        else:
            dropped.append(problem or "")
    return frame, samples


def sample_problem(sample: Sample) -> str | None:
    """Why no encoding can carry `sample`, or None when every built-in one can: sensor, quantity
    and unit are text, the value is exactly a bool, an int in the signed 64-bit range or a float
    (NaN and infinities included: the filters drop those), the time a finite number.

    The scheduler only lets such values through (`sensor.clean_value`); the daemon checks again
    before it seals, so that a value that got past (a plugin filter's output, an old staged chunk)
    costs that sample, not the daemon."""
    sensor, quantity, unit, value, ts = sample.sensor, sample.quantity, sample.unit, sample.value, sample.ts
    if (type(sensor) is str and type(quantity) is str and type(unit) is str and type(ts) is float
            and math.isfinite(ts) and (type(value) is float or type(value) is bool
                                       or (type(value) is int and INT_MIN <= value <= INT_MAX))):
        try:  # the usual case, checked in one go: it runs for every reading sealed
            (sensor + quantity + unit).encode("utf-8")  # a lone surrogate anywhere fails
        except UnicodeEncodeError:
            pass  # named below
        else:
            return None
    for what, text in (("sensor", sample.sensor), ("quantity", sample.quantity), ("unit", sample.unit)):
        if not isinstance(text, str):
            return f"{what} {brief_repr(text)} is {type(text).__name__}, expected a str"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"{what} {brief_repr(text)} is not valid text"
    where = f"{sample.sensor}/{sample.quantity}"
    value = sample.value
    if type(value) not in (bool, int, float):
        return f"{where}: value {brief_repr(value)} is {type(value).__name__}, expected int, float or bool"
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        return f"{where}: value {brief_repr(value)} is outside the signed 64-bit integer range"
    ts = sample.ts
    if type(ts) not in (int, float) or not math.isfinite(ts):
        return f"{where}: time {brief_repr(ts)} is not a finite number"
    return None
