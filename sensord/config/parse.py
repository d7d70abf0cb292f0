"""Reading the config file and parsing it into `Config`, in two steps because the plugin section
decides which sensor types exist: `read_toml()` → `parse_plugins()` → (load plugins) →
`parse_config()`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..filters import FilterFactory, build_sensor_filters, builtin_filters
from ..schema import build_options, check_value, did_you_mean, show, suggest
from ..sensor import Sensor
from .sections import SECTIONS, SENSOR_KEYS, Config, PluginsConfig, SensorSpec, check_topic_level

DEFAULT_PATH = "/etc/sensord/sensord.toml"
ENV_VAR = "SENSORD_CONFIG"


def resolve_path(cli_value: str | None) -> str:
    """`-c FILE`, else `$SENSORD_CONFIG`, else the packaged default."""
    return cli_value or os.environ.get(ENV_VAR) or DEFAULT_PATH


def read_toml(path: str) -> dict[str, Any]:
    """Read and parse a TOML file; every failure is a one-line ConfigError."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (give one with -c FILE or "
                          f"{ENV_VAR}=FILE)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a TOML file, found a directory") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read config file: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def parse_plugins(doc: Mapping[str, Any], file: str) -> PluginsConfig:
    """Only the `[plugins]` section, needed before plugins can be loaded."""
    plugins: PluginsConfig = build_options(PluginsConfig, doc.get("plugins", {}), "plugins", file)
    return plugins


def parse_config(doc: Mapping[str, Any], file: str, sensor_types: Mapping[str, type[Sensor]],
                 *, type_hint: str = "", filter_types: Mapping[str, FilterFactory] | None = None) -> Config:
    """The whole document, with sensor tables checked against the registered sensor types and
    their filters against `filter_types` (default: the built-in filters).

    `type_hint` is appended to unknown-sensor-type errors (e.g. which plugins failed to load)."""
    filter_types = builtin_filters() if filter_types is None else filter_types
    known = [*SECTIONS, "sensor"]
    for key in doc:
        if key not in known:
            raise ConfigError(f"{file}: {key}: unknown section{suggest(key, known)}")
    sections = {name: build_options(cls, doc.get(name, {}), name, file) for name, cls in SECTIONS.items()}
    raw_sensors = doc.get("sensor", [])
    if not isinstance(raw_sensors, list):
        raise ConfigError(f"{file}: sensor: expected an array of tables ([[sensor]]), "
                          f"found {show(raw_sensors)}")
    sensors: list[SensorSpec] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw_sensors):
        spec = _build_sensor(index, table, file, sensor_types, type_hint, filter_types)
        if spec.name in seen:
            raise ConfigError(f"{file}: {spec.path}.name: expected a unique name, found "
                              f"{show(spec.name)} (also sensor[{seen[spec.name]}])")
        seen[spec.name] = index
        sensors.append(spec)
    for i, name in enumerate(sections["batch"].urgent):
        if name not in seen:
            raise ConfigError(f"{file}: batch.urgent[{i}]: expected the name of a [[sensor]], found "
                              f"{show(name)}{did_you_mean(name, seen)}")
    return Config(file=file, sensors=tuple(sensors), **sections)


def _build_sensor(index: int, table: Any, file: str, sensor_types: Mapping[str, type[Sensor]],
                  type_hint: str, filter_types: Mapping[str, FilterFactory]) -> SensorSpec:
    path = f"sensor[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: {path}: expected a table, found {show(table)}")
    for key in ("name", "type"):
        if key not in table:
            raise ConfigError(f"{file}: {path}.{key}: required key missing")
    name = check_value(str, table["name"], f"{path}.name", file)
    try:
        check_topic_level("name", name)
    except ValueError as exc:
        raise ConfigError(f"{file}: {path}.{exc}") from None
    type_name = check_value(str, table["type"], f"{path}.type", file)
    if type_name not in sensor_types:
        known = sorted(sensor_types)
        raise ConfigError(f"{file}: {path}.type: unknown sensor type {show(type_name)}"
                          f"{did_you_mean(type_name, known)}; known types: {', '.join(known)}{type_hint}")
    if "interval_s" not in table:
        raise ConfigError(f"{file}: {path}.interval_s: required key missing")
    common = {k: table[k] for k in SENSOR_KEYS if k in table}
    own = {k: v for k, v in table.items() if k not in SENSOR_KEYS}
    cls = sensor_types[type_name]
    options = build_options(cls.Config, own, path, file, also_known=SENSOR_KEYS)
    interval_s = check_value(float, common["interval_s"], f"{path}.interval_s", file, {"gt": 0})
    enabled = check_value(bool, common.get("enabled", True), f"{path}.enabled", file)
    timeout_s = check_value(float, common.get("timeout_s", 10.0), f"{path}.timeout_s", file, {"gt": 0})
    urgent = check_value(bool, common.get("urgent", False), f"{path}.urgent", file)
    filters = build_sensor_filters(common.get("filters"), common.get("channel_filters"), path=path, file=file,
                                   registry=filter_types)
    return SensorSpec(index=index, name=name, type=type_name, interval_s=interval_s, options=options,
                      enabled=enabled, timeout_s=timeout_s, filters=filters, urgent=urgent)
