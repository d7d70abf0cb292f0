"""docs/plugins.md stays true to the code.

- Every hook spec in `sensord/hookspecs.py` has a `### <hook name>` section showing its signature,
  and no section documents a hook that does not exist.
- Every fixture of sensord's pytest plugin is in the fixture table.
- Every code block that starts with `# From <file>` is still an excerpt of that file: its lines
  appear there in the same order, consecutive except across an elision line (`# ...` or `...`).
- Every `# drop-in: <name>.py` example loads as a drop-in plugin and does what the text says.
- Every TOML block parses; every other Python block compiles.
"""

from __future__ import annotations

import ast
import math
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from sensord.encoding import ENCODINGS, Batch, BatchData, DecodeError, EncodeError, Encoding, decode, detect
from sensord.errors import ConfigError
from sensord.plugins import PluginHost, get_plugin_manager
from sensord.sensor import Sample
from sensord.testing.pytest_plugin import SensorHarness

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_ELISION = {"# ...", "..."}


@dataclass(frozen=True)
class Block:
    """A fenced code block of the document: its language, text and first line number."""

    lang: str
    code: str
    line: int

    @property
    def first(self) -> str:
        return self.code.split("\n", 1)[0]

    def __str__(self) -> str:
        return f"{DOC.name} line {self.line} ({self.first!r})"


@cache
def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


@cache
def blocks() -> tuple[Block, ...]:
    text = doc_text()
    return tuple(Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(text))


def sections() -> dict[str, str]:
    """`### heading` -> its text up to the next heading of level 3 or above."""
    parts = re.split(r"^(#{1,3} .*)$", doc_text(), flags=re.MULTILINE)
    return {head.removeprefix("### ").strip(): body for head, body in zip(parts[1::2], parts[2::2], strict=True)
            if head.startswith("### ")}


def hook_specs() -> dict[str, str]:
    """Hook name -> its signature as the docs must show it: `def name(args) -> returns:`."""
    tree = ast.parse((ROOT / "sensord" / "hookspecs.py").read_text(encoding="utf-8"))
    specs = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(ast.unparse(d) == "hookspec" for d in node.decorator_list):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
            specs[node.name] = f"def {node.name}({ast.unparse(node.args)}){returns}:"
    return specs


def fixture_names() -> list[str]:
    """The fixtures `sensord/testing/pytest_plugin.py` defines."""
    tree = ast.parse((ROOT / "sensord" / "testing" / "pytest_plugin.py").read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d).startswith("pytest.fixture") for d in node.decorator_list)]


# -- hooks and fixtures ------------------------------------------------------------------------


def test_hookspecs_are_parsed() -> None:
    specs = hook_specs()
    assert {"sensord_register_sensors", "sensord_register_device_models"} <= set(specs)
    assert specs["sensord_register_sensors"] == "def sensord_register_sensors() -> list[type[Sensor]]:"


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_every_hook_has_a_section_with_its_signature(hook: str) -> None:
    documented = sections()
    assert hook in documented, f"{DOC.name}: no '### {hook}' section for the hook spec in sensord/hookspecs.py"
    assert hook_specs()[hook] in documented[hook], f"{DOC.name}: section {hook} does not show {hook_specs()[hook]}"


def test_no_section_for_a_hook_that_does_not_exist() -> None:
    documented = {name for name in sections() if name.startswith("sensord_")}
    assert documented <= set(hook_specs())


@pytest.mark.parametrize("fixture", fixture_names())
def test_every_fixture_is_in_the_table(fixture: str) -> None:
    assert f"| `{fixture}` |" in doc_text(), f"{DOC.name}: fixture {fixture} is not in the fixture table"


def test_fixtures_are_parsed() -> None:
    assert {"fake_i2c_bus", "fake_hardware", "mqtt_broker", "sensor_harness"} <= set(fixture_names())


# -- code blocks -------------------------------------------------------------------------------


def excerpt_problem(excerpt: list[str], source: list[str]) -> str | None:
    """None if `excerpt` is in `source` (see the module docstring), else the first line that is
    not where it should be."""
    furthest = [0]

    def fits(i: int, start: int, may_skip: bool) -> bool:
        while i < len(excerpt) and excerpt[i].strip() in _ELISION:
            i, may_skip = i + 1, True
        if i == len(excerpt):
            return True
        furthest[0] = max(furthest[0], i)
        want = excerpt[i].rstrip()
        candidates = range(start, len(source)) if may_skip else range(start, min(start + 1, len(source)))
        return any(source[j].rstrip() == want and fits(i + 1, j + 1, False) for j in candidates)

    return None if fits(0, 0, True) else excerpt[furthest[0]]


