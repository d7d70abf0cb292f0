"""Batch encodings: golden vectors, lossless round trips, SenML read by independent parsers,
the compact format's size and documented bytes, the registry and plugin collection.

Golden vectors: `SENSORD_UPDATE_GOLDEN=1 pytest tests/test_encoding.py` rewrites tests/golden/*.hex
after an intended format change (review the diff: every byte there is on the wire).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import struct
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import cbor2
import pluggy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensord.encoding import (
    CONTENT_TYPE,
    ENCODINGS,
    Batch,
    BatchData,
    ChannelInfo,
    DecodeError,
    EncodeError,
    Encoding,
    channel_info,
    decode,
    detect,
    encode_batch,
    get_encoding,
    senml_name_problem,
)
from sensord.encoding import cbor as enc_cbor
from sensord.encoding.compact import pack, scaled_value, step_of, unpack
from sensord.encoding.senml import senml_unit
from sensord.errors import PluginError
from sensord.plugins import collect_encodings
from sensord.sensor import BadValue, Channel, Sample, clean_value
from sensord.staging import decode_samples, encode_samples, sample_problem

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
T = 1_700_000_000

# The batch of tests/golden and of the worked example in docs/wire-format.md.
GOLDEN_SAMPLES = sorted([
    Sample("air", "temperature", 21.37, "°C", T), Sample("air", "humidity", 45.5, "%", T),
    Sample("door", "open", False, "", T + 0.25),
    Sample("air", "temperature", 21.38, "°C", T + 10), Sample("air", "humidity", 45.4, "%", T + 10),
    Sample("door", "open", True, "", T + 12.5),
    Sample("air", "temperature", 21.38, "°C", T + 20), Sample("air", "humidity", 45.4, "%", T + 20),
    Sample("power", "energy", 1021, "Wh", T + 30), Sample("power", "factor", 0.5, "", T + 30),
    Sample("power", "flow", 0, "l/min", T + 30),
    Sample("power", "energy", 1022, "Wh", T + 40), Sample("power", "factor", 1 / 3, "", T + 40),
    Sample("power", "flow", 2.5, "l/min", T + 40),
], key=lambda s: s.ts)
GOLDEN_CHANNELS = {("air", "temperature"): ChannelInfo("°C", 0.01), ("air", "humidity"): ChannelInfo("%", 0.1)}
GOLDEN_BATCH = BatchData("barn", 7, GOLDEN_SAMPLES, GOLDEN_CHANNELS)


def exact(samples: Sequence[Sample]) -> list[tuple[Any, ...]]:
    """Samples with values compared exactly: type, sign of zero, every bit."""
    return [(s.sensor, s.quantity, s.unit, s.ts, type(s.value).__name__,
             struct.pack(">d", s.value) if isinstance(s.value, float) else s.value) for s in samples]


def expected(samples: Sequence[Sample]) -> list[Sample]:
    """What every decoder returns: times to the millisecond; the channels (sensor, quantity, unit)
    concatenated in order of first appearance, then sorted by time (stable)."""
    columns: dict[tuple[str, str, str], list[Sample]] = {}
    for s in samples:
        columns.setdefault((s.sensor, s.quantity, s.unit), []).append(
            Sample(s.sensor, s.quantity, s.value, s.unit, round(s.ts * 1000) / 1000))
    return sorted((s for column in columns.values() for s in column), key=lambda s: s.ts)


def read_hex(path: Path) -> bytes:
    return bytes.fromhex(re.sub(r"\s+", "", path.read_text()))


def write_hex(path: Path, data: bytes) -> None:
    text = data.hex()
    path.write_text("".join(text[i:i + 64] + "\n" for i in range(0, len(text), 64)))


# -- golden vectors ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ENCODINGS))
def test_golden_vector(name: str) -> None:
    payload = ENCODINGS[name].encode(GOLDEN_BATCH)
    path = GOLDEN / f"{name}.hex"
    if os.environ.get("SENSORD_UPDATE_GOLDEN"):
        write_hex(path, payload)
    assert payload == read_hex(path), f"{name} bytes changed: a wire format change (see module docstring)"
    batch = decode(read_hex(path))
    assert (batch.node, batch.seq) == ("barn", 7)
    assert exact(batch.samples) == exact(expected(GOLDEN_SAMPLES))


def test_worked_example_in_docs_is_the_real_encoding() -> None:
    text = (ROOT / "docs" / "wire-format.md").read_text()
    block = text.split("<!-- worked-example:start -->")[1].split("<!-- worked-example:end -->")[0]
    lines = [line.split("#", 1)[0] for line in block.splitlines() if not line.startswith("```")]
    documented = bytes.fromhex("".join(lines).replace(" ", ""))
    assert documented == ENCODINGS["compact"].encode(GOLDEN_BATCH)


# -- lossless round trips ------------------------------------------------------------------------

NAMES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="/"), min_size=1, max_size=8)
QUANTITIES = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=8)
RESOLUTIONS = [0.01, 0.1, 0.5, 0.25, 1.0, 0.001, 10.0, 2.5e-07, 0.05]
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
INTS = st.one_of(st.integers(-1000, 1000), st.integers(-2**70, 2**70))


def decimals(resolution: float) -> int:
    text = repr(resolution)
    if "e-" in text:
        mantissa, exp = text.split("e-")
        return int(exp) + len(mantissa.partition(".")[2])
    return len(text.partition(".")[2].rstrip("0"))


@st.composite
def channel_values(draw: st.DrawFn, count: int) -> tuple[float | None, list[Any]]:
    """One channel's resolution and `count` values of one kind (on the grid when it has one)."""
    kind = draw(st.sampled_from(["grid", "grid", "int", "bool", "float", "mixed"]))
    if kind == "grid":
        res = draw(st.sampled_from(RESOLUTIONS))
        ks = draw(st.lists(st.integers(-10**9, 10**9), min_size=count, max_size=count))
        return res, [round(k * res, decimals(res)) for k in ks]
    strategy = {"int": INTS, "bool": st.booleans(), "float": FLOATS,
                "mixed": st.one_of(INTS, st.booleans(), FLOATS)}[kind]
    return None, draw(st.lists(strategy, min_size=count, max_size=count))


