"""The subset of CBOR (RFC 8949) that sensord's binary encodings use: a deterministic encoder and a
bounded decoder. Pure, no I/O.

Why not the cbor2 library: Debian bookworm ships cbor2 5.4.6, whose decoder can crash the process
on hostile input (heap use-after-free and MemoryError on huge declared lengths, found by fuzzing
in cbor2 issue #198, fixed in 5.6) and recurses without a limit on deep nesting (CVE-2026-26209,
fixed in 5.9). A batch arrives from the network, so decoding must stay bounded on every Debian
release sensord supports. Encoding ourselves also makes the bytes independent of the cbor2
version, so the golden vectors in tests/golden hold everywhere.

Encoder: preferred serialisation (RFC 8949 §4.1): shortest integer heads, the shortest float
(half, single, double) that keeps the value exactly, definite lengths only.
Decoder: definite lengths only (RFC 8428 §6 requires them for SenML strings), nesting at most
`max_depth`, every declared length checked against the bytes left before anything is allocated,
map keys int or text and unique, trailing bytes rejected. Every failure is a `DecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..errors import DecodeError, EncodeError

#: Largest bignum (tags 2 and 3) either side accepts, in bytes of magnitude.
MAX_BIGNUM_BYTES = 64

_F16, _F32, _F64 = struct.Struct(">e"), struct.Struct(">f"), struct.Struct(">d")


@dataclass(frozen=True, slots=True)
class Tag:
    """A CBOR tag (major type 6) other than the bignums, which decode to int."""

    tag: int
    value: Any


def _head(out: bytearray, major: int, arg: int) -> None:
    mt = major << 5
    if arg < 24:
        out.append(mt | arg)
    elif arg < 0x100:
        out += bytes((mt | 24, arg))
    elif arg < 0x10000:
        out.append(mt | 25)
        out += arg.to_bytes(2, "big")
    elif arg < 0x100000000:
        out.append(mt | 26)
        out += arg.to_bytes(4, "big")
    else:
        out.append(mt | 27)
        out += arg.to_bytes(8, "big")


def float_bytes(x: float) -> bytes:
    """The shortest CBOR float (major type 7) that decodes to exactly `x` (NaN: the half 0x7e00)."""
    if x != x:
        return b"\xf9\x7e\x00"
    try:
        half = _F16.pack(x)
        if _F16.unpack(half)[0] == x:
            return b"\xf9" + half
    except OverflowError:
        pass
    try:
        single = _F32.pack(x)
        if _F32.unpack(single)[0] == x:
            return b"\xfa" + single
    except OverflowError:
        pass
    return b"\xfb" + _F64.pack(x)


def encode_into(out: bytearray, obj: Any) -> None:
    """Append the CBOR encoding of `obj` (None, bool, int, float, str, bytes, list, tuple, dict, Tag)."""
    if obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif isinstance(obj, int):
        if 0 <= obj < 1 << 64:
            _head(out, 0, obj)
        elif -(1 << 64) <= obj < 0:
            _head(out, 1, -1 - obj)
        else:
            magnitude = obj if obj >= 0 else -1 - obj
            size = (magnitude.bit_length() + 7) // 8
            if size > MAX_BIGNUM_BYTES:
                raise EncodeError(f"integer of {magnitude.bit_length()} bits is too large "
                                  f"(at most {MAX_BIGNUM_BYTES * 8})")
            _head(out, 6, 2 if obj >= 0 else 3)
            _head(out, 2, size)
            out += magnitude.to_bytes(size, "big")
    elif isinstance(obj, float):
        out += float_bytes(obj)
    elif isinstance(obj, str):
        try:
            data = obj.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError(f"text {obj!r} is not valid Unicode (a lone surrogate)") from None
        _head(out, 3, len(data))
        out += data
    elif isinstance(obj, bytes | bytearray):
        _head(out, 2, len(obj))
        out += obj
    elif isinstance(obj, list | tuple):
        _head(out, 4, len(obj))
        for item in obj:
            encode_into(out, item)
    elif isinstance(obj, dict):
        _head(out, 5, len(obj))
        for key, value in obj.items():
            encode_into(out, key)
            encode_into(out, value)
    elif isinstance(obj, Tag):
        _head(out, 6, obj.tag)
        encode_into(out, obj.value)
    else:
        raise EncodeError(f"cannot encode {type(obj).__name__} {obj!r} as CBOR")


def dumps(obj: Any) -> bytes:
    """The deterministic CBOR encoding of `obj`."""
    out = bytearray()
    encode_into(out, obj)
    return bytes(out)


class Reader:
    """Decodes one CBOR item at a time from `data`, within limits. Every failure is a DecodeError."""

    __slots__ = ("data", "pos", "max_depth")

    def __init__(self, data: bytes, *, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def fail(self, message: str, at: int | None = None) -> DecodeError:
        return DecodeError(f"{message} at offset {self.pos if at is None else at}")

    def take(self, n: int, start: int) -> bytes:
        """The next `n` bytes, for the item that began at `start`."""
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(f"truncated payload: expected {n} bytes at offset {self.pos}, found "
                              f"{len(self.data) - self.pos} (item at offset {start})")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int, int]:
        """(major type, argument, offset of the item) of the next item; floats give their bits."""
        start = self.pos
        if start >= len(self.data):
            raise DecodeError(f"truncated payload: expected 1 more byte at offset {start}")
        initial = self.data[start]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, start
        if info <= 27:
            return major, int.from_bytes(self.take(1 << (info - 24), start), "big"), start
        if info == 31:
            raise self.fail(f"unsupported CBOR: indefinite-length or break byte 0x{initial:02x}", start)
        raise self.fail(f"malformed CBOR: reserved additional information {info} in byte 0x{initial:02x}", start)

    def item(self, depth: int = 0) -> Any:
        major, arg, start = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self.take(arg, start)
        if major == 3:
            raw = self.take(arg, start)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self.fail(f"malformed CBOR: text string is not UTF-8 ({exc.reason})", start) from None
        if major == 7:
            return self._simple(arg, start)
        if depth >= self.max_depth:
            raise self.fail(f"CBOR nested deeper than {self.max_depth} levels", start)
        if major == 4:
            self._room(arg, 1, start)
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            self._room(arg, 2, start)
            out: dict[Any, Any] = {}
            for _ in range(arg):
                at = self.pos
                key = self.item(depth + 1)
                if not isinstance(key, int | str) or isinstance(key, bool):
                    raise self.fail(f"unsupported CBOR map key of type {type(key).__name__}", at)
                if key in out:
                    raise self.fail(f"duplicate CBOR map key {key!r}", at)
                out[key] = self.item(depth + 1)
            return out
        # major == 6: a tag
        value = self.item(depth + 1)
        if arg in (2, 3):
            if not isinstance(value, bytes):
                raise self.fail(f"malformed CBOR: bignum tag {arg} holds {type(value).__name__}, expected bytes",
                                start)
            if len(value) > MAX_BIGNUM_BYTES:
                raise self.fail(f"bignum of {len(value)} bytes is too large (at most {MAX_BIGNUM_BYTES})", start)
            magnitude = int.from_bytes(value, "big")
            return magnitude if arg == 2 else -1 - magnitude
        return Tag(arg, value)

    def _room(self, count: int, min_size: int, start: int) -> None:
        # Each element takes at least one byte: a count larger than the bytes left is truncated
        # input, caught here before a huge count can drive a long loop.
        left = len(self.data) - self.pos
        if count * min_size > left:
            raise DecodeError(f"truncated payload: item at offset {start} declares {count} elements, "
                              f"only {left} bytes left")

    def _simple(self, arg: int, start: int) -> Any:
        info = self.data[start] & 0x1F
        if info == 25:
            return _F16.unpack(arg.to_bytes(2, "big"))[0]
        if info == 26:
            return _F32.unpack(arg.to_bytes(4, "big"))[0]
        if info == 27:
            return _F64.unpack(arg.to_bytes(8, "big"))[0]
        if info == 24:
            raise self.fail(f"unsupported CBOR simple value {arg}", start)
        if arg == 20:
            return False
        if arg == 21:
            return True
        if arg == 22:
            return None
        raise self.fail(f"unsupported CBOR simple value {arg}", start)


def loads(data: bytes, *, max_depth: int = 8) -> Any:
    """The single CBOR item that is all of `data`; DecodeError otherwise."""
    reader = Reader(data, max_depth=max_depth)
    value = reader.item()
    if reader.pos != len(data):
        raise DecodeError(f"trailing bytes: {len(data) - reader.pos} bytes after the end of the batch "
                          f"at offset {reader.pos}")
    return value