def test_excerpt_checker() -> None:
    source = ["a", "b", "c", "d", "b", "e"]
    assert excerpt_problem(["b", "c"], source) is None
    assert excerpt_problem(["a", "# ...", "b", "e"], source) is None  # the second "b"
    assert excerpt_problem(["a", "c"], source) == "c"  # "b" left out without an elision
    assert excerpt_problem(["c", "b"], source) == "b"
    assert excerpt_problem(["x"], source) == "x"


def excerpts() -> list[Block]:
    return [b for b in blocks() if b.first.startswith("# From ")]


@pytest.mark.parametrize("block", excerpts(), ids=str)
def test_excerpts_are_still_in_their_files(block: Block) -> None:
    path = ROOT / block.first.removeprefix("# From ").strip()
    assert path.is_file(), f"{block}: no file {path}"
    problem = excerpt_problem(block.code.rstrip("\n").split("\n")[1:], path.read_text(encoding="utf-8").split("\n"))
    assert problem is None, f"{block}: this line is not where it should be in {path.name}: {problem!r}"


def test_the_example_plugin_is_quoted() -> None:
    quoted = {b.first.removeprefix("# From ") for b in excerpts()}
    assert {"docs/example-plugin/sensord_tmp117/__init__.py", "docs/example-plugin/pyproject.toml",
            "docs/example-plugin/tests/test_tmp117.py"} <= quoted


@pytest.mark.parametrize("block", [b for b in blocks() if b.lang == "toml"], ids=str)
def test_toml_blocks_parse(block: Block) -> None:
    tomllib.loads(block.code)


@pytest.mark.parametrize("block", [b for b in blocks() if b.lang == "python" and not b.first.startswith("# From ")],
                         ids=str)
def test_python_blocks_compile(block: Block) -> None:
    compile(block.code, str(block), "exec")


# -- the drop-in examples ------------------------------------------------------------------------


def drop_in(tmp_path: Path, name: str) -> PluginHost:
    """Load the `# drop-in: <name>` example as a drop-in plugin."""
    (block,) = [b for b in blocks() if b.first == f"# drop-in: {name}"]
    (tmp_path / name).write_text(block.code, encoding="utf-8")
    host = get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert host.failed == []
    return host


def test_spike_filter_example(tmp_path: Path) -> None:
    from sensord.config import parse_config
    from sensord.filters import build_chain

    host = drop_in(tmp_path, "spike.py")
    chain = build_chain([{"spike": {"max_step": 5.0, "confirm": 2}}], path="sensor[0].filters", file="node.toml",
                        registry=host.filter_types)
    values = [20.0, 21.0, 40.0, 22.0, 40.0, 41.0, True]
    assert [chain.process(v, float(t)) for t, v in enumerate(values)] == [20.0, 21.0, None, 22.0, None, 41.0, True]
    assert chain.resolution(0.01) == 0.01

    config = '[[sensor]]\nname = "air"\ntype = "sim"\ninterval_s = 10\nfilters = [{spike = {max_step = 0}}]\n'
    with pytest.raises(ConfigError) as excinfo:
        parse_config(tomllib.loads(config), "node.toml", host.sensor_types, filter_types=host.filter_types)
    message = f"sensord: {excinfo.value}"
    assert message == "sensord: node.toml: sensor[0].filters[0].spike.max_step: expected a number > 0, found 0"
    assert f"`{message}`" in doc_text()


def test_lines_encoding_example(tmp_path: Path, sensor_harness: SensorHarness) -> None:
    from sensord_plugins.sim import SimSensor

    host = drop_in(tmp_path, "lines.py")
    lines: Encoding = host.encodings["lines"]
    samples = [Sample("air", "temperature", 21.5, "°C", 1700000000.25),
               Sample("door", "contact", True, "", 1700000000.0), Sample("air", "count", 7, "", 1700000001.0)]
    payload = lines.encode(BatchData("barn", 7, samples))
    assert lines.matches(payload[:16])
    assert lines.decode(payload) == Batch("barn", 7, sorted(samples, key=lambda s: s.ts))
    assert decode(payload, {**ENCODINGS, "lines": lines}).samples[0].value is True
    with pytest.raises(DecodeError):
        detect(payload)  # no built-in encoding claims it
    for built_in in ENCODINGS.values():
        assert not lines.matches(built_in.encode(BatchData("barn", 7, samples))[:16])
    for broken in (payload[:-3], payload + b"\n[1]", b"sensord-lines 1\n\xff"):
        with pytest.raises(DecodeError):
            lines.decode(broken)
    with pytest.raises(EncodeError):
        lines.encode(BatchData("barn", 8, [Sample("air", "temperature", math.nan, "°C", 1700000000.0)]))

    # Through the daemon's scheduler, filters and encoder.
    result = sensor_harness(SimSensor, {"signal": "counter"}, reads=5, encoding=lines)
    assert result.encoding == "lines" and result.payload.startswith(b"sensord-lines 1\n") and result.lossless
