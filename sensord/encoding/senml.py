"""The `senml+cbor` and `senml+json` batch encodings: SenML packs (RFC 8428) any SenML reader parses.

One record per reading, in batch order. The first record also carries the base name
`"{node}/"`, the base time (Unix seconds, the batch's earliest reading) and the batch sequence
number under the extension label `sensord_seq`. A record's name is `"{sensor}/{quantity}"`, so
the resolved name is `{node}/{sensor}/{quantity}`, the same path as the per-channel MQTT topics.
`/` separates the parts because config forbids it in node ids and sensor names (`:` is allowed
there), which keeps the split unambiguous. Times are relative to the base time (`t`, seconds,
omitted when 0). Numbers go in `v` (integers stay integers), booleans in `vb`.

Units are the SenML units registry's (RFC 8428 §12.1, RFC 8798 §2): `°C` goes as `Cel`, `%` of a
quantity named `...humidity` as `%RH`, any other `%` as the ratio `/` (value / 100: the
registry's `%` is a ratio, "NOT a percentage"), `hPa` as `Pa` (value * 100), `ppm` as `/`
(value / 10**6), a registered unit (`V`, `lx`, ...) as itself. A unit with no registered
equivalent (`Wh`, `l/min`) goes without `u`, so no reader misreads it. Decoding gives back
sensord's unit and value exactly (type included): scaled numbers are exact decimals (JSON
number text, or a plain CBOR float when its shortest form scales back exactly, else a CBOR
decimal fraction, tag 4, §6), and where `u` alone would not say which sensord unit it was, the
extension label `sensord_u` carries it. Batches from before this mapping (`u` = `°C`, `%`,
`hPa`) still decode as they were sent.

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
from typing import TYPE_CHECKING, Any

from ..errors import DecodeError, EncodeError
from ..sensor import Value
from . import cbor
from .base import Batch, BatchData, budget, check_header, check_value, ordered, to_ms

if TYPE_CHECKING:
    from decimal import Decimal

SEQ_LABEL = "sensord_seq"
#: Extension label with sensord's own unit, where `u` alone would not give it back (see UNIT_MAP).
UNIT_LABEL = "sensord_u"
#: Must-understand extension (RFC 8428 §4.4: the trailing `_`) in the first record of a batch
#: whose times come from a clock not synchronised yet: a reader that does not know it rejects the
#: pack instead of taking those times for true ones.
UNSYNCED_LABEL = "sensord_unsynced_"
#: RFC 8428 §4.5.1: the characters a resolved name may have.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_CBOR_LABELS = {"bn": -2, "bt": -3, "bu": -4, "bv": -5, "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4, "t": 6}
_JSON_LABELS = {name: name for name in _CBOR_LABELS}
_PLACEHOLDER = re.compile(r'"v":"\\u0000(\d+)"')
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_KNOWN_CBOR = {-1, -2, -3, -4, -5, -6, 0, 1, 2, 3, 4, 5, 6, 7, 8}  # RFC 8428 Table 4

#: The primary units of the IANA "SenML Units" registry: RFC 8428 §12.1 (Table 6) and RFC 8798 §2.
#: Secondary units (RFC 8798 §3: `hPa`, `ppm`, `/100`, `mm`, `Wh`, ...) are not among them: a
#: SenML 10 pack may not use them in `u` (RFC 9100 makes them a feature a reader must announce).
REGISTERED_UNITS = frozenset({
    "m", "kg", "g", "s", "A", "K", "cd", "mol", "Hz", "rad", "sr", "N", "Pa", "J", "W", "C", "V", "F",
    "Ohm", "S", "Wb", "T", "H", "Cel", "lm", "lx", "Bq", "Gy", "Sv", "kat", "m2", "m3", "l", "m/s",
    "m/s2", "m3/s", "l/s", "W/m2", "cd/m2", "bit", "bit/s", "lat", "lon", "pH", "dB", "dBW", "Bspl",
    "count", "/", "%", "%RH", "%EL", "EL", "1/s", "1/min", "beat/min", "beats", "S/m",
    "B", "VA", "VAs", "var", "vars", "J/m", "kg/m3", "deg",
})
#: sensord unit -> (SenML unit, n): the SenML value is the sensord value times 10**n.
UNIT_MAP = {"°C": ("Cel", 0), "%": ("/", -2), "hPa": ("Pa", 2), "ppm": ("/", -6), "Ω": ("Ohm", 0),
            "rpm": ("1/min", 0)}
#: How a record without `sensord_u` is read back: SenML unit -> (sensord unit, n). A unit not
#: here reads back as itself, which keeps batches sealed before the mapping (`%`, `°C`, `hPa`).
_UNIT_BACK = {"Cel": ("°C", 0), "%RH": ("%", 0), "/": ("%", -2), "Pa": ("hPa", 2), "Ohm": ("Ω", 0),
              "1/min": ("rpm", 0)}


def senml_unit(quantity: str, unit: str) -> tuple[str | None, int]:
    """The registered SenML unit for sensord's `unit` and n, the SenML value being the sensord
    value times 10**n; None (and 0) when the registry has no such unit."""
    if unit == "%" and quantity.endswith("humidity"):
        return "%RH", 0
    if unit in UNIT_MAP:
        return UNIT_MAP[unit]
    return (unit, 0) if unit in REGISTERED_UNITS else (None, 0)


def _needs_label(unit: str, target: str | None, n: int) -> bool:
    return target is None or _UNIT_BACK.get(target, (target, 0)) != (unit, n)


class _Raw:
    """A JSON number written as this exact text (a scaled value, exact in decimal)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _JsonFloat(float):
    """A JSON number with a fraction or exponent, keeping its text for exact unscaling."""

    text: str

    def __new__(cls, text: str) -> _JsonFloat:
        self = super().__new__(cls, text)
        self.text = text
        return self


