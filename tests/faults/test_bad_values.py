"""Fault injection: a drop-in plugin returning every wrong value type, against the real daemon.

Each sensor of the drop-in `badvalues.py` returns a good counter channel (0, 1, 2, ... one per
read) and, beside it, one kind of bad value (or, for `every`, each kind in turn). The daemon must
keep running, deliver every good reading exactly once, name each bad kind once per sensor, and
start again whatever a previous run left staged in the buffer.
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
from pathlib import Path

import pytest
from daemon_harness import Node, assert_gapless, readings, statuses, wait_until, write_config

from sensord.buffer import Buffer
from sensord.testing.broker import Mosquitto, Subscription

pytestmark = pytest.mark.broker

PLUGIN = textwrap.dedent('''
    """A drop-in whose sensors return bad values beside a good counter channel."""

    import enum
    from dataclasses import dataclass
    from decimal import Decimal
    from fractions import Fraction

    import sensord
    from sensord import Reading, Sensor, SensorConfig


    class Level(enum.IntEnum):
        HIGH = 7


    class Celsius(float):
        pass


    class Opaque:
        def __repr__(self):
            raise RuntimeError("no repr for you")


    # kind -> the extra readings of one read (beside Reading("good", n)); None: read() returns junk
    EXTRA = {
        "str": lambda n: [Reading("bad", "21.5")],
        "bytes": lambda n: [Reading("bad", b"\\x00")],
        "decimal_snan": lambda n: [Reading("bad", Decimal("sNaN"))],
        "decimal_huge": lambda n: [Reading("bad", Decimal("1e999"))],
        "complex": lambda n: [Reading("bad", 1j)],
        "list": lambda n: [Reading("bad", [1])],
        "dict": lambda n: [Reading("bad", {"a": 1})],
        "object": lambda n: [Reading("bad", Opaque())],
        "big_int": lambda n: [Reading("bad", 2**64)],
        "quantity_int": lambda n: [Reading(5, 1)],
        "unit_bytes": lambda n: [Reading("bad", 1, b"C")],
        "surrogate": lambda n: [Reading("\\ud800", 1)],
        "not_a_reading": lambda n: [("bad", 1)],
        "duplicate": lambda n: [Reading("good", -1)],
        "none": lambda n: [Reading("bad", None)],
        "nan": lambda n: [Reading("bad", float("nan"))],
        "inf": lambda n: [Reading("bad", float("-inf"))],
        # converted, and delivered
        "decimal": lambda n: [Reading("conv", Decimal("21.37"))],
        "fraction": lambda n: [Reading("conv", Fraction(1, 4))],
        "int_enum": lambda n: [Reading("conv", Level.HIGH)],
        "float_subclass": lambda n: [Reading("conv", Celsius(3.5))],
    }
    JUNK = {"not_a_list": "21.5", "none_result": None}


    @dataclass(frozen=True)
    class BadConfig(SensorConfig):
        bad: str = "str"
        count_file: str = ""
        reads: int = 10**9


    class BadValues(Sensor):
        type_name = "badvalues"
        Config = BadConfig

        def open(self):
            self.n = 0

        def read(self):
            kinds = list(EXTRA) if self.config.bad == "every" else [self.config.bad]
            kind = kinds[self.n % len(kinds)]
            n = self.n
            self.n += 1
            if self.config.count_file:
                with open(self.config.count_file, "a") as f:
                    f.write(f"{n}\\n" if n < self.config.reads else "over\\n")
            if n >= self.config.reads:
                return []  # done: a read cut off by SIGTERM loses nothing
            if kind in JUNK:
                return JUNK[kind]
            return [Reading("good", n), *EXTRA[kind](n)]


    @sensord.hookimpl
    def sensord_register_sensors():
        return [BadValues]
''')

#: Bad values: dropped, one WARNING per kind and sensor, the good channel goes on.
BAD = ["str", "bytes", "decimal_snan", "decimal_huge", "complex", "list", "dict", "object", "big_int",
       "quantity_int", "unit_bytes", "surrogate", "not_a_reading", "duplicate"]
#: No value this time: dropped, one INFO line per sensor and quantity.
NO_VALUE = ["none", "nan", "inf"]
#: Other real numbers: converted and delivered.
CONVERTED = {"decimal": 21.37, "fraction": 0.25, "int_enum": 7, "float_subclass": 3.5}
#: read() returns no list at all: nothing of that read goes through, one WARNING.
JUNK = ["not_a_list", "none_result"]


def config_with_plugin(tmp_path: Path, port: int, sensors: list[str], *, interval_s: float = 0.05,
                       reads: int = 10**9) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "badvalues.py").write_text(PLUGIN)
    cfg = write_config(tmp_path / "s.toml", port=port, sensors=1, interval_s=interval_s, max_age_s=0.3,
                       commit_interval_s=0.1)
    text = cfg.read_text().replace("[plugins]\ndirs = []", f'[plugins]\ndirs = ["{plugins}"]')
    for kind in sensors:
        text += (f'[[sensor]]\nname = "b_{kind}"\ntype = "badvalues"\ninterval_s = {interval_s}\n'
                 f'bad = "{kind}"\ncount_file = "{tmp_path / ("reads_" + kind)}"\nreads = {reads}\n')
    cfg.write_text(text)
    return cfg


def running(node: Node) -> bool:
    """True while the daemon runs; AssertionError with its log once it has exited (fail fast)."""
    assert node.proc is not None
    if node.proc.poll() is not None:
        raise AssertionError(f"the daemon exited with {node.proc.returncode}:\n{node.log()}")
    return True


def reads_of(tmp_path: Path, kind: str, *, over: bool = False) -> int:
    """How many reads returned a good reading (with `over`: reads of any kind) so far."""
    path = tmp_path / f"reads_{kind}"
    lines = path.read_text().split() if path.exists() else []
    return len(lines) if over else len([line for line in lines if line != "over"])


def values(rows: list[dict[str, object]], sensor: str, quantity: str) -> list[object]:
    return [r["value"] for r in rows if r["sensor"] == sensor and r["quantity"] == quantity]


def rows_with_quantity(messages: list) -> list[dict[str, object]]:  # type: ignore[type-arg]
    from sensord.encoding import decode

    batches = {}
    for m in messages:
        if m.topic.endswith("/data"):
            batch = decode(m.payload)
            batches[batch.seq] = batch
    return [{"sensor": s.sensor, "quantity": s.quantity, "value": s.value}
            for _, batch in sorted(batches.items()) for s in batch.samples]


def test_every_bad_value_is_dropped_and_named_once_the_rest_delivered_exactly_once(
        broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    kinds = [*BAD, *NO_VALUE, *CONVERTED, *JUNK, "every"]
    # Two full turns of the `every` sensor: each kind read twice. Past that, reads return nothing,
    # and one such read on every sensor means every good reading has reached the daemon.
    reads = 2 * (len(BAD) + len(NO_VALUE) + len(CONVERTED))
    cfg = config_with_plugin(tmp_path, broker.port, kinds, reads=reads)
    with Subscription(broker, "sensord/n1/+") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        wait_until(lambda: running(node) and all(reads_of(tmp_path, k, over=True) > reads for k in kinds), 20,
                   f"{reads} reads of every sensor")
        code, _ = node.stop()
        assert code == 0, node.log()
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    log = node.log()
    assert "Traceback" not in log, log
    rows = rows_with_quantity(sub.messages)
    for kind in [*BAD, *NO_VALUE, *CONVERTED, "every"]:
        good = values(rows, f"b_{kind}", "good")
        assert len(good) == reads_of(tmp_path, kind) == reads, f"{kind}: {len(good)} good readings delivered"
        assert_gapless(good)  # type: ignore[arg-type]
        assert values(rows, f"b_{kind}", "bad") == [], kind
    for kind, expected in CONVERTED.items():
        converted = values(rows, f"b_{kind}", "conv")
        assert converted == [expected] * reads_of(tmp_path, kind), kind
        assert all(type(v) is type(expected) for v in converted), kind
    for kind in JUNK:
        assert reads_of(tmp_path, kind) >= 2 and not [r for r in rows if r["sensor"] == f"b_{kind}"], kind
    warned = [line for line in log.splitlines() if line.startswith("WARNING") and "dropped (logged once" in line]
    for kind in [*BAD, *JUNK]:
        mine = [line for line in warned if f'sensor "b_{kind}" (badvalues) of plugin "badvalues"' in line]
        assert len(mine) == 1, (kind, mine)
    # The `every` sensor: one line per kind, not per read.
    every = [line for line in warned if 'sensor "b_every"' in line]
    assert len(every) == len(BAD), every
    for kind in NO_VALUE:
        told = [line for line in log.splitlines() if line.startswith("INFO")
                and f'sensor "b_{kind}" (badvalues) of plugin "badvalues": no value for "bad"' in line]
        assert len(told) == 1, (kind, told)
    assert re.search(r'sensor "b_str" .*: "bad": value \'21\.5\' is str, expected a number \(int, float\) '
                     r"or a bool: dropped \(logged once per kind", log), log
    assert "value Decimal('sNaN') (decimal.Decimal) cannot be converted to a number" in log
    assert 'read() returned "good" more than once: all but the first dropped' in log


STAGED = {
    "str": b'[["c0","value","21.5","",1700000000.0],["c0","value",41,"",1700000000.5]]',
    "null": b'[["c0","value",null,"",1700000000.0],["c0","value",41,"",1700000000.5]]',
    "list": b'[["c0","value",[1],"",1700000000.0],["c0","value",41,"",1700000000.5]]',
    "big_int": b'[["c0","value",' + str(2**70).encode() + b',"",1700000000.0],["c0","value",41,"",1700000000.5]]',
    "bad_row": b'[["c0","value"],["c0","value",41,"",1700000000.5]]',
    "not_json": b"\xff\x00garbage",
    "not_a_list": b'{"c0": 1}',
}


@pytest.mark.parametrize("kind", STAGED)
def test_a_start_survives_anything_staged(broker: Mosquitto, nodes: list[Node], tmp_path: Path, kind: str) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, interval_s=0.05, max_age_s=0.2)
    buffer = Buffer.open(str(tmp_path / "buffer.db"), max_bytes=10_000_000)
    try:
        assert buffer.stage(STAGED[kind], readings=2)
        if kind in ("not_json", "not_a_list"):  # a good chunk after the bad one still goes out
            assert buffer.stage(json.dumps([["c0", "value", 41, "", 1700000000.5]]).encode(), readings=1)
    finally:
        buffer.close()
    with Subscription(broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: running(node) and len([r for r in readings(msgs) if r["value"] != 41]) >= 5, 10)
        code, _ = node.stop()
        assert code == 0, node.log()
    rows = readings(sub.messages)
    assert [r["value"] for r in rows if r["ts"] == 1700000000.5] == [41]  # the good staged reading, once
    assert_gapless([r["value"] for r in rows if r["ts"] != 1700000000.5])
    log = node.log()
    assert "Traceback" not in log, log
    if kind in ("not_json", "not_a_list"):
        assert "dropping a staged chunk of" in log, log
    else:
        assert "dropping 1 staged readings left by the previous run" in log, log
    assert "recovered 1 readings staged by the previous run" in log, log


def test_a_bad_value_from_a_running_daemon_never_reaches_the_staging_area(
        broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    # The restart loop: the value was staged, the daemon died, every start died on it.
    # kill -9 once the bad readings had time to be staged, then start again.
    cfg = config_with_plugin(tmp_path, broker.port, ["str", "decimal_snan"])
    node = Node(cfg).start()
    nodes.append(node)
    wait_until(lambda: running(node) and reads_of(tmp_path, "str") >= 10, 10, "10 reads")
    node.signal(signal.SIGSTOP)  # no seal between the last stage and the kill
    node.kill9()
    with Subscription(broker, "sensord/n1/data") as sub:
        again = Node(cfg).start()
        nodes.append(again)
        sub.wait_for(lambda msgs: running(again) and len(values(rows_with_quantity(msgs), "b_str", "good")) >= 5, 10)
        assert again.stop()[0] == 0
    assert "Traceback" not in again.log()


FILTER_PLUGIN = textwrap.dedent('''
    """A drop-in filter that breaks odd values: a str for one channel kind, a Decimal for the other."""

    from decimal import Decimal

    import sensord
    from sensord.filters import Filter


    class Breaker(Filter):
        def __init__(self, kind):
            self.kind = kind

        def process(self, value, ts, force=False):
            if value % 2 == 0:
                return value
            return str(value) if self.kind == "str" else Decimal(value)


    @sensord.hookimpl
    def sensord_register_filters():
        return {"breaker": lambda arg, path: Breaker(arg)}
''')


def test_a_plugin_filters_bad_output_costs_only_that_reading(broker: Mosquitto, nodes: list[Node],
                                                             tmp_path: Path) -> None:
    # The scheduler's check comes before the filters: the daemon checks again when it stages
    # and when it seals, so a filter returning a str or a Decimal costs that reading only.
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "breaker.py").write_text(FILTER_PLUGIN)
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=2, interval_s=0.05, max_age_s=0.3,
                       commit_interval_s=0.1)
    text = cfg.read_text().replace("[plugins]\ndirs = []", f'[plugins]\ndirs = ["{plugins}"]')
    text = text.replace('name = "c0"\n', 'name = "c0"\nfilters = [{breaker = "str"}]\n')
    text = text.replace('name = "c1"\n', 'name = "c1"\nfilters = [{breaker = "decimal"}]\n')
    cfg.write_text(text)
    with Subscription(broker, "sensord/n1/+") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: running(node) and len(readings(msgs)) >= 20, 10)
        assert node.stop()[0] == 0, node.log()
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    rows = readings(sub.messages)
    for sensor in ("c0", "c1"):
        got = [r["value"] for r in rows if r["sensor"] == sensor]
        assert got == list(range(0, 2 * len(got), 2)), (sensor, got)
    log = node.log()
    assert "Traceback" not in log, log
    assert log.count("dropping a reading no encoding can carry (once per channel)") == 2, log
