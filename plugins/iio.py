"""Any Linux IIO (Industrial I/O) device, type `iio`: the sensors the kernel has a driver for,
read from `/sys/bus/iio/devices/iio:deviceN`. The DHT11, DHT22 and AM2302 (through the kernel's
`dht11` driver, which keeps their microsecond timing away from Python), and the I2C chips of
Raspberry Pi OS's `i2c-sensor` overlay that the kernel drives as IIO devices (BME280, BMP280,
BME680, SHT4x, Si7020/Si7021, HTU21, TSL4531, VEML6070...).

The device is chosen by its `name` attribute (`device = "dht11"`); with two of the same name, by
its device-tree node (`of_node = "dht11@11"`) or its place among them (`index = 1`, in device
number order, which can change between boots: prefer `of_node`); or by its directory
(`path = "/sys/bus/iio/devices/iio:device0"`). `sensord detect` lists the devices present.

A channel is the middle of the attribute's name: `temp` for `in_temp_input`, `voltage0` for
`in_voltage0_raw`, `concentration_co2` for `in_concentration_co2_raw`. Its value is the
processed `in_<channel>_input` when the driver has one, else `(raw + offset) * scale` from
`in_<channel>_raw`, `in_<channel>_offset` (0 when absent) and `in_<channel>_scale` (1 when
absent), each looked up for the channel, then for its type (`in_voltage_scale`), as the kernel's
ABI (Documentation/ABI/testing/sysfs-bus-iio) describes. Scale and offset are read with every
value, so a gain changed through sysfs is followed. The result is converted from the ABI's unit
to the one sensord's other drivers publish:

| channel type | ABI unit | quantity | unit |
|---|---|---|---|
| `temp` | milli °C | temperature | °C |
| `humidityrelative` | milli % | humidity | % |
| `pressure` | kPa | pressure | hPa |
| `voltage` | mV | voltage | V |
| `current` | mA | current | A |
| `power` | mW | power | W |
| `illuminance` | lux | illuminance | lx |
| `concentration` | % | concentration (`_co2`: carbon_dioxide, `_voc`: voc) | ppm (`_o2`: oxygen, %) |
| `massconcentration` | µg/m³ | pm1, pm2_5, pm4, pm10 | µg/m³ |
| `resistance` | Ω | resistance | Ω |
| `electricalconductivity` | S/m | conductivity | S/m |
| `distance` | m | distance | m |
| `uvindex`, `intensity` | (none) | uv_index, intensity | (none) |

The quantity is the type's, then `_<n>` for a numbered channel and `_<modifier>` for a modified
one: `voltage0` → voltage_0, `voltage0-voltage1` → voltage_0_1, `temp_object` →
temperature_object. `"voltage1=battery"` in `channels` publishes a channel under another name.
Other channel types (accelerometers, gyroscopes...) are not read. Peak, trough and mean values
(`in_temp_peak_raw`) are not channels.

Errors: a read failing with EIO, ETIMEDOUT or EAGAIN is tried again, `retries` times,
`retry_delay_s` apart, counted (logged once, then summed up when the sensor closes), not logged
each time: the `dht11` driver fails that way on a bad frame (checksum, missed edges), often. ENODATA
gives no value this time. A device that disappears (unplugged, driver unbound) fails the read and
is looked up again at the next; a channel that disappears or a file holding something else than
a number fails the read with a message naming the file. The driver only reads; it never writes
to sysfs.

Recipes, in `/boot/firmware/config.txt` (`/boot/config.txt` before bookworm), then reboot:

- DHT11, DHT22, AM2302: data pin to GPIO4 (pin 7) with a 4.7-10 kΩ pull-up to 3.3 V (most
  modules have it), VCC to 3.3 V, GND. `dtoverlay=dht11,gpiopin=4`. The device is named
  `dht11` for all three; it has `temp` and `humidityrelative`. Read it no more often than every
  2 s (`interval_s` ≥ 3); the kernel keeps a reading for 2 s, and an early read fails.
  Several sensors: one `dtoverlay=dht11,gpiopin=N` line per pin, then tell them apart with
  `of_node` (see `ls -l /sys/bus/iio/devices/*/of_node`).
- I2C chips: wire them as for sensord's own I2C drivers and add `dtoverlay=i2c-sensor,<chip>`
  (e.g. `dtoverlay=i2c-sensor,bme280,addr=0x76`, `dtoverlay=i2c-sensor,si7020`); the chip then
  belongs to the kernel (i2cdetect shows UU) and is read here with `device = "<chip>"`. The list
  of chips is in /boot/firmware/overlays/README under "i2c-sensor"; chips it drives as hwmon
  devices (LM75, TMP102...) are read with the `hwmon` type.

Example::

    [[sensor]]
    name = "porch"
    type = "iio"
    interval_s = 30
    ## The IIO device's name: "dht11" for a DHT11, DHT22 or AM2302 on dtoverlay=dht11.
    device = "dht11"
    ## With two devices of that name: the device-tree node (or index = 0, 1, ...).
    # of_node = "dht11@4"
    ## The channels to read, named as in the sysfs attributes (in_temp_input: "temp"); "x=name"
    ## publishes one under another quantity name. Listing them lets Home Assistant discovery and
    ## channel_filters know them before the sensor opens; [] reads every one found.
    channels = ["temp", "humidityrelative"]
    ## EIO/ETIMEDOUT from the kernel driver (a bad DHT frame) is retried this often, this far apart.
    # retries = 2
    # retry_delay_s = 2.0
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sensord
from sensord import Hardware, Sensor, SensorConfig
from sensord.sysfs import ChannelSpec, KernelDevice, KernelSensor, KernelSensorConfig

#: IIO channel type → quantity, unit, factor from the ABI's unit (sysfs-bus-iio: "Units after
#: application of scale and offset are ...").
TYPES: dict[str, tuple[str, str, float]] = {
    "temp": ("temperature", "°C", 1e-3),  # milli degrees Celsius
    "humidityrelative": ("humidity", "%", 1e-3),  # milli percent
    "pressure": ("pressure", "hPa", 10.0),  # kilopascal
    "voltage": ("voltage", "V", 1e-3),  # millivolts
    "current": ("current", "A", 1e-3),  # milliamps
    "power": ("power", "W", 1e-3),  # milliwatts
    "illuminance": ("illuminance", "lx", 1.0),  # lux
    "concentration": ("concentration", "ppm", 1e4),  # percent
    "massconcentration": ("pm", "µg/m³", 1.0),  # ug / m3
    "resistance": ("resistance", "Ω", 1.0),  # ohms
    "electricalconductivity": ("conductivity", "S/m", 1.0),  # siemens per meter
    "distance": ("distance", "m", 1.0),  # meters
    "uvindex": ("uv_index", "", 1.0),  # an index, no unit
    "intensity": ("intensity", "", 1.0),  # "unit-less light intensity"
}
#: Modified channels that are a quantity of their own.
MODIFIED: dict[tuple[str, str], tuple[str, str, float]] = {
    ("concentration", "co2"): ("carbon_dioxide", "ppm", 1e4),
    ("concentration", "voc"): ("voc", "ppm", 1e4),
    ("concentration", "o2"): ("oxygen", "%", 1.0),
    ("massconcentration", "pm1"): ("pm1", "µg/m³", 1.0),
    ("massconcentration", "pm2p5"): ("pm2_5", "µg/m³", 1.0),
    ("massconcentration", "pm4"): ("pm4", "µg/m³", 1.0),
    ("massconcentration", "pm10"): ("pm10", "µg/m³", 1.0),
}
#: Modifiers of values derived from a channel, not channels (sysfs-bus-iio: in_temp_peak_raw,
#: in_humidityrelative_trough_raw, in_X_mean_raw).
_DERIVED = ("peak", "trough", "mean")
_CHANNEL = re.compile(r"^(?P<type>[a-z]+?)(?P<index>\d+)?(?:-(?P<type2>[a-z]+?)(?P<index2>\d+))?"
                      r"(?:_(?P<modifier>[a-z0-9_]+))?$")
_ATTRIBUTE = re.compile(r"^in_(?P<channel>.+)_(?P<kind>input|raw)$")


@dataclass(frozen=True)
class IioChannel:
    """An IIO channel name taken apart: `voltage0-voltage1` → type voltage, index 0, second
    index 1; `concentration_co2` → type concentration, modifier co2."""

    name: str
    type: str
    index: int | None = None
    index2: int | None = None
    modifier: str = ""

    @property
    def shared(self) -> str:
        """The part of a by-type attribute's name: `voltage`, `voltage-voltage` for a differential pair."""
        return f"{self.type}-{self.type}" if self.index2 is not None else self.type


