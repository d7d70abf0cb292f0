"""The staging format (`sensord.staging`): the open batch on disk is exact, and a chunk that
cannot be read back names what is wrong with it."""

from __future__ import annotations

import math
import re

import pytest

from sensord.errors import DecodeError
from sensord.sensor import Sample
from sensord.staging import decode_samples, encode_samples


def test_staging_format_exact() -> None:
    samples = [Sample("a", "t", 21.37, "°C", 1_700_000_000.123456), Sample("a", "n", 3, "", 1.5)]
    assert decode_samples(encode_samples(samples)) == samples


@pytest.mark.parametrize(("chunk", "message"), [
    (b"\xff\x00", "staged chunk: invalid JSON"),
    (b'{"a": 1}', "staged chunk: dict, expected a list of samples"),
    (b'[["s", "q", 1]]', "staged chunk: sample 0: ['s', 'q', 1] is not [sensor, quantity, value, unit, ts]"),
    (b'[["s", "q", "21.5", "", 1.0]]', "staged chunk: sample 0: s/q: value '21.5' is str, expected int, float or bool"),
    (b'[["s", "q", null, "", 1.0]]', "staged chunk: sample 0: s/q: value None is NoneType"),
    (b'[["s", "q", 1, "", 1.0], ["s", "q", 1e999, "", 1.0]]', None),  # Python's JSON reads 1e999 as inf
    (b'[["s", "q", 18446744073709551616, "", 1.0]]', "outside the signed 64-bit integer range"),
    (b'[["s", 5, 1, "", 1.0]]', "staged chunk: sample 0: quantity 5 is int, expected a str"),
    (b'[["s", "q", 1, "", "now"]]', "staged chunk: sample 0: s/q: time 'now' is not a finite number"),
    (b'[["s", "q", 1, "", NaN]]', "staged chunk: sample 0: s/q: time nan is not a finite number"),
])
def test_decode_samples_names_what_it_cannot_take(chunk: bytes, message: str | None) -> None:
    if message is None:
        assert [s.value for s in decode_samples(chunk)] == [1, math.inf]
        return
    with pytest.raises(DecodeError, match=re.escape(message)):
        decode_samples(chunk)
    dropped: list[str] = []
    good = b'["s", "q", 7, "", 2]'
    if chunk.startswith(b"[["):  # one bad sample costs only itself when `dropped` is given
        mixed = chunk[:-1] + b", " + good + b"]"
        assert decode_samples(mixed, dropped=dropped) == [Sample("s", "q", 7, "", 2.0)]
        assert len(dropped) == 1 and message.split(": ")[-1] in dropped[0]
    else:
        with pytest.raises(DecodeError):
            decode_samples(chunk, dropped=dropped)