def _dec(value: Any) -> Decimal:
    """`decimal.Decimal(value)`, imported on first use: `decimal` costs 0.4 MiB in a daemon
    whose encoding (`compact` by default) never needs it."""
    from decimal import Decimal

    return Decimal(value)


def _decimal(value: float) -> Decimal:
    """A finite float as its shortest decimal, written so that its exponent is not 0: an
    exponent of 0 says int (`12345678901234568.0` becomes 123456789012345680 * 10**-1)."""
    d = _dec(repr(value))
    sign, digits, exponent = d.as_tuple()
    return _dec((sign, (*digits, 0), -1)) if exponent == 0 else d


def _shift(d: Decimal, n: int) -> Decimal:
    """d times 10**n, exactly (Decimal.scaleb rounds to the context's 28 digits)."""
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    return _dec((sign, digits, exponent + n))


def _scaled(value: Value, n: int, *, json_out: bool) -> Any:
    """sensord's value in the SenML unit: times 10**n, exactly (see _unscaled for the way back)."""
    if n == 0 or isinstance(value, bool) or isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, int):
        if n > 0:
            return value * 10**n
        return _Raw(str(_shift(_dec(value), n))) if json_out else cbor.Tag(4, [n, value])
    exact = _shift(_decimal(value), n)
    if json_out:
        return _Raw(str(exact))
    near = float(exact)
    if math.isfinite(near) and _from_float(near, n).hex() == value.hex():  # hex: -0.0 is not 0.0
        return near
    sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)))
    return cbor.Tag(4, [exponent, -mantissa if sign else mantissa])


def _from_float(value: float, n: int) -> float:
    return float(_shift(_dec(repr(value)), -n))


def _from_decimal(exact: Decimal, n: int) -> Value:
    back = _shift(exact, -n)
    return int(back) if back.as_tuple().exponent == 0 else float(back)


