"""The sections of the config file as frozen dataclasses, each checking itself in `__post_init__`
(a ValueError whose message starts with the key it is about). `parse` builds them from TOML."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from ..filters import ChannelFilters
from ..schema import show
from ..sensor import SensorConfig, field_range

_TOPIC_FORBIDDEN = set("/+#\0")


def _hostname() -> str:
    # What socket.gethostname() returns on Linux (glibc reads uname), without importing socket.
    return os.uname().nodename.split(".")[0] or "sensord"


@dataclass(frozen=True)
class NodeConfig:
    id: str = field(default_factory=_hostname)

    def __post_init__(self) -> None:
        check_topic_level("id", self.id)


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
    # What reaches the SD card: "undelivered" (only what the broker did not acknowledge within
    # commit_interval_s, or everything while the link is down) or "interval" (every reading,
    # within commit_interval_s, whatever the link does). See sensord.buffer.
    durability: Literal["undelivered", "interval"] = "undelivered"

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError('path: expected the path of the buffer file, found ""')


@dataclass(frozen=True)
class HomeAssistantConfig:
    """Home Assistant MQTT discovery (sensord.homeassistant): on by default, so a node's sensors
    appear in Home Assistant with no YAML; costs a retained device message when the channels
    change and a small state message after each delivery."""

    discovery: bool = True
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        prefix = self.discovery_prefix
        if not prefix or prefix.startswith("/") or prefix.endswith("/") or set(prefix) & {"+", "#", "\0"}:
            raise ValueError(f"discovery_prefix: expected a topic without wildcards or leading or trailing '/' "
                             f"(Home Assistant's default is \"homeassistant\"), found {show(prefix)}")


@dataclass(frozen=True)
class ClockConfig:
    """Whether the wall clock is synchronised (sensord.timebase, docs/clock.md): where to learn
    it, and how long to hold batches for it so that their readings get their true time."""

    sync_source: Literal["auto", "kernel", "timesyncd", "none"] = "auto"
    sync_file: str = "/run/systemd/timesync/synchronized"
    sync_wait_s: float = field_range(300.0, ge=0)

    def __post_init__(self) -> None:
        if not self.sync_file.startswith("/"):
            raise ValueError(f"sync_file: expected an absolute path, found {show(self.sync_file)}")


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
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    sensors: tuple[SensorSpec, ...] = ()

    @property
    def enabled_sensors(self) -> tuple[SensorSpec, ...]:
        return tuple(s for s in self.sensors if s.enabled)


#: The tables of the document besides `[[sensor]]`, by name.
SECTIONS: dict[str, type] = {
    "node": NodeConfig, "mqtt": MqttConfig, "batch": BatchConfig, "buffer": BufferConfig,
    "plugins": PluginsConfig, "hardware": HardwareConfig, "homeassistant": HomeAssistantConfig,
    "clock": ClockConfig,
}
#: The keys every `[[sensor]]` table may have; the rest are the sensor type's `Config` options.
SENSOR_KEYS = ("name", "type", "interval_s", "enabled", "timeout_s", "filters", "channel_filters", "urgent")


def check_topic_level(key: str, value: str) -> None:
    """ValueError `<key>: expected ...` unless `value` can be one level of an MQTT topic."""
    if not value or set(value) & _TOPIC_FORBIDDEN:
        raise ValueError(f"{key}: expected a non-empty name without '/', '+' or '#', found {show(value)}")
