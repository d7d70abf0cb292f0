"""TOML configuration into frozen dataclasses.

Every error is one line: `<file>: <key path>: <what was expected>, found <what was there>`.
Key paths are written as in TOML, with 0-based indexes into arrays of tables: `sensor[2].interval_s`.

Parsing happens in two steps because the plugin section decides which sensor types exist:
`read_toml()` → `parse_plugins()` → (load plugins) → `parse_config()`.
"""

from ..schema import build_options
from .parse import DEFAULT_PATH, ENV_VAR, parse_config, parse_plugins, read_toml, resolve_path
from .sections import (
    SECTIONS,
    SENSOR_KEYS,
    BatchConfig,
    BufferConfig,
    ClockConfig,
    Config,
    HardwareConfig,
    HomeAssistantConfig,
    MqttConfig,
    NodeConfig,
    PluginsConfig,
    SensorSpec,
    TlsConfig,
)

__all__ = [
    "DEFAULT_PATH",
    "ENV_VAR",
    "SECTIONS",
    "SENSOR_KEYS",
    "BatchConfig",
    "BufferConfig",
    "ClockConfig",
    "Config",
    "HardwareConfig",
    "HomeAssistantConfig",
    "MqttConfig",
    "NodeConfig",
    "PluginsConfig",
    "SensorSpec",
    "TlsConfig",
    "build_options",
    "parse_config",
    "parse_plugins",
    "read_toml",
    "resolve_path",
]
