"""`sensord.testing.FakeSysfs`: a tree laid out as the kernel lays out /sys, read through
`sensord.hardware.Sysfs`, with errors injected per attribute; and the fixtures that hand it out."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sensord.hardware import Hardware, Sysfs
from sensord.sysfs import list_devices, of_node
from sensord.testing import FakeSysfs
from sensord.testing.sysfs import dht22_attributes, fake_node_sysfs, lm75_attributes


def test_the_kernels_layout(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path)
    dev = sysfs.add_iio("dht11", dht22_attributes(21.3, 45.6), parent="platform/dht11@4", of_node="/dht11@4")
    hw = sysfs.add_hwmon("lm75", lm75_attributes(), parent="platform/soc/i2c-1/1-0048",
                         of_node="/soc/i2c@7e804000/lm75@48")
    assert dev == "bus/iio/devices/iio:device0" and hw == "class/hwmon/hwmon0"
    link = tmp_path / "bus/iio/devices/iio:device0"
    assert link.is_symlink() and os.readlink(link) == "../../../devices/platform/dht11@4/iio:device0"
    assert os.readlink(tmp_path / "class/hwmon/hwmon0") == "../../devices/platform/soc/i2c-1/1-0048/hwmon/hwmon0"
    assert (tmp_path / "devices/platform/dht11@4/iio:device0/in_temp_input").read_text() == "21300\n"
    assert sysfs.resolve(f"{hw}/device") == "devices/platform/soc/i2c-1/1-0048"
    assert of_node(sysfs, dev) == "/dht11@4" and of_node(sysfs, hw) == "/soc/i2c@7e804000/lm75@48"
    assert sysfs.read("/sys/bus/iio/devices/iio:device0/name") == "dht11"  # a user's /sys path
    assert sysfs.add_iio("dht11", {}) == "bus/iio/devices/iio:device1"


def test_injected_errors(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_iio("dht11", dht22_attributes())
    attribute = f"{dev}/in_temp_input"
    fake_sysfs.fail(attribute, errno.EIO, times=2)
    for _ in range(2):
        with pytest.raises(OSError) as excinfo:
            fake_sysfs.read(attribute)
        assert excinfo.value.errno == errno.EIO
    assert fake_sysfs.read(attribute) == "21300"
    fake_sysfs.fail(attribute, errno.ETIMEDOUT, times=None)
    for _ in range(3):
        with pytest.raises(TimeoutError):
            fake_sysfs.read(attribute)
    fake_sysfs.clear(attribute)
    assert fake_sysfs.read(f"/sys/{attribute}") == "21300"
    assert fake_sysfs.reads.count(attribute) == 7


def test_changes_and_removal(fake_sysfs: FakeSysfs) -> None:
    dev = fake_sysfs.add_hwmon("lm75", lm75_attributes(20.0))
    fake_sysfs.set(f"{dev}/temp1_input", "21000")
    assert fake_sysfs.read(f"{dev}/temp1_input") == "21000"
    fake_sysfs.delete(f"{dev}/temp1_max")
    assert "temp1_max" not in fake_sysfs.listdir(dev)
    fake_sysfs.remove(dev)
    assert not fake_sysfs.exists(dev) and fake_sysfs.listdir("class/hwmon") == []
    with pytest.raises(FileNotFoundError):
        fake_sysfs.read(f"{dev}/temp1_input")


def test_sysfs_defaults_to_sys_and_stays_inside_its_root(tmp_path: Path) -> None:
    assert Hardware().sysfs.root == "/sys" and Sysfs().path("/sys/class/hwmon") == "/sys/class/hwmon"
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "escape").symlink_to(tmp_path)
    sysfs = Sysfs(str(tmp_path / "root"))
    assert sysfs.resolve("escape") is None and sysfs.resolve("missing") is None
    assert sysfs.listdir("missing") == []


def test_fixtures_give_an_empty_tree_not_the_hosts(fake_sysfs: FakeSysfs, fake_hardware: Hardware) -> None:
    assert fake_hardware.sysfs is fake_sysfs
    assert fake_sysfs.listdir("") == [] and fake_sysfs.root != "/sys"


def test_the_fake_nodes_tree() -> None:
    sysfs = fake_node_sysfs()
    try:
        iio = list_devices(sysfs, "bus/iio/devices", "iio:device")
        hwmon = list_devices(sysfs, "class/hwmon", "hwmon")
        assert [(d.name, d.of_node) for d in iio] == [("dht11", "/dht11@4"),
                                                      ("si7020", "/soc/i2c@7e804000/si7020@40")]
        assert [(d.name, d.of_node) for d in hwmon] == [("cpu_thermal", ""), ("ina219", "/soc/i2c@7e804000/ina219@41")]
    finally:
        sysfs.close()
    assert not os.path.exists(sysfs.root)
