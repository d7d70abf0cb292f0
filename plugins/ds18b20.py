"""DS18B20 1-Wire thermometer, type `ds18b20`, read through the kernel's w1-gpio and w1_therm
drivers: `/sys/bus/w1/devices/28-*/w1_slave`. Also the waterproof probes built on it.

Reports `temperature` in °C from the scratchpad bytes (0.0625 °C steps at the default 12-bit
resolution; the kernel's `t=` value is truncated to whole millidegrees). Range -55 to +125 °C,
±0.5 °C from -10 to +85 °C. Each read starts a conversion and takes about 0.75 s.

Failures are errors, not values: a CRC mismatch on the wire (`crc=.. NO`, usually a long cable
or a weak pull-up), the power-on value 85.0 °C (the sensor was reset, e.g. by a brown-out in
parasite power, and no conversion happened), an all-zero scratchpad (nobody answered).

Several sensors share one data line; each has a 64-bit ROM id, shown by the kernel as a directory
`28-xxxxxxxxxxxx`. Set `device` to it; with exactly one sensor on the bus it can be omitted.
`sensord detect` lists them (`list_devices()`).

Wiring: VDD to 3.3 V, GND to GND, DQ to GPIO4 with a 4.7 kΩ pull-up to 3.3 V (2.2 kΩ on long
cables or with many sensors), and in `/boot/firmware/config.txt` (`/boot/config.txt` before
bookworm): `dtoverlay=w1-gpio` (`dtoverlay=w1-gpio,gpiopin=N` for another pin); reboot.
Datasheet: https://www.analog.com/media/en/technical-documentation/data-sheets/DS18B20.pdf

Example::

    [[sensor]]
    name = "boiler"
    type = "ds18b20"
    interval_s = 60
    ## The sensor's 1-Wire id; may be omitted when it is the only one.
    device = "28-00000a1b2c3d"
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, SensorError

FAMILY = "28"  # DS18B20 family code (datasheet: 64-bit lasered ROM code)
RESOLUTION_C = 0.0625  # 12 bits, the power-on default
_POWER_ON_RAW = 0x0550  # 85.0 °C: the temperature register's reset value (datasheet Table 1)
_DEVICE = re.compile(r"^28-[0-9a-f]{12}$")
_BYTE = re.compile(r"^[0-9a-f]{2}$")


@dataclass(frozen=True)
class Ds18b20Config(SensorConfig):
    device: str = ""  # "": the only DS18B20 present

    def __post_init__(self) -> None:
        if self.device and not _DEVICE.match(self.device):
            raise ValueError(f'device: expected a 1-Wire id like "28-00000a1b2c3d", found "{self.device}"')


def list_devices(root: str) -> list[str]:
    """The DS18B20 ids under `root` (the kernel's `/sys/bus/w1/devices`), sorted; [] when the
    directory is missing (1-Wire not enabled)."""
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if n.startswith(f"{FAMILY}-"))


def parse_w1_slave(text: str) -> float:
    """The temperature in °C from the two lines of a `w1_slave` file:

        72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
        72 01 4b 46 7f ff 0e 10 57 t=23125

    Raises ValueError for a CRC error, the power-on value, an all-zero scratchpad, or text that is
    not in this format."""
    lines = text.strip().splitlines()
    if len(lines) != 2:
        raise ValueError(f"expected 2 lines, found {len(lines)}: {text[:80]!r}")
    head, _, verdict = lines[0].partition(":")
    scratchpad = head.split()
    if len(scratchpad) != 9 or not all(_BYTE.match(b) for b in scratchpad):
        raise ValueError(f"expected 9 hex bytes before the CRC verdict, found {head.strip()!r}")
    verdict_words = verdict.split()
    if len(verdict_words) != 2 or not verdict_words[0].startswith("crc="):
        raise ValueError(f"expected \"crc=xx YES\" or \"crc=xx NO\", found {verdict.strip()!r}")
    if verdict_words[1] != "YES":
        raise ValueError(f"CRC error on the 1-Wire bus ({verdict.strip()}): check the cable and the pull-up")
    data = bytes(int(b, 16) for b in scratchpad)
    if not any(data):
        raise ValueError("all-zero scratchpad: the sensor did not answer")
    raw = int.from_bytes(data[0:2], "little", signed=True)
    if raw == _POWER_ON_RAW:
        raise ValueError("power-on value 85.0 °C: conversion did not happen")
    return temperature_c(raw, data[4])


def temperature_c(raw: int, config: int) -> float:
    """Temperature register (signed, 1/16 °C) to °C. At 9 to 11 bits the low 3 to 1 bits are
    undefined (datasheet, Temperature Register), so they are cleared as the configuration
    register's R1:R0 bits say."""
    undefined_bits = 3 - ((config >> 5) & 0b11)
    return (raw & ~((1 << undefined_bits) - 1)) / 16


class Ds18b20(Sensor):
    """A DS18B20 on the kernel's 1-Wire bus (`Hardware.w1_root`)."""

    type_name = "ds18b20"
    Config = Ds18b20Config
    config: Ds18b20Config
    device: str = ""

    def describe(self) -> str:
        device = self.device or self.config.device
        return f'sensor "{self.name}" ({self.type_name}{" " + device if device else ""})'

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", RESOLUTION_C)]

    def open(self) -> None:
        root = self.hardware.w1_root
        found = list_devices(root)
        wanted = self.config.device
        if wanted:
            if wanted not in found:
                raise SensorError(f"{self.describe()}: not found in {root}; present: {_names(found)}")
            self.device = wanted
        elif len(found) == 1:
            self.device = found[0]
        elif not found:
            raise SensorError(f"{self.describe()}: no DS18B20 in {root}: is dtoverlay=w1-gpio in "
                              f"config.txt, the sensor wired, the 4.7 kΩ pull-up in place?")
        else:
            raise SensorError(f"{self.describe()}: {len(found)} DS18B20 present ({_names(found)}); "
                              f"set device to one of them")

    def read(self) -> list[Reading]:
        if not self.device:
            raise SensorError(f"{self.describe()}: not open")
        path = os.path.join(self.hardware.w1_root, self.device, "w1_slave")
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise SensorError(f"{self.describe()}: gone from {self.hardware.w1_root} (unplugged?)") from None
        except OSError as exc:  # the kernel returns EIO when the device stops answering
            raise SensorError(f"{self.describe()}: cannot read {path}: {exc.strerror or exc}") from exc
        try:
            celsius = parse_w1_slave(text)
        except ValueError as exc:
            raise SensorError(f"{self.describe()}: {exc}") from None
        return [Reading("temperature", celsius, "°C")]


def _names(found: list[str]) -> str:
    return ", ".join(found) if found else "none"


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [Ds18b20]
