"""The `system` sensor against fake procfs and sysfs trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sensord import SensorError
from sensord.hardware import Hardware
from sensord_plugins.system import SystemConfig, SystemSensor, disk_used_percent, memory_used_percent

MEMINFO = "MemTotal:        3884328 kB\nMemFree:          123456 kB\nMemAvailable:    2913246 kB\n"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text("0.42 0.30 0.25 1/123 4567\n")
    (proc / "uptime").write_text("12345.67 23456.78\n")
    for i, (kind, milli) in enumerate([("acpitz", "27800"), ("cpu-thermal", "48312")]):
        zone = sys / "class" / "thermal" / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    return proc, sys


def make(roots: tuple[Path, Path], **options: object) -> SystemSensor:
    cfg = SystemConfig(proc_root=str(roots[0]), sys_root=str(roots[1]), **options)  # type: ignore[arg-type]
    return SystemSensor(cfg, name="host", hardware=Hardware())


def test_reads_every_channel(roots: tuple[Path, Path]) -> None:
    sensor = make(roots)
    sensor.open()
    got = {r.quantity: (r.value, r.unit) for r in sensor.read()}
    assert got["cpu_temperature"] == (48.3, "°C")  # the CPU zone, not the first one
    assert got["load_1m"] == (0.42, "")
    assert got["memory_used"] == (25.0, "%")
    assert got["uptime"] == (12345, "s")
    assert 0.0 < got["disk_used"][0] < 100.0 and got["disk_used"][1] == "%"
    assert [c.quantity for c in sensor.channels()] == list(got)


def test_no_thermal_zone_drops_the_channel(roots: tuple[Path, Path], tmp_path: Path) -> None:
    sensor = make((roots[0], tmp_path / "empty"))
    sensor.open()
    assert "cpu_temperature" not in {r.quantity for r in sensor.read()}


def test_asking_for_a_missing_zone_is_an_error(roots: tuple[Path, Path], tmp_path: Path) -> None:
    sensor = make((roots[0], tmp_path / "empty"), channels=["cpu_temperature"])
    with pytest.raises(SensorError, match=r'sensor "host" \(system\): no thermal zone under'):
        sensor.open()


def test_channel_subset(roots: tuple[Path, Path]) -> None:
    sensor = make(roots, channels=["uptime", "load_1m"])
    sensor.open()
    assert [r.quantity for r in sensor.read()] == ["uptime", "load_1m"]


def test_unreadable_proc_file_raises(roots: tuple[Path, Path]) -> None:
    sensor = make(roots, channels=["load_1m"])
    sensor.open()
    (roots[0] / "loadavg").unlink()
    with pytest.raises(SensorError, match="cannot read load_1m"):
        sensor.read()


def test_pure_conversions() -> None:
    assert memory_used_percent(MEMINFO) == 25.0
    assert memory_used_percent("MemTotal: 1000 kB\nMemFree: 250 kB\n") == 75.0
    st = os.statvfs_result((4096, 4096, 1000, 300, 250, 0, 0, 0, 0, 255))
    # used 700 blocks, usable 700 + 250 (reserved blocks excluded, as df does)
    assert disk_used_percent(st) == round(100 * 700 / 950, 1)


def test_real_host_works() -> None:
    sensor = SystemSensor(SystemConfig(), name="host", hardware=Hardware())
    sensor.open()
    got = {r.quantity for r in sensor.read()}
    assert {"load_1m", "memory_used", "disk_used", "uptime"} <= got
