"""TOML configuration into frozen dataclasses.

Every error is one line: `<file>: <key path>: <what was expected>, found <what was there>`.
Key paths are written as in TOML, with 0-based indexes into arrays of tables: `sensor[2].interval_s`.

Parsing happens in two steps because the plugin section decides which sensor types exist:
`read_toml()` → `parse_plugins()` → (load plugins) → `parse_config()`.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from ..filters import ChannelFilters, FilterFactory, build_sensor_filters, builtin_filters
from ..schema import build_options, check_value, did_you_mean, show, suggest
from ..sensor import Sensor, SensorConfig, field_range

DEFAULT_PATH = "/etc/sensord/sensord.toml"
ENV_VAR = "SENSORD_CONFIG"
_TOPIC_FORBIDDEN = set("/+#\0")


def _hostname() -> str:
    return socket.gethostname().split(".")[0] or "sensord"


# ---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class NodeConfig:
    id: str = field(default_factory=_hostname)

    def __post_init__(self) -> None:
        _check_topic_level("id", self.id)


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")


@dataclass(frozen=True)
class MqttConfig:
    host: str = "localhost"
    port: int = field_range(1883, ge=1, le=65535)
    client_id: str | None = None
    topic_prefix: str = "sensord"
    username: str | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = field_range(60, ge=1, le=65535)
    qos: Literal[0, 1] = 1
    mode: Literal["persistent", "duty_cycle"] = "persistent"
    reconnect_max_s: float = field_range(60.0, ge=1)
    stop_timeout_s: float = field_range(10.0, ge=0)

    def __post_init__(self) -> None:
        if not self.topic_prefix or self.topic_prefix.startswith("/") or self.topic_prefix.endswith("/"):
            raise ValueError(f"topic_prefix: expected a topic without leading or trailing '/', "
                             f"found {show(self.topic_prefix)}")
        if set(self.topic_prefix) & {"+", "#"}:
            raise ValueError(f"topic_prefix: expected no wildcards, found {show(self.topic_prefix)}")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file: set username too")


@dataclass(frozen=True)
class BatchConfig:
    max_age_s: float = field_range(60.0, gt=0)
    max_readings: int = field_range(1000, ge=1)
    # 64 KiB: far below every broker's packet limit (mosquitto's is 256 MiB, AWS IoT's 128 KiB)
    # and a few seconds' transfer on a 9.6 kbit/s link.
    max_bytes: int = field_range(65536, ge=256, le=268435455)
    encoding: str = "compact"
    urgent: tuple[str, ...] = ()  # sensors whose readings seal the batch at once


@dataclass(frozen=True)
class HardwareConfig:
    fake: bool = False  # run on the device models of sensord.testing (demos, tests)


@dataclass(frozen=True)
class BufferConfig:
    path: str = "/var/lib/sensord/buffer.db"
    max_bytes: int = field_range(64 * 1024 * 1024, ge=64 * 1024)
    commit_interval_s: float = field_range(5.0, gt=0)

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError('path: expected the path of the buffer file, found ""')


@dataclass(frozen=True)
class PluginsConfig:
    dirs: tuple[str, ...] = ("/etc/sensord/plugins.d",)
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True)
class SensorSpec:
    """One `[[sensor]]` table: the keys every sensor has, plus the type's own `options`."""

    index: int
    name: str
    type: str
    interval_s: float
    options: SensorConfig
    enabled: bool = True
    timeout_s: float = 10.0
    #: The template of this sensor's filter chains; take `filters.fresh()` for each run.
    filters: ChannelFilters = field(default_factory=ChannelFilters.passthrough, compare=False)
    #: Readings that pass the filters are sent at once (the open batch is sealed).
    urgent: bool = False

    @property
    def path(self) -> str:
        return f"sensor[{self.index}]"


@dataclass(frozen=True)
class Config:
    file: str
    node: NodeConfig = field(default_factory=NodeConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    sensors: tuple[SensorSpec, ...] = ()

    @property
    def enabled_sensors(self) -> tuple[SensorSpec, ...]:
        return tuple(s for s in self.sensors if s.enabled)


_SECTIONS: dict[str, type] = {
    "node": NodeConfig, "mqtt": MqttConfig, "batch": BatchConfig, "buffer": BufferConfig,
    "plugins": PluginsConfig, "hardware": HardwareConfig,
}
_SENSOR_KEYS = ("name", "type", "interval_s", "enabled", "timeout_s", "filters", "channel_filters", "urgent")


# ---------------------------------------------------------------------------------------------
# Entry points


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
    return build_options(PluginsConfig, doc.get("plugins", {}), "plugins", file)


def parse_config(doc: Mapping[str, Any], file: str, sensor_types: Mapping[str, type[Sensor]],
                 *, type_hint: str = "", filter_types: Mapping[str, FilterFactory] | None = None) -> Config:
    """The whole document, with sensor tables checked against the registered sensor types and
    their filters against `filter_types` (default: the built-in filters).

    `type_hint` is appended to unknown-sensor-type errors (e.g. which plugins failed to load)."""
    filter_types = builtin_filters() if filter_types is None else filter_types
    known = [*_SECTIONS, "sensor"]
    for key in doc:
        if key not in known:
            raise ConfigError(f"{file}: {key}: unknown section{suggest(key, known)}")
    sections = {name: build_options(cls, doc.get(name, {}), name, file) for name, cls in _SECTIONS.items()}
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
        _check_topic_level("name", name)
    except ValueError as exc:
        raise ConfigError(f"{file}: {path}.{exc}") from None
    type_name = check_value(str, table["type"], f"{path}.type", file)
    if type_name not in sensor_types:
        known = sorted(sensor_types)
        raise ConfigError(f"{file}: {path}.type: unknown sensor type {show(type_name)}"
                          f"{did_you_mean(type_name, known)}; known types: {', '.join(known)}{type_hint}")
    if "interval_s" not in table:
        raise ConfigError(f"{file}: {path}.interval_s: required key missing")
    common = {k: table[k] for k in _SENSOR_KEYS if k in table}
    own = {k: v for k, v in table.items() if k not in _SENSOR_KEYS}
    cls = sensor_types[type_name]
    options = build_options(cls.Config, own, path, file, also_known=_SENSOR_KEYS)
    interval_s = check_value(float, common["interval_s"], f"{path}.interval_s", file, {"gt": 0})
    enabled = check_value(bool, common.get("enabled", True), f"{path}.enabled", file)
    timeout_s = check_value(float, common.get("timeout_s", 10.0), f"{path}.timeout_s", file, {"gt": 0})
    urgent = check_value(bool, common.get("urgent", False), f"{path}.urgent", file)
    filters = build_sensor_filters(common.get("filters"), common.get("channel_filters"), path=path, file=file,
                                   registry=filter_types)
    return SensorSpec(index=index, name=name, type=type_name, interval_s=interval_s, options=options,
                      enabled=enabled, timeout_s=timeout_s, filters=filters, urgent=urgent)


def _check_topic_level(key: str, value: str) -> None:
    if not value or set(value) & _TOPIC_FORBIDDEN:
        raise ValueError(f"{key}: expected a non-empty name without '/', '+' or '#', found {show(value)}")
