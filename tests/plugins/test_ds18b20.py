"""The `ds18b20` driver on a fake `/sys/bus/w1/devices` tree in the kernel's exact format."""

from __future__ import annotations

from pathlib import Path

import pytest
from driver_kit import example_config

import sensord_plugins.ds18b20 as module
from sensord import ConfigError, Reading, SensorError
from sensord.config import parse_config
from sensord.hardware import Hardware
from sensord_plugins.ds18b20 import Ds18b20, Ds18b20Config, list_devices, parse_w1_slave, temperature_c

KERNEL_EXAMPLE = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


def dallas_crc8(data: bytes) -> int:
    """The 1-Wire CRC (x^8 + x^5 + x^4 + 1, LSB first), as the kernel checks it."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def w1_slave(raw: int, *, config: int = 0x7F, crc_ok: bool = True) -> str:
    """A w1_slave file as the kernel's w1_therm writes it, for temperature register `raw`."""
    data = raw.to_bytes(2, "little", signed=True) + bytes([0x4B, 0x46, config, 0xFF, 0x0E, 0x10])
    crc = dallas_crc8(data)
    scratchpad = " ".join(f"{b:02x}" for b in data + bytes([crc if crc_ok else crc ^ 0xFF]))
    millis = raw * 1000 // 16 if raw >= 0 else -((-raw * 1000) // 16)
    return (f"{scratchpad} : crc={crc:02x} {'YES' if crc_ok else 'NO'}\n"
            f"{scratchpad} t={millis}\n")


@pytest.fixture
def w1(tmp_path: Path) -> Path:
    root = tmp_path / "devices"
    root.mkdir()
    (root / "w1_bus_master1").mkdir()
    return root


def add(root: Path, device: str, text: str = KERNEL_EXAMPLE) -> Path:
    (root / device).mkdir()
    path = root / device / "w1_slave"
    path.write_text(text)
    return path


def make(root: Path, device: str = "") -> Ds18b20:
    return Ds18b20(Ds18b20Config(device=device), name="boiler", hardware=Hardware(w1_root=str(root)))


def test_docstring_example_parses() -> None:
    (spec,) = example_config(module, Ds18b20).sensors
    assert spec.options == Ds18b20Config(device="28-00000a1b2c3d")


@pytest.mark.parametrize("device", ["28-00000A1B2C3D", "10-00080283a1b2", "28-123", "w1_bus_master1"])
def test_device_id_is_checked(device: str) -> None:
    table = {"name": "t", "type": "ds18b20", "interval_s": 60, "device": device}
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.device: expected a 1-Wire id"):
        parse_config({"sensor": [table]}, "x.toml", {"ds18b20": Ds18b20})


def test_kernel_example() -> None:
    assert w1_slave(0x0172) == KERNEL_EXAMPLE  # the fixture writer matches the real kernel
    assert parse_w1_slave(KERNEL_EXAMPLE) == 23.125


@pytest.mark.parametrize(("raw", "celsius"), [  # datasheet Table 1, Temperature/Data Relationship
    (0x07D0, 125.0), (0x0191, 25.0625), (0x00A2, 10.125), (0x0008, 0.5), (0x0000, 0.0),
    (-8, -0.5), (-162, -10.125), (-401, -25.0625), (-880, -55.0)])
def test_datasheet_values(raw: int, celsius: float) -> None:
    assert parse_w1_slave(w1_slave(raw)) == pytest.approx(celsius)


def test_undefined_low_bits_are_cleared_at_lower_resolution() -> None:
    assert temperature_c(0x0191, 0x7F) == 25.0625  # 12 bits
    assert temperature_c(0x0191, 0x5F) == 25.0  # 11 bits: bit 0 undefined
    assert temperature_c(0x0197, 0x1F) == 25.0  # 9 bits: bits 2..0 undefined
    assert temperature_c(-401, 0x1F) == -25.5


