"""A base for drivers of sensors the kernel owns and shows in sysfs (`iio`, `hwmon`): find the
device by its `name` (and device-tree node or index when two have that name) or by its path,
read number attributes, retry the transient errors a kernel driver returns, and messages that
name the device.

    class Hwmon(KernelSensor):
        type_name = "hwmon"
        Config = HwmonConfig  # a KernelSensorConfig: channel_problem(), quantity_of()
        class_dir, prefix, kind = "class/hwmon", "hwmon", "hwmon"

        def spec(self, channel) -> ChannelSpec: ...  # quantity, unit, factor from the kernel's unit
        def available(self, device) -> list[str]: ...  # the channels the device has
        def read_channel(self, device, channel, read) -> float | None: ...  # read(attribute) retries

The driver never opens a file itself: it reads through `Hardware.sysfs` (`/sys` on a Pi,
`sensord.testing.FakeSysfs` in tests and under `--fake`), and never writes.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .errors import SensorError
from .hardware import Sysfs
from .sensor import Channel, Reading, Sensor, SensorConfig, field_range

if TYPE_CHECKING:
    from .hardware import Hardware

log = logging.getLogger(__name__)

#: Errors a kernel driver returns for one bad transfer, worth another try: a bad frame or checksum
#: (EIO: the `dht11` driver's usual failure), no answer in time (ETIMEDOUT), "try again" (EAGAIN),
#: an I2C chip that did not acknowledge (EREMOTEIO, ENXIO).
RETRY_ERRNOS = frozenset({errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.EREMOTEIO, errno.ENXIO})
#: "No value now" (a channel disabled with `*_enable`, a measurement not ready): no reading this time.
NO_VALUE_ERRNOS = frozenset({errno.ENODATA})
#: Where device-tree nodes appear; a device's `of_node` link points into it.
DEVICETREE = "firmware/devicetree/base"
_QUANTITY = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class KernelDevice:
    """A device found in sysfs: `path` relative to the sysfs root (`bus/iio/devices/iio:device0`),
    its directory `node` (`iio:device0`), its `name` attribute, its device-tree node (`""` when it
    has none, else e.g. `/soc/i2c@7e804000/bme280@76`)."""

    path: str
    node: str
    name: str
    of_node: str = ""

    def label(self) -> str:
        return f"{self.node} ({self.name}{', ' + self.of_node if self.of_node else ''})"


@dataclass(frozen=True)
class ChannelSpec:
    """What a channel is published as: the quantity, the unit, the factor from the kernel's unit
    to it, the resolution (None: not known before reading) and the kind."""

    quantity: str
    unit: str
    factor: float
    resolution: float | None = None
    kind: Literal["measurement", "total", "binary"] = "measurement"


def device_number(node: str) -> int:
    """The number at the end of `iio:device12` or `hwmon3` (for sorting); -1 when there is none."""
    digits = re.search(r"(\d+)$", node)
    return int(digits.group(1)) if digits else -1


def of_node(sysfs: Sysfs, path: str) -> str:
    """The device-tree node of the device at `path` (its `of_node` link, or its parent's), as a
    path under the device tree's root; "" when it has none."""
    for link in (f"{path}/of_node", f"{path}/device/of_node"):
        target = sysfs.resolve(link)
        if target is not None and (target == DEVICETREE or target.startswith(DEVICETREE + "/")):
            return "/" + target[len(DEVICETREE):].lstrip("/")
    return ""


def list_devices(sysfs: Sysfs, class_dir: str, prefix: str) -> list[KernelDevice]:
    """The devices in `class_dir` (`bus/iio/devices`, `class/hwmon`) whose directory starts with
    `prefix`, in number order; a device whose name cannot be read is left out."""
    found = []
    for node in sysfs.listdir(class_dir):
        if not node.startswith(prefix):
            continue
        path = f"{class_dir}/{node}"
        name = _device_name(sysfs, path)
        if name is not None:
            found.append(KernelDevice(path, node, name, of_node(sysfs, path)))
    return sorted(found, key=lambda d: (device_number(d.node), d.node))


def _device_name(sysfs: Sysfs, path: str) -> str | None:
    # hwmon drivers from before hwmon_device_register_with_info() keep `name` on the parent device.
    for attribute in (f"{path}/name", f"{path}/device/name"):
        try:
            return sysfs.read(attribute)
        except OSError:
            continue
    return None


def parse_number(text: str) -> float:
    """A sysfs value as a number: an integer (`21500`) or the decimal form IIO prints for
    fractional values (`100.923828125`, `-0.500000`). ValueError for anything else."""
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:
        raise ValueError(f"expected a number, found {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a number, found {text[:40]!r}")
    return value


def convert(value: float, factor: float) -> float:
    """`value * factor`, dividing by the inverse when that is a whole number (1e-3 → / 1000), so
    that 150240 µW gives 0.15024 W and not 0.15023999999999998."""
    if 0 < factor < 1:
        inverse = 1 / factor
        if abs(inverse - round(inverse)) <= 1e-9 * inverse:
            return value / round(inverse)
    return value * factor


def split_channel(entry: str) -> tuple[str, str | None]:
    """`"in1=voltage"` → ("in1", "voltage"); `"temp1"` → ("temp1", None)."""
    channel, sep, quantity = entry.partition("=")
    return channel.strip(), quantity.strip() if sep else None


@dataclass(frozen=True)
class KernelSensorConfig(SensorConfig):
    """`[[sensor]]` keys shared by `iio` and `hwmon`."""

    #: The device's `name` attribute ("dht11", "bme280", "lm75", "ina219").
    device: str = ""
    #: With two devices of that name: the device-tree node, whole or its last part ("dht11@11").
    of_node: str = ""
    #: With two devices of that name: which one, 0 for the lowest device number.
    index: int | None = field_range(None, ge=0)
    #: Instead of `device`: the device's directory, "/sys/bus/iio/devices/iio:device0".
    path: str = ""
    #: The channels to read ("temp", "in1=voltage": channel=quantity); [] reads every one the
    #: driver supports, found when the sensor opens.
    channels: list[str] = field(default_factory=list)
    #: How often a read that failed with EIO, ETIMEDOUT or EAGAIN is tried again, and how long
    #: to wait before each try.
    retries: int = field_range(2, ge=0, le=10)
    retry_delay_s: float = field_range(2.0, ge=0, le=60)

    def __post_init__(self) -> None:
        if bool(self.device) == bool(self.path):
            raise ValueError(f"device: expected a device name (or a path instead), found "
                             f"{'both' if self.device else 'neither'}")
        if self.path.startswith("/") and not self.path.startswith("/sys/"):
            raise ValueError(f'path: expected a directory under /sys ("/sys/bus/iio/devices/iio:device0") or '
                             f'a device\'s directory name ("iio:device0"), found "{self.path}"')
        if self.path and (self.of_node or self.index is not None):
            raise ValueError("of_node: expected with device, not with path (a path names one device)")
        if self.of_node and self.index is not None:
            raise ValueError("index: expected of_node or index, not both")
        seen: dict[str, str] = {}
        for entry in self.channels:
            channel, quantity = split_channel(entry)
            problem = self.channel_problem(channel)
            if problem:
                raise ValueError(f"channels: {problem}")
            name = quantity if quantity is not None else self.quantity_of(channel)
            if not _QUANTITY.match(name):
                raise ValueError(f'channels: "{entry}": expected a quantity name like "voltage" after "=", '
                                 f'found "{name}"')
            if name in seen:
                raise ValueError(f'channels: "{entry}" and "{seen[name]}" would both be "{name}"')
            seen[name] = entry

    def channel_problem(self, channel: str) -> str | None:
        """Why `channel` is not a channel name of this type (None: it is one)."""
        return None

    def quantity_of(self, channel: str) -> str:
        """The quantity a channel is published as when the config does not name one."""
        return channel


class KernelSensor(Sensor):
    """A sensor read from a kernel driver's sysfs attributes: the device is looked up at open and
    again after it disappeared (unplugged, driver rebound: it may come back under another number)."""

    Config: ClassVar[type[SensorConfig]] = KernelSensorConfig
    config: KernelSensorConfig
    #: Where the devices are, the prefix of their directories, what messages call them.
    class_dir: ClassVar[str] = ""
    prefix: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        self.device: KernelDevice | None = None
        self._channels: list[tuple[str, ChannelSpec]] = []
        #: Transient errors retried since start, and reads that needed a retry.
        self.retries = 0
        self.retried_reads = 0

    # -- what a type provides --------------------------------------------------------------------

    def spec(self, channel: str) -> ChannelSpec:
        """The quantity, unit and factor of a channel (named as in `channels`)."""
        raise NotImplementedError

    def available(self, device: KernelDevice) -> list[str]:
        """The channels of `device` this type can read, in a stable order."""
        raise NotImplementedError

    def read_channel(self, device: KernelDevice, channel: str, read: Callable[[str], float | None]) -> float | None:
        """The channel's value in the kernel's unit; `read(attribute)` reads one attribute of the
        device (a number; None for no value now), retrying transient errors."""
        raise NotImplementedError

    # -- the sensor ------------------------------------------------------------------------------

    @property
    def sysfs(self) -> Sysfs:
        return self.hardware.sysfs

    def describe(self) -> str:
        wanted = self.config.device or self.config.path
        where = f" {self.device.node}" if self.device else ""
        return f'sensor "{self.name}" ({self.type_name} {wanted}{where})'

    def channels(self) -> list[Channel]:
        pairs = self._channels or [self._named(entry) for entry in self.config.channels]
        return [Channel(spec.quantity, spec.unit, spec.resolution, spec.kind) for _, spec in pairs]

    def _named(self, entry: str) -> tuple[str, ChannelSpec]:
        channel, quantity = split_channel(entry)
        spec = self.spec(channel)
        if quantity is not None:
            spec = ChannelSpec(quantity, spec.unit, spec.factor, spec.resolution, spec.kind)
        return channel, spec

    def open(self) -> None:
        device = self._locate()
        available = self.available(device)
        if self.config.channels:
            pairs = [self._named(entry) for entry in self.config.channels]
            missing = [channel for channel, _ in pairs if channel not in available]
            if missing:
                raise SensorError(f"{self.describe()}: no channel {', '.join(missing)}; it has: "
                                  f"{', '.join(available) or 'none this driver reads'}")
        else:
            pairs = [(channel, self.spec(channel)) for channel in available]
            if not pairs:
                raise SensorError(f"{self.describe()}: no channel this driver reads "
                                  f"(see the {self.type_name} type's documentation for the ones it knows)")
            clashes = _clashes(pairs)
            if clashes:
                raise SensorError(f"{self.describe()}: channels {clashes} would have the same quantity: "
                                  f'list them in channels with a name each ("channel=quantity")')
        self._channels = pairs

    def _locate(self) -> KernelDevice:
        cfg = self.config
        if cfg.path:
            path = cfg.path[len("/sys/"):] if cfg.path.startswith("/sys/") else cfg.path
            if "/" not in path:
                path = f"{self.class_dir}/{path}"
            name = _device_name(self.sysfs, path)
            if name is None:
                raise SensorError(f"{self.describe()}: no {self.kind} device at {self.sysfs.path(path)}")
            self.device = KernelDevice(path, os.path.basename(path), name, of_node(self.sysfs, path))
            return self.device
        everything = list_devices(self.sysfs, self.class_dir, self.prefix)
        named = [d for d in everything if d.name == cfg.device]
        if cfg.of_node:
            wanted = "/" + cfg.of_node.strip("/")
            named = [d for d in named if d.of_node == wanted or d.of_node.rsplit("/", 1)[-1] == cfg.of_node]
        if not named:
            where = f" with of_node {cfg.of_node}" if cfg.of_node else ""
            present = ", ".join(d.label() for d in everything) or "none"
            raise SensorError(f"{self.describe()}: no {self.kind} device named \"{cfg.device}\"{where} in "
                              f"{self.sysfs.path(self.class_dir)}; present: {present}")
        if cfg.index is not None:
            if cfg.index >= len(named):
                raise SensorError(f"{self.describe()}: index {cfg.index}, but there are only {len(named)} "
                                  f"devices named \"{cfg.device}\": {', '.join(d.label() for d in named)}")
            named = [named[cfg.index]]
        if len(named) > 1:
            raise SensorError(f"{self.describe()}: {len(named)} {self.kind} devices are named \"{cfg.device}\" "
                              f"({', '.join(d.label() for d in named)}); set of_node or index to choose one")
        self.device = named[0]
        return self.device

    def read(self) -> list[Reading]:
        if not self._channels:
            raise SensorError(f"{self.describe()}: not open")
        device = self.device
        if device is None:  # gone at the last read: it may be back, under another number
            device = self._locate()
            available = self.available(device)
            missing = [channel for channel, _ in self._channels if channel not in available]
            if missing:
                message = f"{self.describe()}: back, but without channel {', '.join(missing)}"
                self.device = None
                raise SensorError(message)
        if not self.sysfs.exists(device.path):
            message = (f"{self.describe()}: gone from {self.sysfs.path(self.class_dir)} (unplugged, or its "
                       f"driver unbound?); looking for it again at the next read")
            self.device = None
            raise SensorError(message)
        retried = self.retries
        readings = []
        for channel, spec in self._channels:
            raw = self.read_channel(device, channel, lambda attribute: self._read_number(device, attribute))
            value = None if raw is None else convert(raw, spec.factor)
            # None is "no value this time" (docs/plugins.md, "What a value may be"): a fault, ENODATA.
            readings.append(Reading(spec.quantity, value, spec.unit))  # type: ignore[arg-type]
        if self.retries != retried:
            self.retried_reads += 1
        return readings

    def _read_number(self, device: KernelDevice, attribute: str) -> float | None:
        path = f"{device.path}/{attribute}"
        for attempt in range(self.config.retries + 1):
            try:
                text = self.sysfs.read(path)
            except FileNotFoundError:
                if not self.sysfs.exists(device.path):
                    message = (f"{self.describe()}: gone from {self.sysfs.path(self.class_dir)} (unplugged, "
                               f"or its driver unbound?); looking for it again at the next read")
                    self.device = None
                    raise SensorError(message) from None
                raise SensorError(f"{self.describe()}: {attribute} disappeared") from None
            except OSError as exc:
                if exc.errno in NO_VALUE_ERRNOS:
                    return None
                if exc.errno not in RETRY_ERRNOS or attempt == self.config.retries:
                    tries = f" (tried {attempt + 1} times)" if attempt else ""
                    raise SensorError(f"{self.describe()}: {attribute}: "
                                      f"{exc.strerror or os.strerror(exc.errno or 0)}{tries}") from exc
                if self.retries == 0:
                    log.info("%s: %s: %s; such errors are retried (up to %d times, %g s apart) and "
                             "counted, not logged each time", self.describe(), attribute,
                             exc.strerror or exc, self.config.retries, self.config.retry_delay_s)
                self.retries += 1
                self.hardware.sleep(self.config.retry_delay_s)
                continue
            try:
                return parse_number(text)
            except ValueError as exc:
                raise SensorError(f"{self.describe()}: {attribute}: {exc}") from None
        raise AssertionError("unreachable")

    @classmethod
    def detect(cls, hardware: Hardware) -> list[tuple[str, dict[str, Any]]]:
        """For `sensord detect`: (a sensor name, the `[[sensor]]` keys) of each device present
        with a channel this type reads. Reads names and lists attributes; reads no value."""
        devices = list_devices(hardware.sysfs, cls.class_dir, cls.prefix)
        found = []
        for device in devices:
            same = [d for d in devices if d.name == device.name]
            keys: dict[str, Any] = {"device": device.name}
            if len(same) > 1:
                last = device.of_node.rsplit("/", 1)[-1]
                if last and sum(d.of_node.rsplit("/", 1)[-1] == last for d in same) == 1:
                    keys["of_node"] = last
                else:
                    keys["index"] = same.index(device)
            probe = cls(cls.Config(**keys), name="detect", hardware=hardware)
            channels = probe.available(device)
            if channels:
                name = re.sub(r"[^a-z0-9_]+", "_", device.name.lower()).strip("_") or cls.type_name
                found.append((f"{name}_{max(device_number(device.node), 0)}", {**keys, "channels": channels}))
        return found

    def close(self) -> None:
        if self.retries:
            log.info("%s: %d reads needed a retry (%d retries in all)", self.describe(),
                     self.retried_reads, self.retries)


def _clashes(pairs: list[tuple[str, ChannelSpec]]) -> str:
    by_quantity: dict[str, list[str]] = {}
    for channel, spec in pairs:
        by_quantity.setdefault(spec.quantity, []).append(channel)
    return "; ".join(" and ".join(chs) for chs in by_quantity.values() if len(chs) > 1)
