"""SenML units (issue 10, item 15): every built-in unit goes out as a registered SenML unit with
its value scaled exactly, comes back as sensord's unit and value, and batches sealed before the
mapping still decode. Checked against the registry's own list and a SenML library from PyPI.
"""

from __future__ import annotations

import json
import math
import re
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensord.encoding import ENCODINGS, BatchData, decode
from sensord.encoding.senml import REGISTERED_UNITS, senml_unit
from sensord.sensor import Sample

ROOT = Path(__file__).resolve().parents[1]
T = 1_700_000_000

# The IANA "SenML Units" registry as RFC 8428 §12.1 (Table 6) created it and RFC 8798 §2 extended
# it, typed in here from the RFC text rather than imported from the code under test.
RFC8428_UNITS = [
    "m", "kg", "g", "s", "A", "K", "cd", "mol", "Hz", "rad", "sr", "N", "Pa", "J", "W", "C", "V", "F", "Ohm",
    "S", "Wb", "T", "H", "Cel", "lm", "lx", "Bq", "Gy", "Sv", "kat", "m2", "m3", "l", "m/s", "m/s2", "m3/s",
    "l/s", "W/m2", "cd/m2", "bit", "bit/s", "lat", "lon", "pH", "dB", "dBW", "Bspl", "count", "/", "%", "%RH",
    "%EL", "EL", "1/s", "1/min", "beat/min", "beats", "S/m",
]
RFC8798_UNITS = ["B", "VA", "VAs", "var", "vars", "J/m", "kg/m3", "deg"]
# RFC 8798 §3: secondary units, not usable in the "u" of a plain (version 10) SenML pack.
SECONDARY = [
    "ms", "min", "h", "MHz", "kW", "kVA", "kvar", "Ah", "Wh", "kWh", "varh", "kvarh", "kVAh", "Wh/km", "KiB",
    "GB", "Mbit/s", "B/s", "MB/s", "mV", "mA", "dBm", "ug/m3", "mm/h", "m/h", "ppm", "/100", "/1000", "hPa",
    "mm", "cm", "km", "km/h",
]

# Every (quantity, unit) a built-in driver declares (checked against plugins/*.py below), with the
# SenML unit and the power of ten it is sent with, and a typical value.
BUILTIN = [
    ("temperature", "°C", "Cel", 0, 21.37), ("cpu_temperature", "°C", "Cel", 0, 48.3),
    ("humidity", "%", "%RH", 0, 45.5),
    ("memory_used", "%", "/", -2, 37.4), ("disk_used", "%", "/", -2, 81.0),
    ("pressure", "hPa", "Pa", 2, 1013.25), ("carbon_dioxide", "ppm", "/", -6, 412),
    ("illuminance", "lx", "lx", 0, 120.5), ("voltage", "V", "V", 0, 3.284),
    ("current", "A", "A", 0, 0.012345678), ("power", "W", "W", 0, 0.04), ("distance", "m", "m", 0, 1.234),
    ("uptime", "s", "s", 0, 86400), ("load_1m", "", None, 0, 0.42), ("count", "", None, 0, 17),
    ("pulses", "", None, 0, 3),
    ("full_spectrum", "", None, 0, 2596), ("infrared", "", None, 0, 649),  # tsl2591: raw counts
    # The iio and hwmon types' units (plugins/iio.py TYPES, plugins/hwmon.py TYPES).
    ("resistance", "Ω", "Ohm", 0, 47000), ("fan_speed", "rpm", "1/min", 0, 1830),
    ("conductivity", "S/m", "S/m", 0, 1.413), ("oxygen", "%", "/", -2, 20.9), ("uv_index", "", None, 0, 3),
    ("gas_resistance", "Ω", "Ohm", 0, 20467),
    ("voc_raw", "", None, 0, 30000), ("voc_index", "", None, 0, 100),
    # The UART particulate sensors (pms5003, sds011): µg/m³ and counts per 0.1 L have no plain
    # SenML unit (kg/m3 would need 10**-9), so they go out with sensord_u.
    ("pm1", "µg/m³", None, 0, 8), ("pm2_5", "µg/m³", None, 0, 12.3), ("pm10", "µg/m³", None, 0, 15),
    ("particles_0_3um", "/dL", None, 0, 1530),
]