def parse_channel(name: str) -> IioChannel | None:
    """The channel `name` taken apart, or None when it is not a channel sensord reads (another
    type, a peak or mean value)."""
    match = _CHANNEL.match(name)
    if match is None or match["type"] not in TYPES:
        return None
    if match["type2"] is not None and match["type2"] != match["type"]:
        return None
    modifier = match["modifier"] or ""
    if modifier.split("_")[-1] in _DERIVED:
        return None
    return IioChannel(name, match["type"], None if match["index"] is None else int(match["index"]),
                      None if match["index2"] is None else int(match["index2"]), modifier)


def channel_spec(channel: IioChannel) -> ChannelSpec:
    """The quantity, unit and factor of a channel (see the module's table)."""
    if (channel.type, channel.modifier) in MODIFIED:
        quantity, unit, factor = MODIFIED[(channel.type, channel.modifier)]
        modifier = ""
    else:
        quantity, unit, factor = TYPES[channel.type]
        modifier = channel.modifier
    if channel.index is not None:
        quantity += f"_{channel.index}"
    if channel.index2 is not None:
        quantity += f"_{channel.index2}"
    if modifier:
        quantity += f"_{modifier}"
    return ChannelSpec(quantity, unit, factor)


def scaled(raw: float, *, scale: float = 1.0, offset: float = 0.0) -> float:
    """An `_raw` value in the ABI's unit: `(raw + offset) * scale` (sysfs-bus-iio, `_offset`:
    "added to <type>[Y]_raw prior to scaling by <type>[Y]_scale")."""
    return (raw + offset) * scale


