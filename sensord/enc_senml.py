"""The `senml+cbor` and `senml+json` batch encodings: SenML packs (RFC 8428) any SenML reader parses.

One record per reading, in batch order. The first record also carries the base name
`"{node}/"`, the base time (Unix seconds, the batch's earliest reading) and the batch sequence
number under the extension label `sensord_seq`. A record's name is `"{sensor}/{quantity}"`, so
the resolved name is `{node}/{sensor}/{quantity}`, the same path as the per-channel MQTT topics.
`/` separates the parts because config forbids it in node ids and sensor names (`:` is allowed
there), which keeps the split unambiguous. Times are relative to the base time (`t`, seconds,
omitted when 0). Numbers go in `v` (integers stay integers), booleans in `vb`. Units are
sensord's own strings (`°C`), not mapped to the SenML units registry (`Cel`).

`sensord_seq` does not end in `_`, so RFC 8428 §4.4 lets readers that do not know it ignore it;
in CBOR, extension labels are text keys (§6). senml+json cannot carry NaN or infinities as
numbers: such a value goes as the string value `vs` ("NaN", "Infinity", "-Infinity").
Pure, no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from . import enc_cbor as cbor
from .enc_base import Batch, BatchData, DecodeError, EncodeError, budget, check_header, check_value, ordered, to_ms
from .sensor import Value

SEQ_LABEL = "sensord_seq"
#: RFC 8428 §4.5.1: the characters a resolved name may have.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_CBOR_LABELS = {"bn": -2, "bt": -3, "bu": -4, "bv": -5, "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4, "t": 6}
_JSON_LABELS = {name: name for name in _CBOR_LABELS}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_KNOWN_CBOR = {-1, -2, -3, -4, -5, -6, 0, 1, 2, 3, 4, 5, 6, 7, 8}  # RFC 8428 Table 4


def name_problem(node: str, sensor: str, quantity: str) -> str | None:
    """Why `{node}/{sensor}/{quantity}` is not a valid SenML name (RFC 8428 §4.5.1), or None."""
    name = f"{node}/{sensor}/{quantity}"
    if NAME_RE.fullmatch(name):
        return None
    return (f"SenML name {name!r} has characters outside A-Z a-z 0-9 - : . / _ "
            "(or does not start with a letter or digit); strict SenML readers reject it")


def _records(batch: BatchData, labels: dict[str, Any], *, json_safe: bool) -> list[dict[Any, Any]]:
    check_header(batch.node, batch.seq)
    if not batch.samples:
        raise EncodeError("SenML cannot carry an empty batch (node and seq need a record)")
    if "/" in batch.node:
        raise EncodeError(f"node id {batch.node!r} contains '/', which SenML names use as separator")
    base_ms = min(to_ms(s.ts, f"{s.sensor}/{s.quantity}") for s in batch.samples)
    records: list[dict[Any, Any]] = []
    for s in batch.samples:
        where = f"{s.sensor}/{s.quantity}"
        if not isinstance(s.sensor, str) or "/" in s.sensor or not isinstance(s.quantity, str):
            raise EncodeError(f"sensor {s.sensor!r}: expected a string without '/' and a string quantity")
        check_value(s.value, where)
        record: dict[Any, Any] = {}
        if not records:
            record[labels["bn"]] = f"{batch.node}/"
            record[labels["bt"]] = _seconds(base_ms)
            record[SEQ_LABEL] = batch.seq
        record[labels["n"]] = where
        if s.unit:
            if not isinstance(s.unit, str):
                raise EncodeError(f"{where}: unit {s.unit!r} is not a string")
            record[labels["u"]] = s.unit
        if isinstance(s.value, bool):
            record[labels["vb"]] = s.value
        elif json_safe and isinstance(s.value, float) and not math.isfinite(s.value):
            record[labels["vs"]] = "NaN" if s.value != s.value else ("Infinity" if s.value > 0 else "-Infinity")
        else:
            record[labels["v"]] = s.value
        offset = to_ms(s.ts, where) - base_ms
        if offset:
            record[labels["t"]] = _seconds(offset)
        records.append(record)
    return records


def _seconds(ms: int) -> int | float:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def _parse(records: object, labels: dict[str, Any], flavor: str, unknown: Callable[[Any], bool]) -> Batch:
    """A SenML pack resolved as RFC 8428 §4.6 says, then split back into node, sensor, quantity."""
    if not isinstance(records, list):
        raise DecodeError(f"{flavor}: expected an array of records, found {type(records).__name__}")
    bn, bt, bu, bv = "", 0.0, "", 0.0
    node: str | None = None
    seq: int | None = None
    columns: dict[tuple[str, str, str], tuple[list[int], list[Value]]] = {}
    used = 0
    for i, record in enumerate(records):
        where = f"{flavor} record {i}"
        if not isinstance(record, dict):
            raise DecodeError(f"{where}: expected a map, found {type(record).__name__}")
        for label in record:
            if unknown(label):
                raise DecodeError(f"{where}: unknown label {label!r} that readers must understand")
        bn = _get(record, labels["bn"], str, where, bn)
        bt = _get(record, labels["bt"], float, where, bt)
        bu = _get(record, labels["bu"], str, where, bu)
        bv = _get(record, labels["bv"], float, where, bv)
        if SEQ_LABEL in record:
            seq = _get(record, SEQ_LABEL, int, where, 0)
        name = bn + _get(record, labels["n"], str, where, "")
        parts = name.split("/", 2)
        if len(parts) != 3:
            raise DecodeError(f"{where}: name {name!r} is not node/sensor/quantity")
        if node is None:
            node = parts[0]
        elif parts[0] != node:
            raise DecodeError(f"{where}: node {parts[0]!r} differs from {node!r} in the same batch")
        unit = _get(record, labels["u"], str, where, bu)
        when = bt + _get(record, labels["t"], float, where, 0.0)
        if not math.isfinite(when * 1000):
            raise DecodeError(f"{where}: time {when!r} is not finite")
        value = _value(record, labels, where, bv)
        used = budget(1, used, flavor)
        times, values = columns.setdefault((parts[1], parts[2], unit), ([], []))
        times.append(round(when * 1000))
        values.append(value)
    if node is None or seq is None:
        raise DecodeError(f"{flavor}: not a sensord batch: no record carries the node name and {SEQ_LABEL}")
    return Batch(node, seq, ordered((s, q, u, t, v) for (s, q, u), (t, v) in columns.items()))


def _get(record: dict[Any, Any], label: Any, kind: type, where: str, default: Any) -> Any:
    if label not in record:
        return default
    value = record[label]
    ok = isinstance(value, int | float) if kind is float else isinstance(value, kind)
    if not ok or (isinstance(value, bool) and kind is not bool):
        raise DecodeError(f"{where}: label {label!r} holds {type(value).__name__}, expected {kind.__name__}")
    return value


def _value(record: dict[Any, Any], labels: dict[str, Any], where: str, bv: float) -> Value:
    present = [name for name in ("v", "vs", "vb") if labels[name] in record]
    if len(present) != 1:
        raise DecodeError(f"{where}: expected exactly one of v, vb (or a non-finite vs), found {present or 'none'}")
    if present[0] == "vb":
        return bool(_get(record, labels["vb"], bool, where, False))
    if present[0] == "vs":
        text = _get(record, labels["vs"], str, where, "")
        if text not in _NON_FINITE:
            raise DecodeError(f"{where}: string value {text!r}; sensord values are numbers or booleans")
        return _NON_FINITE[text]
    value = _get(record, labels["v"], float, where, 0)
    return value + bv if bv else value


class SenmlCborEncoding:
    """RFC 8428 §6 SenML in CBOR, integer labels."""

    name = "senml+cbor"
    content_type = "application/senml+cbor"

    def matches(self, payload: bytes) -> bool:
        return bool(payload) and 0x80 <= payload[0] <= 0x9F  # a CBOR array

    def encode(self, batch: BatchData) -> bytes:
        return cbor.dumps(_records(batch, _CBOR_LABELS, json_safe=False))

    def decode(self, payload: bytes) -> Batch:
        return _parse(cbor.loads(payload, max_depth=4), _CBOR_LABELS, self.name,
                      lambda label: isinstance(label, int) and label not in _KNOWN_CBOR
                      or isinstance(label, str) and label.endswith("_"))


class SenmlJsonEncoding:
    """RFC 8428 §5 SenML in JSON."""

    name = "senml+json"
    content_type = "application/senml+json"

    def matches(self, payload: bytes) -> bool:
        return payload.lstrip(b" \t\r\n")[:1] == b"["

    def encode(self, batch: BatchData) -> bytes:
        records = _records(batch, _JSON_LABELS, json_safe=True)
        try:
            return json.dumps(records, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except ValueError as exc:  # a lone surrogate, an integer beyond 4300 digits
            raise EncodeError(f"senml+json: {exc}") from None

    def decode(self, payload: bytes) -> Batch:
        try:
            records = json.loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise DecodeError(f"senml+json: not a sensord batch: invalid JSON ({_short(exc)})") from None
        return _parse(records, _JSON_LABELS, self.name, lambda label: label.endswith("_"))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
