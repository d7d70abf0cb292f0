"""The `compact` batch encoding: sensord's own columnar CBOR format, the default on the wire.

Byte-by-byte specification: docs/wire-format.md. In short, a CBOR tag 54705 (bytes d9 d5 b1)
around `[version, node, seq, t0, strings, times, channels]`: one column per channel, its times as
delta-of-delta milliseconds and its values as integer deltas (at the channel's resolution, or at
the decimals the values actually have), both packed as zigzag varints with run-length tokens.
Pure, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import DecodeError
from ..sensor import Value
from . import cbor
from .base import MAX_READINGS, Batch, BatchData, Series, budget, check_header, group_series, ordered

TAG = 0xD5B1  # 54705, unregistered (first-come-first-served range); the first three bytes: d9 d5 b1
MAGIC = b"\xd9\xd5\xb1"
VERSION = 1
#: Version 1 with an 8th field, a map of batch properties (`{"unsynced": true}`): written only for
#: a batch that has one, so that a decoder that knows only version 1 refuses it rather than
#: taking its times for true ones.
VERSION_PROPS = 2
CONTENT_TYPE = "application/vnd.sensord.compact+cbor; v=1"

KIND_INT, KIND_SCALED, KIND_BOOL, KIND_FLOAT, KIND_MIXED = range(5)
_KIND_NAMES = ("int", "scaled", "bool", "float", "mixed")

_MAX_VARINT_BYTES = 10
_MAX_STREAM_VALUE = 1 << 62  # |value| the encoder packs; 10-byte varints hold up to 2**68
_MAX_K = 1 << 53  # |k| of a scaled value, so k * step stays exact in a double's mantissa
_MAX_STEP_MANTISSA = 10**9
_MIN_EXP, _MAX_EXP = -15, 15
_POW10 = [10**i for i in range(_MAX_EXP + 1)]


# -- packed integer streams ----------------------------------------------------------------------

def pack(values: Sequence[int]) -> bytes:
    """Integers as tokens, each an unsigned LEB128 varint. An even token 2z is one value, z its
    zigzag code (0, -1, 1, -2 ... as 0, 1, 2, 3 ...); an odd token 2r+1 repeats the previous value
    (0 at the start) r+2 times."""
    out = bytearray()
    prev, i, n = 0, 0, len(values)
    while i < n:
        v = values[i]
        if v == prev and i + 1 < n and values[i + 1] == prev:
            j = i + 2
            while j < n and values[j] == prev:
                j += 1
            token = ((j - i - 2) << 1) | 1
            i = j
        else:
            token = (v << 2) if v >= 0 else (((-v << 1) - 1) << 1)
            prev = v
            i += 1
        while token >= 0x80:
            out.append((token & 0x7F) | 0x80)
            token >>= 7
        out.append(token)
    return bytes(out)


def unpack(data: bytes, limit: int, where: str) -> list[int]:
    """The integers in a packed stream; DecodeError past `limit` values or on a malformed token."""
    out: list[int] = []
    prev, i, n = 0, 0, len(data)
    while i < n:
        token = data[i]
        i += 1
        if token >= 0x80:
            token &= 0x7F
            shift = 7
            while True:
                if i >= n:
                    raise DecodeError(f"{where}: truncated varint at byte {i} of {n}")
                b = data[i]
                i += 1
                token |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift >= 7 * _MAX_VARINT_BYTES:
                    raise DecodeError(f"{where}: varint longer than {_MAX_VARINT_BYTES} bytes at byte {i}")
        if token & 1:
            run = (token >> 1) + 2
            if len(out) + run > limit:
                raise DecodeError(f"{where}: {len(out) + run} values, expected at most {limit}")
            out.extend([prev] * run)
        else:
            if len(out) >= limit:
                raise DecodeError(f"{where}: more than {limit} values")
            z = token >> 1
            prev = (z >> 1) ^ -(z & 1)
            out.append(prev)
    return out


def _deltas(values: Sequence[int]) -> list[int]:
    return [values[0]] + [b - a for a, b in zip(values, values[1:], strict=False)] if values else []


def _sums(deltas: list[int]) -> list[int]:
    total, out = 0, []
    for d in deltas:
        total += d
        out.append(total)
    return out


def _time_stream(offsets: Sequence[int]) -> list[int]:
    """[first, first delta, then deltas of deltas]: 0 for every reading on a regular interval."""
    deltas = _deltas(offsets)
    return deltas[:2] + _deltas(deltas[1:])[1:] if len(deltas) > 2 else deltas


def _offsets(stream: list[int]) -> list[int]:
    if len(stream) <= 2:
        return _sums(stream)
    return _sums(stream[:1] + _sums(stream[1:]))


# -- values --------------------------------------------------------------------------------------

def step_of(resolution: float | None) -> tuple[int, int] | None:
    """A resolution as (m, e) with resolution = m * 10**e, or None when it cannot be one."""
    if (not isinstance(resolution, int | float) or isinstance(resolution, bool)
            or not math.isfinite(resolution) or resolution <= 0):
        return None
    m, e = _decimal(float(resolution))
    if m > _MAX_STEP_MANTISSA or not _MIN_EXP <= e <= _MAX_EXP:
        return None
    return m, e


def _decimal(x: float) -> tuple[int, int]:
    """(m, e) with x = m * 10**e exactly as repr(x) reads, m without trailing zeros (x > 0, finite)."""
    text = repr(x)
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("-").lstrip("0") or "0"
    e = (int(exp) if exp else 0) - len(frac)
    stripped = digits.rstrip("0")
    e += len(digits) - len(stripped)
    return int(stripped or "0"), e


def scaled_value(k: int, m: int, e: int) -> float:
    """The double nearest to k * m * 10**e (int / int true division rounds correctly)."""
    return (k * m) / _POW10[-e] if e < 0 else float(k * m * _POW10[e])


def _scale(values: Sequence[Value], m: int, e: int, tolerant: bool) -> list[int] | None:
    """The k of every value at step m * 10**e, or None if one is off the grid (beyond float noise
    when `tolerant`: 21.369999999999997 at 0.01 becomes 2137 and decodes as 21.37)."""
    ks = []
    step = m * 10.0**e
    limit = _MAX_K * step
    for v in values:
        if type(v) is not float or not abs(v) < limit:  # also rejects NaN and infinities
            return None
        k = round(v * _POW10[-e] / m) if e < 0 else round(v / (m * _POW10[e]))
        if abs(k) >= _MAX_K:
            return None
        q = scaled_value(k, m, e)
        if q != v:
            # Past 2**53 / 10**-e, v * 10**-e itself is rounded and k can be one off the k that
            # gives v back exactly (360287970189641.0 at 0.05): prefer an exact neighbour to noise.
            for k_exact in (k - 1, k + 1):
                if abs(k_exact) < _MAX_K and scaled_value(k_exact, m, e) == v:
                    k, q = k_exact, v
                    break
        if q != v and not (tolerant and abs(q - v) <= max(step * 1e-6, 4 * math.ulp(v))):
            return None
        ks.append(k)
    return ks


def _auto_step(values: Sequence[Value]) -> tuple[int, int] | None:
    """The coarsest power of ten every float is an exact multiple of, as written (21.37 -> (1, -2))."""
    e = 0
    for v in values:
        if type(v) is not float or not math.isfinite(v) or (v == 0 and math.copysign(1.0, v) < 0):
            return None
        if v != 0:
            e = min(e, _decimal(abs(v))[1])
    return (1, e) if e >= _MIN_EXP else None


def _column(series: Series) -> list[Any]:
    """[kind, data...] for one channel's values: the smallest exact representation."""
    values = series.values
    if all(type(v) is bool for v in values):
        return [KIND_BOOL, pack(_deltas([int(v) for v in values]))]
    if all(type(v) is int for v in values):
        deltas = _deltas([int(v) for v in values])
        if all(abs(d) <= _MAX_STREAM_VALUE for d in deltas):
            return [KIND_INT, pack(deltas)]
        return [KIND_MIXED, list(values)]
    declared = step_of(series.resolution)
    if declared is not None:
        ks = _scale(values, *declared, tolerant=True)
        if ks is not None:
            return [KIND_SCALED, declared[0], declared[1], pack(_deltas(ks))]
    auto = _auto_step(values)  # only now: it reads every value's repr
    if auto is not None:
        ks = _scale(values, *auto, tolerant=False)
        if ks is not None:
            return [KIND_SCALED, auto[0], auto[1], pack(_deltas(ks))]
    if all(type(v) is float for v in values):
        return [KIND_FLOAT, list(values)]
    return [KIND_MIXED, list(values)]


