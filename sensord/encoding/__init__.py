"""Batch payloads: samples to bytes and back, in one of several encodings. Pure, no I/O.

Every batch is self-describing: it carries node, seq, channel names and units, and its first
bytes say which encoding it is in, so `decode()` needs nothing else, not even the sender's
configuration (which may have changed since the batch was sealed). Built-in encodings, in the
order `decode()` tries them (docs/wire-format.md has the byte layouts):

- `compact` (default): sensord's columnar CBOR, about 1.4 bytes per reading for a 10-channel
  random walk at 0.01 resolution. Starts with d9 d5 b1.
- `json`: sensord's JSON version 1, what older versions sent and may have left in the offline
  buffer. Starts with `{`.
- `senml+json`, `senml+cbor`: RFC 8428 SenML packs for off-the-shelf consumers. Start with `[`
  and with a CBOR array head (0x80..0x9f).

Plugins add encodings through the `sensord_register_encodings` hook (see `sensord.hookspecs`;
`sensord.plugins.collect_encodings` gathers them). The staging format (`sensord.staging`) is
separate: it holds the open batch on disk and is never sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from ..errors import DecodeError, EncodeError
from ..sensor import Sample
from .base import MAX_PAYLOAD_BYTES, MAX_READINGS, Batch, BatchData, ChannelInfo, ChannelKey, Encoding, channel_info
from .compact import CompactEncoding
from .json_v1 import JsonEncoding
from .senml import SenmlCborEncoding, SenmlJsonEncoding
from .senml import name_problem as senml_name_problem

__all__ = [
    "CONTENT_TYPE", "DEFAULT_ENCODING", "ENCODINGS", "MAX_PAYLOAD_BYTES", "MAX_READINGS",
    "Batch", "BatchData", "ChannelInfo", "ChannelKey", "DecodeError", "EncodeError", "Encoding",
    "channel_info", "decode", "detect", "encode_batch", "get_encoding",
    "senml_name_problem",
]

DEFAULT_ENCODING = "compact"
#: The built-in encodings by name, in the order `decode()` tries them.
ENCODINGS: Mapping[str, Encoding] = MappingProxyType({
    e.name: e for e in (CompactEncoding(), JsonEncoding(), SenmlJsonEncoding(), SenmlCborEncoding())})
#: Content type of the default encoding. Per batch, prefer `detect(payload).content_type`.
CONTENT_TYPE = ENCODINGS[DEFAULT_ENCODING].content_type
_BUILTIN = frozenset(id(e) for e in ENCODINGS.values())


def get_encoding(name: str, encodings: Mapping[str, Encoding] = ENCODINGS) -> Encoding:
    """The encoding called `name`; ValueError listing the known ones if there is none."""
    try:
        return encodings[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(encodings)}") from None


def detect(payload: bytes, encodings: Mapping[str, Encoding] = ENCODINGS) -> Encoding:
    """The encoding `payload` is in, from its first bytes; DecodeError if none claims it."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise DecodeError(f"not a sensord batch: payload is {type(payload).__name__}, expected bytes")
    if not payload:
        raise DecodeError("not a sensord batch: empty payload")
    for encoding in encodings.values():
        if encoding.matches(bytes(payload[:16])):
            return encoding
    raise DecodeError(f"not a sensord batch: unknown header 0x{bytes(payload[:4]).hex()} "
                      f"(known encodings: {', '.join(encodings)})")


def decode(payload: bytes, encodings: Mapping[str, Encoding] = ENCODINGS) -> Batch:
    """The batch in `payload`, in whichever encoding it is; DecodeError (one line) if it is not one.

    Built-in decoders raise nothing else (tests/test_decode_fuzz.py); a plugin decoder's other
    exceptions are turned into DecodeError naming the encoding.
    """
    encoding = detect(payload, encodings)
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"{encoding.name} payload of {len(payload)} bytes is larger than {MAX_PAYLOAD_BYTES}")
    if id(encoding) in _BUILTIN:
        return encoding.decode(payload)
    try:
        batch = encoding.decode(payload)
    except DecodeError:
        raise
    except Exception as exc:  # a plugin's decoder: keep decode()'s one-exception promise
        raise DecodeError(f"encoding {encoding.name!r}: decoder raised {type(exc).__name__}: {exc}") from None
    if not isinstance(batch, Batch):
        raise DecodeError(f"encoding {encoding.name!r}: decoder returned {type(batch).__name__}, expected Batch")
    return batch


def encode_batch(node: str, seq: int, samples: Sequence[Sample], *, encoding: str | Encoding = DEFAULT_ENCODING,
                 channels: Mapping[ChannelKey, ChannelInfo] | None = None,
                 encodings: Mapping[str, Encoding] = ENCODINGS, unsynced: bool = False) -> bytes:
    """`samples` as one batch payload. `channels` gives each (sensor, quantity) its resolution
    (see `channel_info`); without it, compact still finds the decimals values are written with.
    `unsynced`: the times come from a clock not synchronised yet, and the payload says so."""
    codec = get_encoding(encoding, encodings) if isinstance(encoding, str) else encoding
    return codec.encode(BatchData(node, seq, samples, channels or {}, unsynced))
