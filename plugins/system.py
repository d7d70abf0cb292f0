"""Host health, type `system`: real data on any Linux box, including a Raspberry Pi.

Channels (quantity, unit):
- `cpu_temperature` (°C): from `/sys/class/thermal/thermal_zone*/temp`, preferring the zone whose
  `type` is the CPU's (`cpu-thermal` on a Pi, `x86_pkg_temp` on a PC); absent where no zone exists;
- `load_1m`: the 1-minute load average from `/proc/loadavg`;
- `memory_used` (%): `(MemTotal - MemAvailable) / MemTotal` from `/proc/meminfo`;
- `disk_used` (%): used space of the file system holding `path`, as `df` counts it;
- `uptime` (s): from `/proc/uptime`.

Example::

    [[sensor]]
    name = "host"
    type = "system"
    interval_s = 60
    path = "/"
    # channels = ["cpu_temperature", "load_1m", "memory_used", "disk_used", "uptime"]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, SensorError

ALL_CHANNELS = ("cpu_temperature", "load_1m", "memory_used", "disk_used", "uptime")
_UNITS = {"cpu_temperature": ("°C", 0.1), "load_1m": ("", 0.01), "memory_used": ("%", 0.1),
          "disk_used": ("%", 0.1), "uptime": ("s", 1.0)}
# Zone types that are the CPU itself, in order of preference (Pi, Intel, AMD/ARM boards).
_CPU_ZONES = ("cpu-thermal", "cpu_thermal", "x86_pkg_temp", "soc_thermal", "coretemp", "k10temp")


@dataclass(frozen=True)
class SystemConfig(SensorConfig):
    channels: list[str] = field(default_factory=list)  # empty: every channel this host has
    path: str = "/"
    proc_root: str = "/proc"  # for tests and containers
    sys_root: str = "/sys"

    def __post_init__(self) -> None:
        for i, name in enumerate(self.channels):
            if name not in ALL_CHANNELS:
                raise ValueError(f"channels[{i}]: expected one of {', '.join(ALL_CHANNELS)}, found \"{name}\"")


def memory_used_percent(meminfo: str) -> float:
    """Percent of memory in use, from the text of /proc/meminfo."""
    fields = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            fields[key] = int(parts[0])
    total = fields["MemTotal"]
    available = fields.get("MemAvailable", fields.get("MemFree", 0))
    return round(100.0 * (total - available) / total, 1)


def disk_used_percent(st: os.statvfs_result) -> float:
    """Percent of a file system in use, counted as df does (reserved blocks excluded)."""
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    usable = used + st.f_bavail * st.f_frsize
    return round(100.0 * used / usable, 1) if usable else 0.0


class SystemSensor(Sensor):
    """Reads the host's own health figures from procfs, sysfs and statvfs."""

    type_name = "system"
    Config = SystemConfig
    config: SystemConfig
    _zone: Path | None = None
    _active: tuple[str, ...] = ()

    def _find_cpu_zone(self) -> Path | None:
        zones = sorted(Path(self.config.sys_root, "class", "thermal").glob("thermal_zone*"))
        typed = []
        for zone in zones:
            try:
                kind = (zone / "type").read_text().strip()
            except OSError:
                kind = ""
            if (zone / "temp").exists():
                typed.append((kind, zone))
        for wanted in _CPU_ZONES:
            for kind, zone in typed:
                if kind == wanted:
                    return zone
        return typed[0][1] if typed else None

    def open(self) -> None:
        self._zone = self._find_cpu_zone()
        wanted = tuple(self.config.channels) or ALL_CHANNELS
        if self._zone is None and "cpu_temperature" in self.config.channels:
            raise SensorError(f"{self.describe()}: no thermal zone under "
                              f"{self.config.sys_root}/class/thermal for cpu_temperature")
        self._active = tuple(c for c in wanted if c != "cpu_temperature" or self._zone is not None)
        if not os.path.isdir(self.config.path):
            raise SensorError(f"{self.describe()}: path {self.config.path!r} is not a directory")

    def channels(self) -> list[Channel]:
        active = self._active or tuple(self.config.channels) or ALL_CHANNELS
        return [Channel(name, *_UNITS[name], "total" if name == "uptime" else "measurement") for name in active]

    def read(self) -> list[Reading]:
        if not self._active:
            self.open()
        proc = Path(self.config.proc_root)
        out: list[Reading] = []
        try:
            for name in self._active:
                unit = _UNITS[name][0]
                if name == "cpu_temperature" and self._zone is not None:
                    milli = int((self._zone / "temp").read_text().strip())
                    out.append(Reading(name, round(milli / 1000.0, 1), unit))
                elif name == "load_1m":
                    out.append(Reading(name, float((proc / "loadavg").read_text().split()[0]), unit))
                elif name == "memory_used":
                    out.append(Reading(name, memory_used_percent((proc / "meminfo").read_text()), unit))
                elif name == "disk_used":
                    out.append(Reading(name, disk_used_percent(os.statvfs(self.config.path)), unit))
                elif name == "uptime":
                    out.append(Reading(name, int(float((proc / "uptime").read_text().split()[0])), unit))
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise SensorError(f"{self.describe()}: cannot read {name}: {exc}") from exc
        return out


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [SystemSensor]
