"""Any Linux hwmon (hardware monitoring) device, type `hwmon`: `/sys/class/hwmon/hwmonN`, the
kernel's temperature, voltage, current and power monitors. On a Pi: the SoC's `cpu_thermal`, the
Pi 5 fan (`pwmfan`), and I2C chips the kernel drives as hwmon devices: LM75 and its kin, TMP102,
MCP9808 (`jc42`), INA219/INA226 (`ina219`, `ina226`, from the ina2xx driver), SHT3x, SHTC3...

The device is chosen as for the `iio` type: by its `name` attribute (`device = "lm75"`), with
`of_node` or `index` when two have that name, or by `path` (`/sys/class/hwmon/hwmon2`); hwmon
numbers can change between boots, names and device-tree nodes do not. `sensord detect` lists the
devices present.

A channel is an attribute's prefix as the hwmon sysfs interface (Documentation/hwmon/
sysfs-interface.rst) names it, `temp1` for `temp1_input`. Values are `<channel>_input` (power:
`power<n>_average` when the chip has no `_input`), integers in the interface's units, converted:

| channel | hwmon unit | quantity | unit |
|---|---|---|---|
| `temp<n>` | milli °C | temperature | °C |
| `in<n>` | mV | voltage | V |
| `curr<n>` | mA | current | A |
| `power<n>` | µW | power | W |
| `energy<n>` | µJ | energy (a total) | Wh |
| `humidity<n>` | milli % | humidity | % |
| `fan<n>` | RPM | fan_speed | rpm |

The first channel of each type (`temp1`, `in0`, `curr1`...) is published as the bare quantity
(temperature), the others with their number (`temp2` → temperature_2); `"in1=voltage"` in
`channels` publishes a channel under another name. A channel whose `<channel>_fault` reads 1
(an open diode, a stopped fan) or whose read returns ENODATA (disabled) has no value that time.

Errors are handled as by the `iio` type: EIO, ETIMEDOUT, EAGAIN and an I2C chip's missing
acknowledge (EREMOTEIO, ENXIO) are retried `retries` times, counted, not logged each time; a
device that disappears is looked up again at the next read; garbage in a file fails the read.

Recipes, in `/boot/firmware/config.txt`, then reboot: `dtoverlay=i2c-sensor,lm75,addr=0x48`
(also `tmp102`, `mcp980x`, `sht3x`... see /boot/firmware/overlays/README), wired as for the
matching sensord I2C driver. An INA219 without an overlay can be bound by hand:
`echo ina219 0x40 | sudo tee /sys/bus/i2c/devices/i2c-1/new_device`; check its `shunt_resistor`
attribute (µΩ) against the shunt on the board (0.1 Ω on most breakouts: 100000) and write the
right value there as root if it differs: sensord only reads. A chip bound to a kernel driver shows as UU in i2cdetect
and is no longer readable by sensord's own I2C driver for it.

Example::

    [[sensor]]
    name = "enclosure"
    type = "hwmon"
    interval_s = 30
    ## The hwmon device's name: "lm75", "ina219", "cpu_thermal"...
    device = "lm75"
    ## With two devices of that name: the device-tree node (or index = 0, 1, ...).
    # of_node = "lm75@48"
    ## The channels to read ("temp1" for temp1_input); "in1=voltage" publishes in1 as voltage.
    ## Listing them lets Home Assistant discovery and channel_filters know them before the
    ## sensor opens; [] reads every one found.
    channels = ["temp1"]
    # retries = 2
    # retry_delay_s = 0.1
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import sensord
from sensord import Hardware, Sensor, SensorConfig, field_range
from sensord.sysfs import ChannelSpec, KernelDevice, KernelSensor, KernelSensorConfig

#: hwmon channel type → quantity, unit, factor from the interface's unit, resolution (one step
#: of the integer the kernel gives), kind, the type's first number (sysfs-interface.rst:
#: "Numbering usually starts from 1, except for voltages which start from 0").
TYPES: dict[str, tuple[str, str, float, float | None, Literal["measurement", "total"], int]] = {
    "temp": ("temperature", "°C", 1e-3, 1e-3, "measurement", 1),  # millidegree Celsius
    "in": ("voltage", "V", 1e-3, 1e-3, "measurement", 0),  # millivolt
    "curr": ("current", "A", 1e-3, 1e-3, "measurement", 1),  # milliampere
    "power": ("power", "W", 1e-6, 1e-6, "measurement", 1),  # microWatt
    "energy": ("energy", "Wh", 1e-6 / 3600, None, "total", 1),  # microJoule
    "humidity": ("humidity", "%", 1e-3, 1e-3, "measurement", 1),  # milli-percent
    "fan": ("fan_speed", "rpm", 1.0, 1.0, "measurement", 1),  # revolution/min
}
_CHANNEL = re.compile(r"^(?P<type>[a-z]+?)(?P<number>\d+)$")
_INPUT = re.compile(r"^(?P<channel>[a-z]+\d+)_(?P<kind>input|average)$")


def parse_channel(name: str) -> tuple[str, int] | None:
    """`temp1` → ("temp", 1); None when it is not a channel sensord reads."""
    match = _CHANNEL.match(name)
    if match is None or match["type"] not in TYPES:
        return None
    return match["type"], int(match["number"])


def channel_spec(name: str) -> ChannelSpec:
    """The quantity, unit, factor and resolution of channel `name` (see the module's table)."""
    parsed = parse_channel(name)
    if parsed is None:
        raise ValueError(f"not a hwmon channel sensord reads: {name}")
    kind, number = parsed
    quantity, unit, factor, resolution, value_kind, first = TYPES[kind]
    if number != first:
        quantity += f"_{number}"
    return ChannelSpec(quantity, unit, factor, resolution, value_kind)


@dataclass(frozen=True)
class HwmonConfig(KernelSensorConfig):
    """`[[sensor]]` keys of type `hwmon`."""

    #: hwmon chips on I2C fail for a transfer, not for seconds like a DHT: retry soon.
    retry_delay_s: float = field_range(0.1, ge=0, le=60)

    def channel_problem(self, channel: str) -> str | None:
        if parse_channel(channel) is None:
            return (f'"{channel}" is not a hwmon channel sensord reads; expected one of '
                    f"{', '.join(t + '<n>' for t in TYPES)}, e.g. temp1")
        return None

    def quantity_of(self, channel: str) -> str:
        return channel_spec(channel).quantity if parse_channel(channel) else channel


class Hwmon(KernelSensor):
    """A hwmon device's channels, read through `Hardware.sysfs`."""

    type_name = "hwmon"
    Config = HwmonConfig
    config: HwmonConfig
    class_dir, prefix, kind = "class/hwmon", "hwmon", "hwmon"

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        #: channel → (value attribute, fault attribute or ""), relative to the device, from open().
        self._attributes: dict[str, tuple[str, str]] = {}

    def spec(self, channel: str) -> ChannelSpec:
        return channel_spec(channel)

    def available(self, device: KernelDevice) -> list[str]:
        # Drivers from before hwmon_device_register_with_info() keep the attributes on the parent.
        found = self._inputs(device.path, "")
        if not found:
            found = self._inputs(f"{device.path}/device", "device/")
        self._attributes = found
        return sorted(found, key=_channel_order)

    def _inputs(self, path: str, prefix: str) -> dict[str, tuple[str, str]]:
        files = self.sysfs.listdir(path)
        present = set(files)
        found: dict[str, tuple[str, str]] = {}
        for name in files:
            match = _INPUT.match(name)
            if match is None or parse_channel(match["channel"]) is None:
                continue
            channel = match["channel"]
            if channel in found and match["kind"] == "average":
                continue  # _input wins
            fault = f"{channel}_fault"
            found[channel] = (prefix + name, prefix + fault if fault in present else "")
        return found

    def read_channel(self, device: KernelDevice, channel: str,
                     read: Callable[[str], float | None]) -> float | None:
        attribute, fault = self._attributes[channel]
        if fault and read(fault):
            return None
        return read(attribute)


def _channel_order(name: str) -> tuple[int, int]:
    kind, number = parse_channel(name) or ("", 0)
    return (list(TYPES).index(kind) if kind in TYPES else len(TYPES)), number


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [Hwmon]
