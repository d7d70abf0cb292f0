"""debian/sensord.service, read as text: what its sandbox must leave to the sensor types."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_service_leaves_the_kernel_sensors_readable() -> None:
    """The iio and hwmon types read /sys/bus/iio/devices, /sys/class/hwmon and what their links
    lead to (/sys/devices, the device tree under /sys/firmware): nothing in the unit may hide or
    replace those. /sys read-only (ProtectKernelTunables=yes) is what they need, and intended."""
    unit = (ROOT / "debian" / "sensord.service").read_text()
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).extend(value.split())
    assert settings["ProtectKernelTunables"] == ["yes"] and settings["ProtectSystem"] == ["strict"]
    read = ["/sys/bus/iio/devices", "/sys/class/hwmon", "/sys/devices", "/sys/firmware/devicetree/base"]
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "NoExecPaths"):
        for path in settings.get(key, []):
            path = path.lstrip("-+").split(":", 1)[0].rstrip("/")
            assert not any(wanted == path or wanted.startswith(path + "/") for wanted in read), (key, path)
    assert settings.get("PrivateDevices", ["no"]) == ["no"]  # it would hide /dev/gpiochip* and /dev/i2c-*
    assert "/sys/bus/iio/devices" in unit and "/sys/class/hwmon" in unit  # the comment says why it works


def test_the_service_may_open_the_netlink_socket_for_link_events() -> None:
    """sensord.linkwatch reads rtnetlink (AF_NETLINK): without it the daemon only warns and
    reconnects on its backoff alone. .ci/deb-test-inside checks the booted service's log line."""
    unit = (ROOT / "debian" / "sensord.service").read_text()
    families = [line.split("=", 1)[1].split() for line in unit.splitlines()
                if line.startswith("RestrictAddressFamilies=")]
    assert families == [["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]]
