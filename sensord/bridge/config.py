"""The bridge's config file: `[mqtt]` and `[plugins]` as for a node, and the `[bridge]` table.

Parsed with the same helpers as the node's config (`sensord.schema`), so every error is one line
naming the file and the key path, with a did-you-mean for unknown keys and sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import MqttConfig, PluginsConfig
from ..errors import ConfigError
from ..schema import build_options, show, suggest
from ..sensor import field_range

#: The sections a bridge config may have.
BRIDGE_SECTIONS = ("bridge", "mqtt", "plugins")
DEFAULT_BRIDGE_PATH = "/etc/sensord/bridge.toml"
_TOPIC_FORBIDDEN = set("+#\0")


@dataclass(frozen=True)
class BridgeConfig:
    """The `[bridge]` table. Outputs are off when empty; `"-"` is stdout."""

    client_id: str = "sensord-bridge"
    session_expiry_s: int = field_range(86400, ge=0, le=4294967295)
    state_dir: str = "/var/lib/sensord-bridge"
    nodes: tuple[str, ...] = ()
    line_protocol: str = "-"
    measurement: str = "sensord"
    json_lines: str = ""
    out_prefix: str = ""
    shared_group: str = ""
    bad_input_log_interval_s: float = field_range(60.0, gt=0)

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id: expected a non-empty client id, found \"\"")
        if not self.state_dir:
            raise ValueError("state_dir: expected a directory, found \"\"")
        for i, node in enumerate(self.nodes):
            if not node or set(node) & (_TOPIC_FORBIDDEN | {"/"}):
                raise ValueError(f"nodes[{i}]: expected a node id without '/', '+' or '#', found {show(node)}")
        if not self.measurement or "\n" in self.measurement:
            raise ValueError(f"measurement: expected a non-empty one-line name, found {show(self.measurement)}")
        if self.out_prefix and (self.out_prefix.startswith("/") or self.out_prefix.endswith("/")
                                or set(self.out_prefix) & _TOPIC_FORBIDDEN):
            raise ValueError(f"out_prefix: expected a topic without wildcards or leading or trailing '/', "
                             f"found {show(self.out_prefix)}")
        if self.shared_group and set(self.shared_group) & (_TOPIC_FORBIDDEN | {"/"}):
            raise ValueError(f"shared_group: expected a name without '/', '+' or '#', found {show(self.shared_group)}")
        if self.line_protocol == self.json_lines == "-":
            raise ValueError("json_lines: line_protocol already writes to stdout (\"-\"); give json_lines a file")
        if self.json_lines and self.json_lines == self.line_protocol:
            raise ValueError(f"json_lines: expected another file than line_protocol's, found {show(self.json_lines)}")
        if not (self.line_protocol or self.json_lines or self.out_prefix):
            raise ValueError("line_protocol: every output is off; set line_protocol, json_lines or out_prefix")


@dataclass(frozen=True)
class BridgeFile:
    """A parsed bridge config: where it came from and its three sections."""

    file: str
    bridge: BridgeConfig
    mqtt: MqttConfig
    plugins: PluginsConfig


def parse_bridge_config(doc: Mapping[str, Any], file: str) -> BridgeFile:
    """The bridge config in `doc` (from `sensord.config.read_toml`); ConfigError naming file and key."""
    for key in doc:
        if key not in BRIDGE_SECTIONS:
            raise ConfigError(f"{file}: {key}: unknown section for a bridge config{suggest(key, BRIDGE_SECTIONS)}")
    bridge: BridgeConfig = build_options(BridgeConfig, doc.get("bridge", {}), "bridge", file)
    mqtt: MqttConfig = build_options(MqttConfig, doc.get("mqtt", {}), "mqtt", file)
    plugins: PluginsConfig = build_options(PluginsConfig, doc.get("plugins", {}), "plugins", file)
    return BridgeFile(file=file, bridge=bridge, mqtt=mqtt, plugins=plugins)