def test_crc_error_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"CRC error on the 1-Wire bus \(crc=.. NO\)"):
        parse_w1_slave(w1_slave(0x0191, crc_ok=False))


def test_power_on_value_is_rejected() -> None:
    text = w1_slave(0x0550)
    assert "t=85000" in text
    with pytest.raises(ValueError, match="power-on value 85.0 °C: conversion did not happen"):
        parse_w1_slave(text)


def test_all_zero_scratchpad_is_rejected() -> None:
    text = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"
    with pytest.raises(ValueError, match="all-zero scratchpad"):
        parse_w1_slave(text)


@pytest.mark.parametrize("text", ["", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n",
                                  "72 01 4b : crc=57 YES\n72 01 4b t=23125\n",
                                  "72 01 4b 46 7f ff 0e 10 57 crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
                                  "72 01 4b 46 7f ff 0e 10 zz : crc=57 YES\nx t=1\n"])
def test_malformed_files_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_w1_slave(text)


def test_the_only_sensor_needs_no_device_key(w1: Path) -> None:
    add(w1, "28-00000a1b2c3d")
    sensor = make(w1)
    sensor.open()
    assert sensor.device == "28-00000a1b2c3d"
    assert sensor.read() == [Reading("temperature", 23.125, "°C")]
    assert sensor.channels()[0].resolution == 0.0625
    assert sensor.describe() == 'sensor "boiler" (ds18b20 28-00000a1b2c3d)'


def test_several_sensors_need_the_device_key(w1: Path) -> None:
    add(w1, "28-00000a1b2c3d")
    add(w1, "28-0316a279b1ff", w1_slave(0x0008))
    with pytest.raises(SensorError, match=r"2 DS18B20 present \(28-00000a1b2c3d, 28-0316a279b1ff\); set device"):
        make(w1).open()
    sensor = make(w1, "28-0316a279b1ff")
    sensor.open()
    assert sensor.read() == [Reading("temperature", 0.5, "°C")]


def test_missing_device_lists_what_is_there(w1: Path) -> None:
    add(w1, "28-00000a1b2c3d")
    with pytest.raises(SensorError, match=r"28-0316a279b1ff\): not found in .*devices; present: 28-00000a1b2c3d"):
        make(w1, "28-0316a279b1ff").open()


def test_no_sensor_or_no_1wire_at_all(w1: Path, tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="no DS18B20 in .*dtoverlay=w1-gpio"):
        make(w1).open()
    with pytest.raises(SensorError, match="no DS18B20 in"):
        make(tmp_path / "nowhere").open()


def test_read_errors_become_sensor_errors(w1: Path) -> None:
    path = add(w1, "28-00000a1b2c3d")
    sensor = make(w1)
    sensor.open()
    path.write_text(w1_slave(0x0550))
    with pytest.raises(SensorError, match=r'"boiler" \(ds18b20 28-00000a1b2c3d\): power-on value 85.0 °C'):
        sensor.read()
    path.write_text(w1_slave(0x0191, crc_ok=False))
    with pytest.raises(SensorError, match="CRC error"):
        sensor.read()
    path.unlink()
    with pytest.raises(SensorError, match="gone from .* \\(unplugged\\?\\)"):
        sensor.read()
    path.mkdir()  # reading a directory fails with another OSError (IsADirectoryError)
    with pytest.raises(SensorError, match="cannot read .*w1_slave"):
        sensor.read()


def test_read_before_open() -> None:
    with pytest.raises(SensorError, match="not open"):
        make(Path("/nonexistent")).read()


def test_list_devices_keeps_only_ds18b20(w1: Path, tmp_path: Path) -> None:
    for name in ("28-0316a279b1ff", "00-400000000000", "10-00080283a1b2", "28-00000a1b2c3d"):
        (w1 / name).mkdir()
    assert list_devices(str(w1)) == ["28-00000a1b2c3d", "28-0316a279b1ff"]
    assert list_devices(str(tmp_path / "missing")) == []