# -- the encoding --------------------------------------------------------------------------------

class CompactEncoding:
    """sensord's columnar CBOR batch format (docs/wire-format.md)."""

    name = "compact"
    content_type = CONTENT_TYPE

    def matches(self, payload: bytes) -> bool:
        return payload[:3] == MAGIC

    def encode(self, batch: BatchData) -> bytes:
        check_header(batch.node, batch.seq)
        series = group_series(batch)
        t0 = min((min(s.ms) for s in series), default=0) // 1000
        strings: dict[str, int] = {}
        times: dict[bytes, int] = {}
        channels = []
        for s in series:
            names = [strings.setdefault(text, len(strings)) for text in (s.sensor, s.quantity, s.unit)]
            packed = pack(_time_stream([ms - t0 * 1000 for ms in s.ms]))
            channels.append([*names, times.setdefault(packed, len(times)), *_column(s)])
        body: list[Any] = [VERSION, batch.node, batch.seq, t0, list(strings), list(times), channels]
        if batch.unsynced:
            body[0] = VERSION_PROPS
            body.append({"unsynced": True})
        return cbor.dumps(cbor.Tag(TAG, body))

    def decode(self, payload: bytes) -> Batch:
        reader = cbor.Reader(payload, max_depth=5)
        major, tag, _ = reader.head()
        if major != 6 or tag != TAG:
            raise DecodeError(f"not a compact batch: header 0x{payload[:3].hex()}, expected 0x{MAGIC.hex()}")
        major, length, at = reader.head()
        if major != 4:
            raise DecodeError(f"compact batch: expected an array at offset {at}")
        version = reader.item() if length else None
        if version not in (VERSION, VERSION_PROPS):
            raise DecodeError(f"unsupported compact batch version {version!r} (this sensord reads versions "
                              f"{VERSION} and {VERSION_PROPS})")
        fields = 7 if version == VERSION else 8
        if length != fields:
            raise DecodeError(f"compact batch version {version}: expected {fields} fields, found {length}")
        node, seq, t0, strings, times, channels = (reader.item() for _ in range(6))
        props = reader.item() if version == VERSION_PROPS else {}
        if reader.pos != len(payload):
            raise DecodeError(f"trailing bytes: {len(payload) - reader.pos} bytes after the end of the batch "
                              f"at offset {reader.pos}")
        if not isinstance(props, dict):
            raise _fail(f"properties are {type(props).__name__}, expected a map")
        unsynced = props.get("unsynced", False)
        if not isinstance(unsynced, bool):
            raise _fail(f"property unsynced is {type(unsynced).__name__}, expected a boolean")
        return Batch(_text(node, "node"), _int(seq, "seq"), ordered(_columns(_int(t0, "t0"), strings, times, channels)),
                     unsynced)


