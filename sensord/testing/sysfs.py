"""A fake sysfs tree for drivers of sensors the kernel owns (`iio`, `hwmon`), with read errors
injected as a kernel driver returns them.

`FakeSysfs` is a `sensord.hardware.Sysfs` over a directory laid out as the kernel lays out
`/sys`: the device's directory under `devices/`, a link to it from `bus/iio/devices/iio:deviceN`
or `class/hwmon/hwmonN`, an `of_node` link into `firmware/devicetree/base`. A driver reads it
through `Hardware(sysfs=...)` exactly as it reads `/sys` on a Pi. Errors a real file cannot
give are injected per attribute: `fail(path, errno.EIO, times=2)` (a DHT's bad frame),
`fail(path, errno.ETIMEDOUT, times=None)` (a dead sensor, until `clear()`).

    sysfs = FakeSysfs()
    dht = sysfs.add_iio("dht11", dht22_attributes(21.3, 45.6), of_node="/dht11@4")
    sysfs.fail(f"{dht}/in_temp_input", errno.EIO)  # the next read fails once
    sysfs.remove(dht)                              # unplugged: the device is gone
    hardware = Hardware(sysfs=sysfs)

The `*_attributes()` helpers give a device's attributes with values in the kernel's units, as
its driver shows them (Documentation/ABI/testing/sysfs-bus-iio, Documentation/hwmon/
sysfs-interface.rst); `fake_node_sysfs()` is the tree of the fake node (`--fake`).
"""

from __future__ import annotations

import atexit
import errno as errnos
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sensord.hardware import Sysfs

DEVICETREE = "firmware/devicetree/base"