def declared_units() -> set[tuple[str, str]]:
    """(quantity, unit) pairs written as literals in the built-in drivers' Channel declarations."""
    found = set()
    for path in (ROOT / "plugins").glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'Channel\(\s*"(\w+)",\s*"([^"]*)"', text))
        if path.name == "system.py":
            found |= set(re.findall(r'"(\w+)": \("([^"]*)", [\d.]+\)', text))
    return found


def test_builtin_table_covers_every_declared_unit() -> None:
    declared = declared_units()
    assert {("humidity", "%"), ("pressure", "hPa"), ("memory_used", "%"), ("carbon_dioxide", "ppm")} <= declared
    assert declared <= {(q, u) for q, u, *_ in BUILTIN}, declared - {(q, u) for q, u, *_ in BUILTIN}


def test_kernel_sensor_units_are_in_the_table() -> None:
    from sensord_plugins import hwmon, iio

    declared = {(q, u) for q, u, _ in [*iio.TYPES.values(), *iio.MODIFIED.values()]}
    declared |= {(q, u) for q, u, *_ in hwmon.TYPES.values()}
    covered = {u for _, u, *_ in BUILTIN}
    # Not registered, sent with sensord_u: Wh (a secondary unit); µg/m³ (its kg/m3 needs 10**-9) is
    # in the table for the UART particulate sensors.
    assert {u for _, u in declared} - covered == {"Wh"}


def test_the_registry_list_in_the_code_is_the_rfcs() -> None:
    assert set(RFC8428_UNITS) | set(RFC8798_UNITS) == REGISTERED_UNITS
    assert not REGISTERED_UNITS & set(SECONDARY)


@pytest.mark.parametrize(("quantity", "unit", "registered", "n", "value"), BUILTIN)
def test_builtin_units_go_out_registered(quantity: str, unit: str, registered: str | None, n: int,
                                         value: float) -> None:
    assert senml_unit(quantity, unit) == (registered, n)
    batch = BatchData("barn", 1, [Sample("s", quantity, value, unit, T)])
    for name, load in (("senml+json", json.loads), ("senml+cbor", cbor2.loads)):
        record = load(ENCODINGS[name].encode(batch))[0]
        u = record.get("u", record.get(1))
        assert u == registered and (u is None or u in RFC8428_UNITS + RFC8798_UNITS), name
        v = record.get("v", record.get(2))
        assert Decimal(str(v)) == Decimal(repr(value)).scaleb(n), name  # exact, short: 0.374, 101325
        assert len(str(v)) <= len(repr(value)) + 6
        # ppm shares "/" with %, so it says which; an unregistered unit goes as sensord_u alone.
        assert "sensord_u" not in record or unit == "ppm" or registered is None


def test_percent_is_a_ratio_and_humidity_is_percent_rh() -> None:
    """The issue's case: a registry-aware reader must not see 45 % as 4500 %."""
    batch = BatchData("barn", 1, [Sample("air", "humidity", 45.5, "%", T), Sample("host", "disk_used", 45, "%", T)])
    records = json.loads(ENCODINGS["senml+json"].encode(batch))
    assert [(r["u"], r["v"]) for r in records] == [("%RH", 45.5), ("/", 0.45)]
    assert decode(ENCODINGS["senml+json"].encode(batch)).samples == batch.samples


def exact(samples: list[Sample]) -> list[tuple[Any, ...]]:
    return [(s.sensor, s.quantity, s.unit, s.ts, type(s.value).__name__,
             struct.pack(">d", s.value) if isinstance(s.value, float) else s.value) for s in samples]