def _fail(message: str) -> DecodeError:
    return DecodeError(f"compact batch: {message}")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{what} is {type(value).__name__}, expected a text string")
    return value


def _int(value: object, what: str, low: int | None = None, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{what} is {type(value).__name__}, expected an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(f"{what} is {value}, expected {low}..{high}")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{what} is {type(value).__name__}, expected an array")
    return value


def _columns(t0: int, strings: object, times: object, channels: object
             ) -> list[tuple[str, str, str, list[int], list[Value]]]:
    if abs(t0) > 1 << 53:
        raise _fail(f"t0 {t0} is out of range")
    names = [_text(s, f"strings[{i}]") for i, s in enumerate(_list(strings, "strings"))]
    columns: list[list[int]] = []
    used = 0
    for i, packed in enumerate(_list(times, "times")):
        if not isinstance(packed, bytes):
            raise _fail(f"times[{i}] is {type(packed).__name__}, expected bytes")
        stream = unpack(packed, MAX_READINGS - used, f"compact batch: times[{i}]")
        used = budget(len(stream), used, "compact batch")
        columns.append([t0 * 1000 + o for o in _offsets(stream)])
    out = []
    used = 0
    for i, channel in enumerate(_list(channels, "channels")):
        fields = _list(channel, f"channels[{i}]")
        if len(fields) < 6:
            raise _fail(f"channels[{i}]: expected at least 6 fields, found {len(fields)}")
        sensor, quantity, unit = (names[_int(fields[j], f"channels[{i}][{j}]", 0, len(names) - 1)]
                                  for j in range(3))
        ms = columns[_int(fields[3], f"channels[{i}][3]", 0, len(columns) - 1)]
        used = budget(len(ms), used, "compact batch")
        out.append((sensor, quantity, unit, ms, _values(fields[4:], len(ms), f"channel {sensor}/{quantity}")))
    return out


def _values(fields: list[Any], count: int, where: str) -> list[Value]:
    kind = _int(fields[0], f"{where}: kind", 0, len(_KIND_NAMES) - 1)
    expect = 4 if kind == KIND_SCALED else 2
    if len(fields) != expect:
        raise _fail(f"{where}: kind {_KIND_NAMES[kind]} has {expect} fields, found {len(fields)}")
    data = fields[-1]
    values: list[Value]
    if kind in (KIND_FLOAT, KIND_MIXED):
        values = _list(data, f"{where}: values")
        allowed = (float,) if kind == KIND_FLOAT else (float, int, bool)
        for v in values:
            if type(v) not in allowed:
                raise _fail(f"{where}: {_KIND_NAMES[kind]} column holds {type(v).__name__} {v!r}")
    else:
        if not isinstance(data, bytes):
            raise _fail(f"{where}: values are {type(data).__name__}, expected bytes")
        ints = _sums(unpack(data, count, f"compact batch: {where}"))
        if kind == KIND_INT:
            values = list(ints)
        elif kind == KIND_BOOL:
            for v in ints:
                if v not in (0, 1):
                    raise _fail(f"{where}: boolean column holds {v}")
            values = [v == 1 for v in ints]
        else:
            m = _int(fields[1], f"{where}: step", 1, _MAX_STEP_MANTISSA)
            e = _int(fields[2], f"{where}: exponent", _MIN_EXP, _MAX_EXP)
            for k in ints:
                if abs(k) >= _MAX_K:
                    raise _fail(f"{where}: scaled value {k} is beyond 2**53")
            values = [scaled_value(k, m, e) for k in ints]
    if len(values) != count:
        raise _fail(f"{where}: {len(values)} values for {count} times")
    return values
