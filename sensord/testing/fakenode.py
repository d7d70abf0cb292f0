"""A whole fake node for `--fake` and `[hardware] fake = true`: every built-in chip model on I2C bus
1 (at its default address, or the next free one where two chips share a default), then the chip
models plugins register (`sensord_register_device_models`), gpiozero mock pins, and a 1-Wire tree
with one DS18B20 reading 21.5 °C."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sensord.hardware import Hardware

if TYPE_CHECKING:
    from .i2c import I2CDeviceModel

# One DS18B20 as the kernel's w1_therm driver shows it (t = 0x0158 / 16 = 21.5 °C).
DS18B20_ID = "28-000000000001"
_W1_SLAVE = "58 01 4b 46 7f ff 08 10 9e : crc=9e YES\n58 01 4b 46 7f ff 08 10 9e t=21500\n"


def fake_node_hardware(plugin_models: Iterable[type[I2CDeviceModel]] = ()) -> Hardware:
    """The fake node's `Hardware`; `plugin_models` (`PluginHost.device_models`) join the built-in
    chip models on bus 1, each at its `DEFAULT_ADDRESS` or the next free address above it."""
    from sensord.detect import fake_bus_with_all_models

    from .pins import fake_hardware

    w1_root = Path(tempfile.mkdtemp(prefix="sensord-fake-w1-"))
    atexit.register(shutil.rmtree, w1_root, ignore_errors=True)
    (w1_root / DS18B20_ID).mkdir()
    (w1_root / DS18B20_ID / "w1_slave").write_text(_W1_SLAVE)
    bus = fake_bus_with_all_models(plugin_models=plugin_models)
    # Models that keep virtual time (conversion delays) see a driver's waits; nothing really sleeps.
    advances = [getattr(m, "advance", None) for m in bus.devices.values()]
    clocked = [advance for advance in advances if callable(advance)]

    def sleep(seconds: float) -> None:
        for advance in clocked:
            advance(seconds)

    return fake_hardware(bus, w1_root=str(w1_root), sleep=sleep)