def _unscaled(value: Any, n: int, where: str) -> Value:
    """A SenML value back in sensord's unit: divided by 10**n, int or float as it was sent."""
    if isinstance(value, cbor.Tag):
        parts = value.value
        if value.tag != 4 or not (isinstance(parts, list) and len(parts) == 2
                                  and all(isinstance(p, int) and not isinstance(p, bool) for p in parts)):
            raise DecodeError(f"{where}: value is CBOR tag {value.tag}, expected a number "
                              "(or a decimal fraction, tag 4 [exponent, mantissa])")
        exponent, mantissa = parts
        if not -400 <= exponent <= 400:
            raise DecodeError(f"{where}: decimal fraction exponent {exponent} out of range")
        return _from_decimal(_shift(_dec(mantissa), exponent), n)
    if isinstance(value, bool):
        return value
    if n == 0:
        return float(value) if isinstance(value, float) else value
    if isinstance(value, _JsonFloat):
        return _from_decimal(_dec(value.text), n)  # even past the float range: the text is exact
    if isinstance(value, float):
        return _from_float(value, n) if math.isfinite(value) else value
    if n > 0 and value % 10**n == 0:
        quotient: int = value // 10**n  # an int here: the CBOR/JSON types are all handled above
        return quotient
    return _from_decimal(_dec(value), n)


def name_problem(node: str, sensor: str, quantity: str) -> str | None:
    """Why `{node}/{sensor}/{quantity}` is not a valid SenML name (RFC 8428 §4.5.1), or None."""
    name = f"{node}/{sensor}/{quantity}"
    if NAME_RE.fullmatch(name):
        return None
    return (f"SenML name {name!r} has characters outside A-Z a-z 0-9 - : . / _ "
            "(or does not start with a letter or digit); strict SenML readers reject it")


def _records(batch: BatchData, labels: dict[str, Any], *, json_out: bool) -> list[dict[Any, Any]]:
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
            if batch.unsynced:
                record[UNSYNCED_LABEL] = True
        record[labels["n"]] = where
        n = 0
        if s.unit:
            if not isinstance(s.unit, str):
                raise EncodeError(f"{where}: unit {s.unit!r} is not a string")
            target, n = senml_unit(s.quantity, s.unit)
            if target is not None:
                record[labels["u"]] = target
            if _needs_label(s.unit, target, n):
                record[UNIT_LABEL] = s.unit
        if isinstance(s.value, bool):
            record[labels["vb"]] = s.value
        elif json_out and isinstance(s.value, float) and not math.isfinite(s.value):
            record[labels["vs"]] = "NaN" if s.value != s.value else ("Infinity" if s.value > 0 else "-Infinity")
        else:
            record[labels["v"]] = _scaled(s.value, n, json_out=json_out)
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
    unsynced = False
    columns: dict[tuple[str, str, str], tuple[list[int], list[Value]]] = {}
    used = 0
    for i, record in enumerate(records):
        where = f"{flavor} record {i}"
        if not isinstance(record, dict):
            raise DecodeError(f"{where}: expected a map, found {type(record).__name__}")
        for label in record:
            if label != UNSYNCED_LABEL and unknown(label):
                raise DecodeError(f"{where}: unknown label {label!r} that readers must understand")
        bn = _get(record, labels["bn"], str, where, bn)
        bt = _get(record, labels["bt"], float, where, bt)
        bu = _get(record, labels["bu"], str, where, bu)
        bv = _get(record, labels["bv"], float, where, bv)
        if SEQ_LABEL in record:
            seq = _get(record, SEQ_LABEL, int, where, 0)
        unsynced = _get(record, UNSYNCED_LABEL, bool, where, unsynced)
        name = bn + _get(record, labels["n"], str, where, "")
        parts = name.split("/", 2)
        if len(parts) != 3:
            raise DecodeError(f"{where}: name {name!r} is not node/sensor/quantity")
        if node is None:
            node = parts[0]
        elif parts[0] != node:
            raise DecodeError(f"{where}: node {parts[0]!r} differs from {node!r} in the same batch")
        unit = _get(record, labels["u"], str, where, bu)
        if UNIT_LABEL in record:
            unit = _get(record, UNIT_LABEL, str, where, "")
            n = senml_unit(parts[2], unit)[1]
        else:
            unit, n = _UNIT_BACK.get(unit, (unit, 0))
        when = bt + _get(record, labels["t"], float, where, 0.0)
        if not math.isfinite(when * 1000):
            raise DecodeError(f"{where}: time {when!r} is not finite")
        value = _unscaled(_value(record, labels, where, bv), n, where)
        used = budget(1, used, flavor)
        times, values = columns.setdefault((parts[1], parts[2], unit), ([], []))
        times.append(round(when * 1000))
        values.append(value)
    if node is None or seq is None:
        raise DecodeError(f"{flavor}: not a sensord batch: no record carries the node name and {SEQ_LABEL}")
    return Batch(node, seq, ordered((s, q, u, t, v) for (s, q, u), (t, v) in columns.items()), unsynced)