VALUES = st.one_of(st.floats(allow_nan=False), st.integers(-2**70, 2**70), st.booleans(),
                   st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 12345678901234568.0]))
UNITS = st.sampled_from(["°C", "%", "hPa", "ppm", "lx", "V", "A", "W", "m", "s", "", "Wh", "l/min", "Pa", "/",
                         "%RH", "Cel", "%EL", "count", "K"])


@pytest.mark.parametrize("name", ["senml+json", "senml+cbor"])
@given(values=st.lists(st.tuples(st.sampled_from(["humidity", "memory_used", "x"]), UNITS, VALUES),
                       min_size=1, max_size=8))
def test_every_unit_round_trips_exactly(name: str, values: list[tuple[str, str, Any]]) -> None:
    samples = [Sample(f"s{i}", q, v, u, T + i) for i, (q, u, v) in enumerate(values)]
    assert exact(decode(ENCODINGS[name].encode(BatchData("n", 1, samples))).samples) == exact(samples)


def test_non_finite_values_keep_their_unit() -> None:
    samples = [Sample("a", "p", v, "hPa", T + i) for i, v in enumerate([math.nan, math.inf, -math.inf])]
    for name in ("senml+json", "senml+cbor"):
        back = decode(ENCODINGS[name].encode(BatchData("n", 1, samples))).samples
        assert [s.unit for s in back] == ["hPa"] * 3 and math.isnan(back[0].value)
        assert [s.value for s in back[1:]] == [math.inf, -math.inf]


def test_units_without_a_registered_equivalent_leave_u_out() -> None:
    records = json.loads(ENCODINGS["senml+json"].encode(BatchData("n", 1, [Sample("p", "energy", 1021, "Wh", T)])))
    assert "u" not in records[0] and records[0]["sensord_u"] == "Wh" and records[0]["v"] == 1021


def test_batches_sealed_before_the_mapping_still_decode() -> None:
    """The goldens from before registry units (u = °C, %, Wh: still in offline buffers)."""
    old = {name: bytes.fromhex(re.sub(r"\s+", "", (ROOT / "tests" / "golden" / f"{name}.before-units.hex")
                                      .read_text())) for name in ("senml+json", "senml+cbor")}
    assert b'"u":"%"' in old["senml+json"] and "°C".encode() in old["senml+json"]
    new_goldens = {name: bytes.fromhex(re.sub(r"\s+", "", (ROOT / "tests" / "golden" / f"{name}.hex").read_text()))
                   for name in old}
    for name, payload in old.items():
        assert decode(payload) == decode(new_goldens[name]), name
        units = {s.unit for s in decode(payload).samples}
        assert units == {"°C", "%", "", "Wh", "l/min"}


def test_read_by_a_senml_library_from_pypi() -> None:
    """The `senml` package (eistec, RFC 8428 JSON; the only PyPI SenML parser that keeps units:
    kpn-senml and micropython-senml drop `u` when parsing) resolves our records."""
    try:
        import senml  # type: ignore[import-not-found]
    except ImportError:
        pytest.fail("the SenML reader is missing: pip install -e '.[test]' (or .ci/bookworm-env) installs it")
    samples = [Sample("air", q, v, u, T + i) for i, (q, u, _, _, v) in enumerate(BUILTIN)]
    payload = ENCODINGS["senml+json"].encode(BatchData("barn", 7, samples))
    doc = senml.SenMLDocument.from_json(json.loads(payload))
    resolved = [m.to_absolute(doc.base) for m in doc.measurements]
    assert [m.name for m in resolved] == [f"barn/air/{q}" for q, *_ in BUILTIN]
    assert [m.unit for m in resolved] == [registered for _, _, registered, _, _ in BUILTIN]
    assert [m.time for m in resolved] == [T + i for i in range(len(BUILTIN))]
    for m, (_, _, _, n, v) in zip(resolved, BUILTIN, strict=True):
        assert m.value == pytest.approx(v * 10**n, rel=1e-15)
