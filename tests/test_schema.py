"""sensord.schema: the TOML and message helpers shared by config, filters and `sensord detect`."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass

import pytest

from sensord import field_range
from sensord.errors import ConfigError
from sensord.schema import build_options, describe, did_you_mean, join_key, show, suggest, toml_key, toml_value


@pytest.mark.parametrize(("key", "written"), [
    ("temperature", "temperature"), ("pm2_5", "pm2_5"), ("co2-ppm", "co2-ppm"),
    ("pm2.5", '"pm2.5"'), ("", '""'), ("a b", '"a b"'), ("grad°", '"grad°"'), ("x\n", '"x\\n"'),
])
def test_toml_key_is_bare_when_it_can_be(key: str, written: str) -> None:
    assert toml_key(key) == written
    assert tomllib.loads(f"{written} = 1") == {key: 1}


@pytest.mark.parametrize("value", [True, 3, -0.5, 1e-9, "Dachboden \"Nord\"", [1, 2.5, "x"], ()])
def test_toml_value_reads_back(value: object) -> None:
    expected = list(value) if isinstance(value, tuple) else value
    assert tomllib.loads(f"v = {toml_value(value)}") == {"v": expected}


def test_toml_value_refuses_what_toml_cannot_hold() -> None:
    with pytest.raises(ValueError, match="cannot write nan"):
        toml_value(math.nan)
    with pytest.raises(TypeError, match="cannot write dict"):
        toml_value({"a": 1})


def test_messages() -> None:
    assert show(5.0) == "5" and show("x") == '"x"' and show({"a": 1}) == "a table" and show([1, True]) == "[1, true]"
    assert did_you_mean("intervall_s", ["interval_s", "name"]) == ', did you mean "interval_s"?'
    assert suggest("zzz", ["b", "a"]) == "; expected one of: a, b"
    assert join_key("", "mqtt") == "mqtt" and join_key("sensor[0]", "address") == "sensor[0].address"
    assert describe(float, {"gt": 0, "le": 10}) == "a number > 0 and <= 10"


@dataclass(frozen=True)
class _Options:
    window: int = field_range(5, ge=1)


def test_build_options_names_file_and_key_path() -> None:
    assert build_options(_Options, {"window": 3}, "sensor[1]", "f.toml") == _Options(window=3)
    with pytest.raises(ConfigError, match=r'^f\.toml: sensor\[1\]\.windw: unknown key, did you mean "window"\?$'):
        build_options(_Options, {"windw": 3}, "sensor[1]", "f.toml")
    with pytest.raises(ConfigError, match=r"^f\.toml: sensor\[1\]\.window: expected an integer >= 1, found 0$"):
        build_options(_Options, {"window": 0}, "sensor[1]", "f.toml")
    with pytest.raises(ConfigError, match=r"^f\.toml: sensor\[1\]\.reserved: unknown key"):
        build_options(_Options, {"reserved": 1}, "sensor[1]", "f.toml")
    assert build_options(_Options, {}, "sensor[1]", "f.toml", also_known=("name",)) == _Options()