def _get(record: dict[Any, Any], label: Any, kind: type, where: str, default: Any) -> Any:
    if label not in record:
        return default
    value = record[label]
    ok = isinstance(value, int | float) if kind is float else isinstance(value, kind)
    if not ok or (isinstance(value, bool) and kind is not bool):
        raise DecodeError(f"{where}: label {label!r} holds {type(value).__name__}, expected {kind.__name__}")
    return value


def _value(record: dict[Any, Any], labels: dict[str, Any], where: str, bv: float) -> Any:
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
    value = record[labels["v"]]
    if isinstance(value, cbor.Tag):
        return value if not bv else bv + float(_unscaled(value, 0, where))
    value = _get(record, labels["v"], float, where, 0)
    return value + bv if bv else value


class SenmlCborEncoding:
    """RFC 8428 §6 SenML in CBOR, integer labels."""

    name = "senml+cbor"
    content_type = "application/senml+cbor"

    def matches(self, payload: bytes) -> bool:
        return bool(payload) and 0x80 <= payload[0] <= 0x9F  # a CBOR array

    def encode(self, batch: BatchData) -> bytes:
        return cbor.dumps(_records(batch, _CBOR_LABELS, json_out=False))

    def decode(self, payload: bytes) -> Batch:
        return _parse(cbor.loads(payload, max_depth=5), _CBOR_LABELS, self.name,
                      lambda label: isinstance(label, int) and label not in _KNOWN_CBOR
                      or isinstance(label, str) and label.endswith("_"))


class SenmlJsonEncoding:
    """RFC 8428 §5 SenML in JSON."""

    name = "senml+json"
    content_type = "application/senml+json"

    def matches(self, payload: bytes) -> bool:
        return payload.lstrip(b" \t\r\n")[:1] == b"["

    def encode(self, batch: BatchData) -> bytes:
        records = _records(batch, _JSON_LABELS, json_out=True)
        raw: list[str] = []
        for record in records:
            if isinstance(record.get("v"), _Raw):
                raw.append(record["v"].text)
                record["v"] = f"\0{len(raw) - 1}"
        try:
            text = json.dumps(records, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except ValueError as exc:  # a lone surrogate, an integer beyond 4300 digits
            raise EncodeError(f"senml+json: {exc}") from None
        if raw:  # json writes "\0" as \u0000, and a "v" key never holds a string otherwise
            text = _PLACEHOLDER.sub(lambda m: f'"v":{raw[int(m[1])]}', text)
        return text.encode()

    def decode(self, payload: bytes) -> Batch:
        try:
            records = json.loads(payload, parse_float=_JsonFloat)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise DecodeError(f"senml+json: not a sensord batch: invalid JSON ({_short(exc)})") from None
        return _parse(records, _JSON_LABELS, self.name, lambda label: label.endswith("_"))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