class FakeSysfs(Sysfs):
    """A sysfs tree in a directory (a fresh temporary one by default, removed by `close()` or at
    exit). `reads` lists every attribute read, relative to the root."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._owned = root is None
        if root is None:
            root = tempfile.mkdtemp(prefix="sensord-fake-sysfs-")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        super().__init__(os.fspath(root))
        os.makedirs(self.root, exist_ok=True)
        self.reads: list[str] = []
        self._faults: dict[str, list[int]] = {}
        self._stuck: dict[str, int] = {}

    def _relative(self, path: str) -> str:
        full = self.path(path)
        return os.path.relpath(full, self.root)

    # -- what a driver calls ----------------------------------------------------------------------

    def read(self, path: str) -> str:
        relative = self._relative(path)
        self.reads.append(relative)
        queued = self._faults.get(relative)
        code = queued.pop(0) if queued else self._stuck.get(relative)
        if code is not None:
            raise OSError(code, os.strerror(code), self.path(path))
        return super().read(path)

    # -- faults --------------------------------------------------------------------------------------

    def fail(self, path: str, code: int = errnos.EIO, *, times: int | None = 1) -> None:
        """The next `times` reads of attribute `path` fail with `code` (an errno), as the kernel
        driver's read would; `times=None`: every read, until `clear(path)`."""
        relative = self._relative(path)
        if times is None:
            self._stuck[relative] = code
        else:
            self._faults.setdefault(relative, []).extend([code] * times)

    def clear(self, path: str | None = None) -> None:
        """Forget the faults of `path` (of every attribute when None)."""
        if path is None:
            self._faults.clear()
            self._stuck.clear()
            return
        relative = self._relative(path)
        self._faults.pop(relative, None)
        self._stuck.pop(relative, None)

    # -- devices -------------------------------------------------------------------------------------

    def add_iio(self, name: str, attributes: Mapping[str, str], *, parent: str | None = None,
                of_node: str | None = None) -> str:
        """Add an IIO device named `name` with these attributes (file name → text) under
        `devices/<parent>` (default `platform/<name>`), its device-tree node at `of_node`
        (`/soc/i2c@7e804000/bme280@76`) if given. Returns its path, `bus/iio/devices/iio:deviceN`."""
        node = f"iio:device{self._next_number('bus/iio/devices', 'iio:device')}"
        parent_dir = f"devices/{parent or 'platform/' + name}"
        device_dir = f"{parent_dir}/{node}"
        self._write_device(device_dir, name, attributes)
        self._link(f"bus/iio/devices/{node}", device_dir)
        if of_node is not None:
            self._add_of_node(of_node, [parent_dir, device_dir])
        return f"bus/iio/devices/{node}"

    def add_hwmon(self, name: str, attributes: Mapping[str, str], *, parent: str | None = None,
                  of_node: str | None = None) -> str:
        """Add a hwmon device named `name` as `add_iio` does, its directory `hwmon/hwmonN` under
        the parent (with a `device` link back to it). Returns `class/hwmon/hwmonN`."""
        node = f"hwmon{self._next_number('class/hwmon', 'hwmon')}"
        parent_dir = f"devices/{parent or 'platform/' + name}"
        device_dir = f"{parent_dir}/hwmon/{node}"
        self._write_device(device_dir, name, attributes)
        self._link(f"{device_dir}/device", parent_dir)
        self._link(f"class/hwmon/{node}", device_dir)
        if of_node is not None:
            self._add_of_node(of_node, [parent_dir])
        return f"class/hwmon/{node}"

    def set(self, path: str, text: str) -> None:
        """Write attribute `path` (a new value, or a new file: a channel that appears)."""
        full = self.path(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        Path(full).write_text(text + "\n")

    def delete(self, path: str) -> None:
        """Remove attribute `path`: a channel that disappears."""
        os.unlink(self.path(path))

    def remove(self, path: str) -> None:
        """Remove the device at `path` (`bus/iio/devices/iio:device0`) and its link: unplugged,
        or its driver unbound."""
        link = self.path(path)
        target = os.path.realpath(link)
        os.unlink(link)
        shutil.rmtree(target, ignore_errors=True)

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def _next_number(self, class_dir: str, prefix: str) -> int:
        numbers = [int(n[len(prefix):]) for n in self.listdir(class_dir)
                   if n.startswith(prefix) and n[len(prefix):].isdigit()]
        return max(numbers, default=-1) + 1

    def _write_device(self, device_dir: str, name: str, attributes: Mapping[str, str]) -> None:
        self.set(f"{device_dir}/name", name)
        for attribute, text in attributes.items():
            self.set(f"{device_dir}/{attribute}", text)

    def _link(self, link: str, target: str) -> None:
        full_link, full_target = self.path(link), self.path(target)
        os.makedirs(os.path.dirname(full_link), exist_ok=True)
        if os.path.lexists(full_link):
            os.unlink(full_link)
        os.symlink(os.path.relpath(full_target, os.path.dirname(full_link)), full_link)

    def _add_of_node(self, of_node: str, device_dirs: list[str]) -> None:
        node_dir = f"{DEVICETREE}/{of_node.strip('/')}"
        self.set(f"{node_dir}/name", of_node.rstrip("/").rsplit("/", 1)[-1].split("@", 1)[0])
        for device_dir in device_dirs:
            self._link(f"{device_dir}/of_node", node_dir)


# -- devices as their kernel drivers show them ----------------------------------------------------

def dht22_attributes(temperature_c: float = 21.3, humidity_pct: float = 45.6) -> dict[str, str]:
    """A DHT22/AM2302 on the kernel's `dht11` driver (IIO, name "dht11"): processed values in
    milli °C and milli %, in the sensor's 0.1 steps (the driver multiplies its tenths by 100)."""
    return {"in_temp_input": str(round(temperature_c * 10) * 100),
            "in_humidityrelative_input": str(round(humidity_pct * 10) * 100)}


def si7020_attributes(temperature_c: float = 24.0, humidity_pct: float = 45.0) -> dict[str, str]:
    """An Si7020/Si7021 (or HTU21) on the kernel's `si7020` driver (IIO): raw codes with scale and
    offset, the datasheet's formulas (T = 175.72 * code / 65536 - 46.85, RH = 125 * code / 65536 - 6)
    on the 14-bit code the driver gives (the 16-bit word >> 2). The scale is the formula's slope
    in milli-units per 14-bit step (175720 / 16384 and 125000 / 16384, printed with 9 decimals as
    IIO prints a fraction), the offset its intercept in steps (-46.85 °C ≈ -4368 steps, -6 % ≈ -786)."""
    temp_code = round((temperature_c + 46.85) * 65536 / 175.72) >> 2
    rh_code = round((humidity_pct + 6) * 65536 / 125) >> 2
    return {"in_temp_raw": str(temp_code), "in_temp_scale": "10.725097656", "in_temp_offset": "-4368",
            "in_humidityrelative_raw": str(rh_code), "in_humidityrelative_scale": "7.629394531",
            "in_humidityrelative_offset": "-786"}


def lm75_attributes(temperature_c: float = 23.5) -> dict[str, str]:
    """An LM75 on the kernel's `lm75` driver (hwmon): millidegrees, with its thermostat limits."""
    return {"temp1_input": str(round(temperature_c * 1000)), "temp1_max": "80000", "temp1_max_hyst": "75000"}


def ina219_attributes(bus_v: float = 5.008, current_a: float = 0.030, shunt_ohms: float = 0.1) -> dict[str, str]:
    """An INA219 on the kernel's `ina2xx` driver (hwmon, name "ina219"): in0 the shunt voltage and
    in1 the bus voltage in mV, curr1 in mA (signed), power1 in µW (the chip's power register is
    unsigned), the shunt in µΩ."""
    return {"in0_input": str(round(current_a * shunt_ohms * 1000)), "in1_input": str(round(bus_v * 1000)),
            "curr1_input": str(round(current_a * 1000)), "power1_input": str(round(bus_v * abs(current_a) * 1e6)),
            "shunt_resistor": str(round(shunt_ohms * 1e6))}


def cpu_thermal_attributes(temperature_c: float = 48.312) -> dict[str, str]:
    """The Pi's SoC temperature (hwmon "cpu_thermal", from the thermal zone)."""
    return {"temp1_input": str(round(temperature_c * 1000))}


def fake_node_sysfs(root: str | os.PathLike[str] | None = None) -> FakeSysfs:
    """The fake node's sysfs: IIO devices `dht11` (a DHT22 on GPIO4: 21.3 °C, 45.6 %) and
    `si7020` (24.0 °C, 45.0 % from raw codes), hwmon devices `cpu_thermal` (48.312 °C) and
    `ina219` (5.008 V, 30 mA, 0.15024 W)."""
    sysfs = FakeSysfs(root)
    sysfs.add_iio("dht11", dht22_attributes(), parent="platform/dht11@4", of_node="/dht11@4")
    i2c = "platform/soc/fe804000.i2c/i2c-1"
    sysfs.add_iio("si7020", si7020_attributes(), parent=f"{i2c}/1-0040", of_node="/soc/i2c@7e804000/si7020@40")
    sysfs.add_hwmon("cpu_thermal", cpu_thermal_attributes(), parent="virtual/thermal/thermal_zone0")
    sysfs.add_hwmon("ina219", ina219_attributes(), parent=f"{i2c}/1-0041", of_node="/soc/i2c@7e804000/ina219@41")
    return sysfs
