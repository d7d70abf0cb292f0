"""debian/sensord.service, read as text: what its sandbox must leave to the sensor types."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unit_settings(name: str = "sensord.service") -> tuple[str, dict[str, list[str]]]:
    """The unit's text (debian/`name`), and its settings: each key's words, over all its lines."""
    unit = (ROOT / "debian" / name).read_text()
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).extend(value.split())
    return unit, settings


def test_the_service_leaves_the_kernel_sensors_readable() -> None:
    """The iio and hwmon types read /sys/bus/iio/devices, /sys/class/hwmon and what their links
    lead to (/sys/devices, the device tree under /sys/firmware): nothing in the unit may hide or
    replace those. /sys read-only (ProtectKernelTunables=yes) is what they need, and intended."""
    unit, settings = unit_settings()
    assert settings["ProtectKernelTunables"] == ["yes"] and settings["ProtectSystem"] == ["strict"]
    read = ["/sys/bus/iio/devices", "/sys/class/hwmon", "/sys/devices", "/sys/firmware/devicetree/base"]
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "NoExecPaths"):
        for path in settings.get(key, []):
            path = path.lstrip("-+").split(":", 1)[0].rstrip("/")
            assert not any(wanted == path or wanted.startswith(path + "/") for wanted in read), (key, path)
    assert settings.get("PrivateDevices", ["no"]) == ["no"]  # it would hide /dev/gpiochip* and /dev/i2c-*
    assert "/sys/bus/iio/devices" in unit and "/sys/class/hwmon" in unit  # the comment says why it works


def test_the_service_may_open_the_serial_ports_and_no_terminal() -> None:
    """The UART sensors open /dev/serial0 (ttyS0 or ttyAMA0), /dev/ttyUSB*, /dev/ttyACM*: the
    group dialout owns them and DevicePolicy=closed must allow their device classes (names of
    /proc/devices), each read-write (commands are written). Terminals (tty, console, pts) stay closed."""
    unit, settings = unit_settings()
    assert settings["DevicePolicy"] == ["closed"]
    assert "dialout" in settings["SupplementaryGroups"]
    allowed = dict(zip(settings["DeviceAllow"][::2], settings["DeviceAllow"][1::2], strict=True))
    for device_class in ("char-ttyS", "char-ttyAMA", "char-ttyUSB", "char-ttyACM"):
        assert allowed.get(device_class) == "rw", device_class
    assert not {"char-tty", "char-pts", "char-console", "/dev/console", "/dev/ptmx"} & set(allowed)
    for name in ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyUSB", "/proc/devices"):
        assert name in unit  # the comment says which devices and why
    sysusers = (ROOT / "debian" / "sensord.sysusers").read_text()
    assert "m sensord dialout" in sysusers.splitlines()
    control = (ROOT / "debian" / "control").read_text()
    assert "python3-serial (>= 3.5)," in control and "python3-serial <!nocheck>," in control


def test_the_service_may_open_the_netlink_socket_for_link_events() -> None:
    """sensord.linkwatch reads rtnetlink (AF_NETLINK): without it the daemon only warns and
    reconnects on its backoff alone. .ci/deb-test-inside checks the booted service's log line."""
    _, settings = unit_settings()
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]


def bridge_settings() -> dict[str, list[str]]:
    return unit_settings("sensord.sensord-bridge.service")[1]


def test_the_bridge_service_is_sandboxed_like_the_node_less_the_devices() -> None:
    """sensord-bridge.service keeps every hardening setting of sensord.service, opens no device
    (PrivateDevices=yes, no DeviceAllow=) and needs no supplementary group (PrivateUsers=yes)."""
    _, node = unit_settings()
    bridge = bridge_settings()
    sandbox = [key for key in node if key.startswith(("Protect", "Private", "Restrict", "SystemCall", "NoNew",
                                                       "Capability", "Ambient", "Lock", "Memory", "Keyring",
                                                       "RemoveIPC", "DevicePolicy", "UMask"))]
    assert len(sandbox) > 20
    for key in sandbox:
        if key in ("PrivateDevices", "RestrictAddressFamilies"):
            continue
        assert bridge.get(key) == node[key], key
    # The node's AF_NETLINK is for its link events (sensord.linkwatch); the bridge watches no link.
    assert bridge["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert bridge["PrivateDevices"] == ["yes"] and bridge["PrivateUsers"] == ["yes"]
    assert "DeviceAllow" not in bridge and "SupplementaryGroups" not in bridge
    assert bridge["User"] == node["User"] == ["sensord"]


def test_the_bridge_service_runs_the_shipped_config_with_its_state_directory() -> None:
    import tomllib

    from sensord.bridge.config import DEFAULT_BRIDGE_PATH, parse_bridge_config

    bridge = bridge_settings()
    assert bridge["ExecStart"] == ["/usr/bin/sensord", "bridge", "-c", DEFAULT_BRIDGE_PATH]
    shipped = parse_bridge_config(tomllib.loads((ROOT / "debian" / "bridge.toml").read_text()), "bridge.toml")
    assert shipped.bridge.state_dir == "/var/lib/" + bridge["StateDirectory"][0]
    assert (shipped.bridge.line_protocol, shipped.bridge.out_prefix) == ("", "sensord-plain")  # not the journal
    assert "debian/bridge.toml etc/sensord" in (ROOT / "debian" / "sensord.install").read_text().splitlines()
    rules = (ROOT / "debian" / "rules").read_text()
    assert "dh_installsystemd --name=sensord-bridge --no-enable --no-start" in rules
