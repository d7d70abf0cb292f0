"""The TOML and message helpers every config-reading stage shares. A leaf: imports only `errors`.

- Messages: `show()` writes a value as TOML would (`"x"`, `5`, `[1, 2]`, `a table`),
  `did_you_mean()` / `suggest()` add a hint for a misspelt key, `join_key()` builds key paths
  (`sensor[2].address`).
- Building: `build_options()` turns a TOML table into a dataclass, checking field types and the
  `metadata` bounds of `field_range()`, with one-line errors `<file>: <key path>: expected ...,
  found ...`; `check_value()`, `convert()` and `describe()` are its steps.
- Writing TOML: `toml_value()` and `toml_key()` (for `sensord detect`'s `[[sensor]]` blocks).

It sits beside `errors.py` rather than in the `config` package because `filters` uses it too
and `config` imports `filters`: importing `sensord.config.<anything>` runs the config package's
`__init__`, which would import `filters` again while `filters` is half-initialised.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# ---------------------------------------------------------------------------------------------
# Messages


def show(value: Any) -> str:
    """A value as it would look in TOML, for messages: `"x"`, `5`, `[1, 2]`, `a table`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        import json  # here: a valid config is read without it (the messages of errors need it)

        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`, did you mean "x"?` when one of `known` is close to `word`, else ""."""
    import difflib  # here: only an error's did-you-mean needs it (0.2 MiB)

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f", did you mean {show(close[0])}?" if close else ""


def suggest(word: str, known: Iterable[str]) -> str:
    """`, did you mean "x"?` or, with nothing close, the list of what is allowed."""
    known = list(known)
    return did_you_mean(word, known) or f"; expected one of: {', '.join(sorted(known))}"


def join_key(path: str, key: str) -> str:
    """`path.key`, or `key` at the top level (`path` empty)."""
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------------------------
# The generic table → dataclass builder, for sections, sensors' and plugins' Config dataclasses


def build_options(cls: type[Any], table: Any, path: str, file: str, *, also_known: tuple[str, ...] = ()) -> Any:
    """Build dataclass `cls` from a TOML table, with sensord's one-line errors.

    `also_known` are keys of the same table that the caller handles (no "unknown key" for them,
    and they count for the did-you-mean)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: {path}: expected a table, found {show(table)}")
    hints, fields = _init_fields(cls)  # type: ignore[arg-type]  # mypy does not see type[Any] as Hashable
    known = [*fields, *also_known]
    for key in table:
        if key not in fields:
            raise ConfigError(f"{file}: {join_key(path, key)}: unknown key{suggest(key, known)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key_path = join_key(path, name)
        if name in table:
            kwargs[name] = check_value(hints[name], table[name], key_path, file, f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{file}: {key_path}: required key missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        # __post_init__ messages start with the key they are about ("cert_file and ...").
        raise ConfigError(f"{file}: {join_key(path, str(exc))}") from None


@functools.lru_cache(maxsize=256)
def _init_fields(cls: type[Any]) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """The resolved type hints and the `__init__` fields of dataclass `cls`, once per class:
    `get_type_hints()` evaluates every annotation string again on each call, and a config builds
    the same sensor Config class once per `[[sensor]]` (bounded: reloads bring new drop-in classes)."""
    hints = typing.get_type_hints(cls)
    return hints, {f.name: f for f in dataclasses.fields(cls) if f.init}


def check_value(tp: Any, value: Any, path: str, file: str,
                bounds: Mapping[str, Any] | None = None) -> Any:
    """`value` converted to type `tp` and checked against `bounds` (`ge`, `gt`, `le`, `lt`), or a
    ConfigError `<file>: <path>: expected <tp and bounds>, found <value>`."""
    ok, converted = convert(tp, value, path, file)
    if ok and bounds:
        ok = _in_bounds(converted, bounds)
    if not ok:
        if path.endswith("address") and tp is int and isinstance(value, int) and not isinstance(value, bool):
            raise ConfigError(f"{file}: {path}: expected {_describe_address(bounds or {})}, found 0x{value:02x}")
        expected = describe(tp, bounds)
        if isinstance(value, float) and not math.isfinite(value):
            expected = expected.replace("a number", "a finite number", 1)
        raise ConfigError(f"{file}: {path}: expected {expected}, found {show(value)}")
    return converted


def _describe_address(bounds: Mapping[str, Any]) -> str:
    """I2C addresses are written in hex, as datasheets and i2cdetect do."""
    low = bounds.get("ge", bounds["gt"] + 1 if "gt" in bounds else None)
    high = bounds.get("le", bounds["lt"] - 1 if "lt" in bounds else None)
    if low is not None and low == high:
        return f"0x{low:02x}"
    if low is not None and high is not None:
        return f"an address from 0x{low:02x} to 0x{high:02x}"
    return "an I2C address"


def convert(tp: Any, value: Any, path: str, file: str) -> tuple[bool, Any]:
    """`(True, value as tp)` when the TOML value fits type hint `tp`, else `(False, None)`.

    Nested lists and tables are checked too, raising ConfigError at their own key path."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (types.UnionType, typing.Union):
        for arg in args:
            if arg is type(None):
                continue
            ok, converted = convert(arg, value, path, file)
            if ok:
                return True, converted
        return False, None
    if origin is Literal:
        hit = [a for a in args if a == value and type(a) is type(value)]
        return (True, hit[0]) if hit else (False, None)
    if origin in (list, tuple):
        if not isinstance(value, list):
            return False, None
        items = [check_value(args[0], item, f"{path}[{i}]", file) for i, item in enumerate(value)]
        return True, (tuple(items) if origin is tuple else items)
    if origin is dict or tp is dict:
        return isinstance(value, dict), value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return False, None
        # is_dataclass() narrows to "a dataclass or an instance of one"; here it is the class.
        return True, build_options(tp, value, path, file)  # type: ignore[arg-type]
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        # inf and nan are valid TOML, but no setting means anything with them ("every inf s").
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return ok, (float(value) if ok else None)
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _in_bounds(value: Any, bounds: Mapping[str, Any]) -> bool:
    checks = {"ge": lambda a, b: a >= b, "gt": lambda a, b: a > b,
              "le": lambda a, b: a <= b, "lt": lambda a, b: a < b}
    return all(checks[k](value, b) for k, b in bounds.items() if k in checks)


def describe(tp: Any, bounds: Mapping[str, Any] | None = None) -> str:
    """What a value of type hint `tp` within `bounds` is, in words: `a number > 0 and <= 10`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        parts = [describe(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
    elif origin is Literal:
        text = "one of " + ", ".join(show(a) for a in args)
    elif origin in (list, tuple):
        inner = describe(args[0])
        text = f"a list of {inner.removeprefix('a ').removeprefix('an ')}s"
    elif dataclasses.is_dataclass(tp) or origin is dict or tp is dict:
        text = "a table"
    else:
        text = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
            tp, getattr(tp, "__name__", str(tp)))
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for key, bound in (bounds or {}).items():
        if key in symbols:
            text += f" {symbols[key]} {show(bound)}"
    if bounds and sum(k in symbols for k in bounds) == 2:
        text = text.replace(" <", " and <", 1)
    return text


# ---------------------------------------------------------------------------------------------
# Writing TOML


def toml_value(value: Any) -> str:
    """A value written as TOML source; ValueError for a non-finite float, TypeError for a type
    TOML cannot hold (tables included: write those as sections)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} in TOML config")
        return repr(value)
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} in TOML config")


def toml_key(key: str) -> str:
    """A key as written in TOML (and in key paths): bare when it can be, else quoted (`"pm2.5"`)."""
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)