@st.composite
def batches(draw: st.DrawFn, *, min_readings: int = 0) -> BatchData:
    n_channels = draw(st.integers(1, 4))
    keys = draw(st.lists(st.tuples(NAMES, QUANTITIES, st.sampled_from(["", "°C", "%", "hPa"])),
                         min_size=n_channels, max_size=n_channels, unique_by=lambda k: k[:2]))
    samples: list[Sample] = []
    channels = {}
    start = draw(st.integers(2**28 * 1000, 4_000_000_000_000))
    step = draw(st.sampled_from([1, 250, 1000, 60_000]))
    for sensor, quantity, unit in keys:
        count = draw(st.integers(min_readings, 12))
        res, values = draw(channel_values(count))
        channels[(sensor, quantity)] = ChannelInfo(unit, res)
        jitter = draw(st.lists(st.integers(0, 20), min_size=count, max_size=count))
        samples += [Sample(sensor, quantity, v, unit, (start + i * step + j) / 1000)
                    for i, (v, j) in enumerate(zip(values, jitter, strict=True))]
    samples.sort(key=lambda s: s.ts)  # as the batcher delivers them
    return BatchData(draw(NAMES), draw(st.integers(0, 2**40)), samples, channels)


@pytest.mark.parametrize("name", list(ENCODINGS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_lossless_round_trip(name: str, data: st.DataObject) -> None:
    batch = data.draw(batches(min_readings=1 if name.startswith("senml") else 0))
    payload = ENCODINGS[name].encode(batch)
    assert detect(payload) is ENCODINGS[name]
    decoded = decode(payload)
    assert (decoded.node, decoded.seq) == (batch.node, batch.seq)
    # exact values and types, each channel in its own order, times to the millisecond
    assert exact(decoded.samples) == exact(expected(batch.samples))


@settings(max_examples=100, deadline=None)
@given(batches(min_readings=1))
def test_all_encodings_decode_to_the_same_batch(batch: BatchData) -> None:
    results = {name: exact(decode(e.encode(batch)).samples) for name, e in ENCODINGS.items()}
    assert len({json.dumps(r, default=repr) for r in results.values()}) == 1


def test_non_finite_values_round_trip() -> None:
    samples = [Sample("a", "x", v, "", T + i) for i, v in enumerate([math.nan, math.inf, -math.inf, 1.5])]
    for name, encoding in ENCODINGS.items():
        values = [s.value for s in decode(encoding.encode(BatchData("n", 1, samples))).samples]
        assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.5], name
    records = json.loads(ENCODINGS["senml+json"].encode(BatchData("n", 1, samples)))  # strict JSON
    assert [r.get("vs") for r in records] == ["NaN", "Infinity", "-Infinity", None]


# -- compact specifics ---------------------------------------------------------------------------

def random_walk(channels: int = 10, readings: int = 60, *, seed: int = 1) -> BatchData:
    """The sim plugin's random_walk (0.01 resolution), 1 Hz, stamps with 0-3 ms of scheduling jitter."""
    rng = random.Random(seed)
    walk = [20 + rng.uniform(-1, 1) for _ in range(channels)]
    samples = []
    for i in range(readings):
        ts = T + i + rng.uniform(0, 0.003)
        for c in range(channels):
            walk[c] += rng.gauss(0, 0.05) + 0.01 * (20 - walk[c])
            samples.append(Sample("sim", f"t{c}", round(walk[c], 2), "°C", ts))
    info = channel_info([("sim", [Channel(f"t{c}", "°C", 0.01) for c in range(channels)])])
    return BatchData("barn", 7, samples, info)


def test_compact_size_targets() -> None:
    batch = random_walk()
    compact = len(ENCODINGS["compact"].encode(batch)) / 600
    assert compact <= 2.0, compact  # the target is 5
    assert len(ENCODINGS["json"].encode(batch)) / 600 > 5 * compact
    steady = BatchData("barn", 7, [Sample("sim", f"t{c}", 21.5, "°C", T + i) for i in range(60) for c in range(10)],
                       batch.channels)
    assert len(ENCODINGS["compact"].encode(steady)) / 600 <= 0.5
    # Without declared resolutions, the decimals the values are written with serve as well.
    assert len(encode_batch("barn", 7, batch.samples)) / 600 <= compact * 1.05


def test_compact_off_grid_values_stay_exact() -> None:
    samples = [Sample("a", "t", v, "", T + i) for i, v in enumerate([21.37, 21.375, 21.3333])]
    channels = {("a", "t"): ChannelInfo("", 0.01)}
    assert [s.value for s in decode(encode_batch("n", 1, samples, channels=channels)).samples] == \
        [21.37, 21.375, 21.3333]


@given(st.sampled_from(RESOLUTIONS), st.lists(FLOATS, min_size=1, max_size=5))
def test_compact_values_off_a_declared_grid(resolution: float, values: list[float]) -> None:
    """Exact, except float noise (a millionth of a step, a few ulps) snapped to the grid."""
    samples = [Sample("a", "t", v, "", T + i) for i, v in enumerate(values)]
    decoded = decode(encode_batch("n", 1, samples, channels={("a", "t"): ChannelInfo("", resolution)}))
    for v, s in zip(values, decoded.samples, strict=True):
        assert type(s.value) is float
        assert s.value == v or (abs(s.value - v) <= max(resolution * 1e-6, 4 * math.ulp(v))
                                and on_grid(s.value, resolution))


def on_grid(value: float, resolution: float) -> bool:
    """value is the double nearest to an integer multiple of the decimal resolution."""
    step = step_of(resolution)
    assert step is not None
    m, e = step
    k = round(Fraction(value) / (m * Fraction(10) ** e))
    return scaled_value(k, m, e) == value


def test_compact_large_values_on_the_grid_stay_exact() -> None:
    # Found by hypothesis: 360287970189641.0 * 100 is past 2**53, so the first k was one off.
    values = [360287970189641.0, 2.0**52 * 0.05, -123456789012345.65]
    samples = [Sample("a", "t", v, "", T + i) for i, v in enumerate(values)]
    channels = {("a", "t"): ChannelInfo("", 0.05)}
    assert [s.value for s in decode(encode_batch("n", 1, samples, channels=channels)).samples] == values


def test_compact_float_noise_snaps_to_the_grid() -> None:
    samples = [Sample("a", "t", 21.369999999999997, "", T), Sample("a", "t", 0.1 + 0.2, "", T + 1)]
    decoded = decode(encode_batch("n", 1, samples, channels={("a", "t"): ChannelInfo("", 0.01)}))
    assert [s.value for s in decoded.samples] == [21.37, 0.3]


def test_compact_keeps_a_unit_change_within_a_channel() -> None:
    samples = [Sample("a", "t", 1.5, "°C", T), Sample("a", "t", 300.0, "K", T + 1)]
    assert decode(encode_batch("n", 1, samples)).samples == samples


def test_packed_streams() -> None:
    for values in ([], [0], [0, 0], [5, 5, 5, 5], [1, -1, 31, -32, 32, -33], [2**62, -2**62], [7] * 1000):
        assert unpack(pack(values), len(values), "x") == values
    assert pack([0] * 60) == b"\x75"  # one run token: 2 * (60 - 2) + 1
    with pytest.raises(DecodeError, match="expected at most 3"):
        unpack(pack([0] * 60), 3, "x")
    with pytest.raises(DecodeError, match="longer than 10 bytes"):
        unpack(b"\xff" * 11 + b"\x01", 10, "x")


def test_compact_is_plain_cbor() -> None:
    item = cbor2.loads(ENCODINGS["compact"].encode(GOLDEN_BATCH))
    assert item.tag == 54705 and list(item.value[:4]) == [1, "barn", 7, T]


@pytest.mark.parametrize(("payload", "message"), [
    (b"", "not a sensord batch: empty payload"),
    (b"\xff\xfe", "not a sensord batch: unknown header 0xfffe"),
    (b"\xd9\xd5\xb1\x87\x03", "unsupported compact batch version 3 (this sensord reads versions 1 and 2)"),
    (b"\xd9\xd5\xb1\x87\x02", "compact batch version 2: expected 8 fields, found 7"),
    (b"\xd9\xd5\xb1\x87\x01\x64bar", "truncated payload: expected 4 bytes at offset 6, found 3"),
    (b"\xd9\xd5\xb1\x87\x01\x5b\xff\xff\xff\xff\xff\xff\xff\xff", "truncated payload: expected 18446744073709551615"),
    (b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00", "truncated payload: item at offset 0 declares 4294967296 elements"),
    (b"\x81" * 100 + b"\x00", "CBOR nested deeper than 5 levels"),
    (b"[" * 100_000, "senml+json: not a sensord batch: invalid JSON"),
    (b'[{"bn": "n/", "n": "a/t", "v": 1}]', "senml+json: not a sensord batch: no record carries"),
    (b'[{"bn": "n/", "sensord_seq": 1, "n": "a/t", "v": 1, "x_": 2}]', "senml+json record 0: unknown label 'x_'"),
])
def test_decode_errors_are_one_clear_line(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_encode_errors() -> None:
    with pytest.raises(EncodeError, match="expected a number or boolean"):
        encode_batch("n", 1, [Sample("a", "t", "high", "", T)])  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="not a finite number"):
        encode_batch("n", 1, [Sample("a", "t", 1, "", math.nan)])
    with pytest.raises(EncodeError, match="empty batch"):
        encode_batch("n", 1, [], encoding="senml+cbor")
    with pytest.raises(EncodeError, match="lone surrogate"):
        encode_batch("n", 1, [Sample("a\udc00", "t", 1, "", T)])


# -- SenML read by independent parsers -----------------------------------------------------------

CBOR_LABELS = {"bn": -2, "bt": -3, "bu": -4, "bv": -5, "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4, "t": 6}
JSON_LABELS = {k: k for k in CBOR_LABELS}


def resolve(records: list[dict[Any, Any]], labels: dict[str, Any]) -> list[tuple[str, str, Any, float]]:
    """RFC 8428 §4.6 resolution by hand: base name and time carry over; name = bn + n, time = bt + t."""
    bn, bt, bu = "", 0, ""
    out = []
    for r in records:
        for label in r:  # §4.4: a label ending in "_" must be understood; ours do not
            assert not (isinstance(label, str) and label.endswith("_"))
        bn, bt, bu = r.get(labels["bn"], bn), r.get(labels["bt"], bt), r.get(labels["bu"], bu)
        value = r[labels["vb"]] if labels["vb"] in r else r[labels["v"]]
        out.append((bn + r.get(labels["n"], ""), r.get(labels["u"], bu), value, bt + r.get(labels["t"], 0)))
    return out


def check_independent(records: list[dict[Any, Any]], labels: dict[str, Any], batch: BatchData) -> None:
    assert isinstance(records, list) and all(isinstance(r, dict) for r in records)
    assert records[0]["sensord_seq"] == batch.seq
    resolved = resolve(records, labels)
    assert len(resolved) == len(batch.samples)
    for (name, unit, value, when), s in zip(resolved, batch.samples, strict=True):
        assert name == f"{batch.node}/{s.sensor}/{s.quantity}"
        # Registry units, the value scaled exactly in decimal (tests/test_senml_units.py has the table).
        registered, n = senml_unit(s.quantity, s.unit) if s.unit else ("", 0)
        assert unit == (registered or "")
        if n == 0 or isinstance(s.value, bool):
            assert type(value) is type(s.value) and (value == s.value)
        else:
            want = Fraction(Decimal(repr(s.value)) if isinstance(s.value, float) else s.value) * Fraction(10) ** n
            if isinstance(value, Decimal | int):  # a CBOR decimal fraction or integer: exact
                assert Fraction(value) == want
            else:
                assert value == float(Decimal(want.numerator) / want.denominator if want.denominator > 1
                                      else Decimal(want.numerator))  # Decimal -> float: inf past the range
        assert when >= 2**28  # absolute time (§4.5.3), not relative to "now"
        assert round(when * 1000) == round(s.ts * 1000)


def test_senml_cbor_read_by_cbor2() -> None:
    payload = ENCODINGS["senml+cbor"].encode(GOLDEN_BATCH)
    records = cbor2.loads(payload)
    check_independent(records, CBOR_LABELS, GOLDEN_BATCH)
    assert records[0][-2] == "barn/" and records[0][-3] == T and records[0][0] == "air/temperature"
    for record in records:
        assert all(isinstance(k, int) for k in record if k not in ("sensord_seq", "sensord_u"))
        assert senml_name_problem("barn", *record[0].split("/")) is None if 0 in record else True


def test_senml_json_read_by_json() -> None:
    records = json.loads(ENCODINGS["senml+json"].encode(GOLDEN_BATCH))
    check_independent(records, JSON_LABELS, GOLDEN_BATCH)
    assert records[0]["bn"] == "barn/" and records[0]["bt"] == T


@settings(max_examples=100, deadline=None)
@given(batches(min_readings=1))
def test_senml_read_by_independent_parsers(batch: BatchData) -> None:
    check_independent(cbor2.loads(ENCODINGS["senml+cbor"].encode(batch)), CBOR_LABELS, batch)
    check_independent(json.loads(ENCODINGS["senml+json"].encode(batch)), JSON_LABELS, batch)


def test_senml_name_problem() -> None:
    assert senml_name_problem("barn", "air", "temperature") is None
    assert "strict SenML readers reject it" in (senml_name_problem("barn", "küche", "t") or "")


# -- our CBOR against cbor2 ----------------------------------------------------------------------

CBOR_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**100, 2**100), st.floats(allow_nan=False),
              st.text(max_size=5), st.binary(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12)


@given(CBOR_VALUES)
def test_cbor_agrees_with_cbor2(value: Any) -> None:
    assert cbor2.loads(enc_cbor.dumps(value)) == value
    assert enc_cbor.loads(cbor2.dumps(value), max_depth=64) == value


def test_cbor_floats_are_shortest() -> None:
    assert enc_cbor.dumps(0.5) == b"\xf9\x38\x00"
    assert enc_cbor.dumps(100000.0) == b"\xfa\x47\xc3\x50\x00"
    assert enc_cbor.dumps(21.37) == b"\xfb" + struct.pack(">d", 21.37)
    assert enc_cbor.dumps(math.nan) == b"\xf9\x7e\x00" and enc_cbor.dumps(-0.0) == b"\xf9\x80\x00"


# -- registry, plugins, helpers ------------------------------------------------------------------

def test_registry_and_defaults() -> None:
    assert list(ENCODINGS) == ["compact", "json", "senml+json", "senml+cbor"]
    assert CONTENT_TYPE == ENCODINGS["compact"].content_type == "application/vnd.sensord.compact+cbor; v=1"
    assert get_encoding("senml+cbor").content_type == "application/senml+cbor"
    with pytest.raises(ValueError, match="unknown encoding 'cbor'; known: compact, json"):
        get_encoding("cbor")
    payload = encode_batch("barn", 1, GOLDEN_SAMPLES)
    assert detect(payload).name == "compact"
    assert decode(payload) == decode(bytearray(payload)) == decode(memoryview(payload))
    assert all(isinstance(e, Encoding) for e in ENCODINGS.values())


def test_errors_live_in_sensord_errors_and_import_from_every_documented_place() -> None:
    import sensord
    import sensord.errors

    assert DecodeError is sensord.DecodeError is sensord.errors.DecodeError
    assert EncodeError is sensord.EncodeError is sensord.errors.EncodeError
    assert {"DecodeError", "EncodeError"} <= set(sensord.__all__)
    assert issubclass(DecodeError, sensord.SensordError) and issubclass(DecodeError, ValueError)
    assert issubclass(EncodeError, sensord.SensordError) and issubclass(EncodeError, ValueError)


def test_json_v1_from_older_versions_still_decodes() -> None:
    old = (b'{"v":1,"node":"barn","seq":42,"t0":1700000000.0,"series":[{"s":"a","q":"t","u":"\xc2\xb0C",'
           b'"t":[0,10000],"v":[21.5,21.6]},{"s":"b","q":"h","u":"","t":[5000],"v":[true]}]}')
    batch = decode(old)
    assert batch == Batch("barn", 42, [Sample("a", "t", 21.5, "°C", T), Sample("b", "h", True, "", T + 5),
                                       Sample("a", "t", 21.6, "°C", T + 10)])


class Reverse:
    """A toy plugin encoding: JSON v1 bytes reversed, recognised by its last byte first."""

    name = "reverse"
    content_type = "application/x-reverse"

    def matches(self, payload: bytes) -> bool:
        return payload[:1] == b"}"

    def encode(self, batch: BatchData) -> bytes:
        return ENCODINGS["json"].encode(batch)[::-1]

    def decode(self, payload: bytes) -> Batch:
        if payload == b"}boom":
            raise KeyError("boom")
        return ENCODINGS["json"].decode(payload[::-1])


def plugin_manager(*plugins: object) -> pluggy.PluginManager:
    from sensord import hookspecs

    pm = pluggy.PluginManager("sensord")
    pm.add_hookspecs(hookspecs)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"p{i}")
    pm.check_pending()
    return pm


def plugin(result: Any) -> object:
    from sensord.hookspecs import hookimpl

    class P:
        @staticmethod
        @hookimpl
        def sensord_register_encodings() -> Any:
            if isinstance(result, Exception):
                raise result
            return result

    return P()


def test_collect_encodings_and_plugin_decoding() -> None:
    found = collect_encodings(plugin_manager(plugin([Reverse()])))
    assert list(found) == [*ENCODINGS, "reverse"]
    payload = encode_batch("barn", 3, GOLDEN_SAMPLES, encoding="reverse", encodings=found)
    assert decode(payload, found).samples == decode(encode_batch("barn", 3, GOLDEN_SAMPLES)).samples
    with pytest.raises(DecodeError, match="encoding 'reverse': decoder raised KeyError"):
        decode(b"}boom", found)
    with pytest.raises(DecodeError, match="unknown header"):
        decode(payload)  # without the plugin: not a known encoding
    assert list(collect_encodings(pluggy.PluginManager("sensord"))) == list(ENCODINGS)


@pytest.mark.parametrize(("result", "message"), [
    (RuntimeError("no"), 'plugin "p0": sensord_register_encodings raised RuntimeError: no'),
    (Reverse(), "must return a list of encodings, returned Reverse"),
    ([object()], "name None is not a lower-case name"),
    ([type("C", (Reverse,), {"name": "compact"})()], 'encoding "compact" is already registered by sensord'),
])
def test_collect_encodings_names_the_plugin(result: Any, message: str) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        collect_encodings(plugin_manager(plugin(result)))


def test_the_plugin_host_names_the_built_in_encodings_without_importing_them() -> None:
    # Loading plugins checks theirs against BUILTIN_ENCODINGS, so `sensord check` imports no encoder.
    from sensord.plugins import BUILTIN_ENCODINGS, PluginHost, collect_plugin_encodings

    assert tuple(ENCODINGS) == BUILTIN_ENCODINGS
    pm = plugin_manager(plugin([Reverse()]))
    host = PluginHost(pm, plugin_encodings=collect_plugin_encodings(pm))
    assert host.encoding_names == [*ENCODINGS, "reverse"]
    assert host.encodings == collect_encodings(pm)
    assert all(host.encodings[name] is ENCODINGS[name] for name in ENCODINGS)


# -- what the scheduler lets through always encodes; the staging format never stops a start ------

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=3), st.binary(max_size=3),
    st.decimals(allow_nan=True), st.fractions(), st.complex_numbers(), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_VALUE, min_size=1, max_size=8))
def test_every_value_the_scheduler_lets_through_encodes_everywhere(raw: list[Any]) -> None:
    cleaned: list[Any] = [0]  # the daemon never seals an empty batch
    for value in raw:
        try:
            value = clean_value(value)
        except BadValue:
            continue
        if value is not None:
            cleaned.append(value)
    samples = [Sample("s", "q", v, "", T + i) for i, v in enumerate(cleaned)]
    assert all(sample_problem(s) is None for s in samples)
    for name in ENCODINGS:
        assert len(decode(encode_batch("n", 1, samples, encoding=name)).samples) == len(samples), name
    assert decode_samples(encode_samples(samples)) == samples