@dataclass(frozen=True)
class IioConfig(KernelSensorConfig):
    """`[[sensor]]` keys of type `iio`."""

    def channel_problem(self, channel: str) -> str | None:
        if parse_channel(channel) is None:
            return (f'"{channel}" is not an IIO channel sensord reads; expected a channel of type '
                    f"{', '.join(TYPES)} (as in in_<channel>_input or in_<channel>_raw)")
        return None

    def quantity_of(self, channel: str) -> str:
        parsed = parse_channel(channel)
        return channel_spec(parsed).quantity if parsed else channel


class Iio(KernelSensor):
    """An IIO device's channels, read through `Hardware.sysfs`."""

    type_name = "iio"
    Config = IioConfig
    config: IioConfig
    class_dir, prefix, kind = "bus/iio/devices", "iio:device", "IIO"

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        #: channel → (value attribute, is it _raw, scale attributes, offset attributes), from open().
        self._attributes: dict[str, tuple[str, bool, list[str], list[str]]] = {}

    def spec(self, channel: str) -> ChannelSpec:
        parsed = parse_channel(channel)
        if parsed is None:
            raise ValueError(f"not an IIO channel sensord reads: {channel}")
        return channel_spec(parsed)

    def available(self, device: KernelDevice) -> list[str]:
        files = self.sysfs.listdir(device.path)
        present = set(files)
        found: dict[str, tuple[str, bool, list[str], list[str]]] = {}
        for name in files:
            match = _ATTRIBUTE.match(name)
            parsed = parse_channel(match["channel"]) if match else None
            if match is None or parsed is None:
                continue
            if parsed.name in found and not found[parsed.name][1]:
                continue  # the processed _input wins over _raw
            is_raw = match["kind"] == "raw"
            candidates = [f"in_{parsed.name}", f"in_{parsed.shared}", "in"]
            scales = [f"{c}_scale" for c in candidates if f"{c}_scale" in present][:1]
            offsets = [f"{c}_offset" for c in candidates if f"{c}_offset" in present][:1]
            found[parsed.name] = (name, is_raw, scales if is_raw else [], offsets if is_raw else [])
        self._attributes = found
        return sorted(found, key=_channel_order)

    def read_channel(self, device: KernelDevice, channel: str,
                     read: Callable[[str], float | None]) -> float | None:
        attribute, is_raw, scales, offsets = self._attributes[channel]
        value = read(attribute)
        if value is None or not is_raw:
            return value
        scale = read(scales[0]) if scales else 1.0
        offset = read(offsets[0]) if offsets else 0.0
        if scale is None or offset is None:
            return None
        return scaled(value, scale=scale, offset=offset)


def _channel_order(name: str) -> tuple[int, str]:
    parsed = parse_channel(name)
    order = list(TYPES).index(parsed.type) if parsed else len(TYPES)
    return order, name


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [Iio]
