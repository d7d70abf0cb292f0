"""A whole fake node for `--fake` and `[hardware] fake = true`: on I2C bus 1 one of each chip model
the plugins register (`sensord_register_device_models`: the built-in drivers' first, then the
third-party ones, in load order; a model whose chip's addresses are all taken there goes on bus
3, `SECOND_BUS`, or bus 4 after it, `SPARE_BUSES`), gpiozero mock pins with an MCP3008 and an
MCP3208 on SPI0, a 1-Wire tree with one DS18B20 reading 21.5 °C, a sysfs tree with IIO and
hwmon devices (`sensord.testing.sysfs.fake_node_sysfs`), and serial ports with a PMS5003, an
SDS011 and an MH-Z19B (`fake_node_serial`)."""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sensord.hardware import Hardware

from .clock import FakeClock
from .i2c import FakeI2CBus
from .serial import FakeSerialPorts

if TYPE_CHECKING:
    from sensord.plugins import PluginHost

    from .i2c import I2CDeviceModel

log = logging.getLogger(__name__)

#: The fake node's second I2C bus, as a Pi 4 or 5 adds with `dtoverlay=i2c3`: a model that declares
#: `ADDRESSES` (every address its chip can have) and finds them all taken on bus 1 goes there, e.g.
#: the BME680 and BMP388 when the BMP280 and BME280 hold 0x76 and 0x77, the HTU21D behind the HDC1080.
SECOND_BUS = 3
#: The buses after bus 1, tried in turn (`dtoverlay=i2c4` adds bus 4): five Bosch chips share 0x76
#: and 0x77, so the BMP390 goes on bus 4.
SPARE_BUSES = (SECOND_BUS, 4)

#: The inputs CH0..CH7 of the fake node's MCP3008 (on CE0) and MCP3208 (on CE1), in volts (VREF 3.3 V).
SPI_ADC_VOLTS = {0: (1.65, 0.5, 2.0, 1.25, 0.0, 0.0, 0.0, 3.3), 1: (1.2, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)}

# One DS18B20 as the kernel's w1_therm driver shows it (t = 0x0158 / 16 = 21.5 °C).
DS18B20_ID = "28-000000000001"
_W1_SLAVE = "58 01 4b 46 7f ff 08 10 9e : crc=9e YES\n58 01 4b 46 7f ff 08 10 9e t=21500\n"


def fake_node_hardware(host: PluginHost | None = None) -> Hardware:
    """The fake node's `Hardware`, with the chip models of the plugins in `host`
    (`sensord.plugins.collect_device_models`; without a host, the built-in drivers')."""
    from sensord.plugins import collect_device_models, get_plugin_manager

    from .models.mcp3008 import MCP3008Model, MCP3208Model
    from .pins import fake_hardware, mock_pin_factory
    from .sysfs import fake_node_sysfs

    models = collect_device_models(host if host is not None else get_plugin_manager(entry_points=False))
    w1_root = Path(tempfile.mkdtemp(prefix="sensord-fake-w1-"))
    atexit.register(shutil.rmtree, w1_root, ignore_errors=True)
    (w1_root / DS18B20_ID).mkdir()
    (w1_root / DS18B20_ID / "w1_slave").write_text(_W1_SLAVE)
    buses = fake_node_buses(models)
    # Models that keep virtual time (conversion delays) see a driver's waits; nothing really sleeps.
    advances = [getattr(m, "advance", None) for bus in buses.values() for m in bus.devices.values()]
    clocked = [advance for advance in advances if callable(advance)]
    serial = fake_node_serial()
    clocked.append(serial.advance)

    def sleep(seconds: float) -> None:
        for advance in clocked:
            advance(seconds)

    pins = mock_pin_factory()
    # SPI0: an MCP3008 on CE0 and an MCP3208 on CE1, speaking their protocol on the mock pins.
    MCP3008Model(pins, chip_select=0, volts=SPI_ADC_VOLTS[0])
    MCP3208Model(pins, chip_select=1, volts=SPI_ADC_VOLTS[1])
    return fake_hardware(buses, pin_factory=pins, w1_root=str(w1_root), sleep=sleep, sysfs=fake_node_sysfs(),
                         serial=serial)


def fake_node_bus(models: Iterable[type[I2CDeviceModel]]) -> FakeI2CBus:
    """Bus 1 of `fake_node_buses(models)`."""
    return fake_node_buses(models)[1]


def fake_node_buses(models: Iterable[type[I2CDeviceModel]]) -> dict[int, FakeI2CBus]:
    """The fake node's I2C buses by number, with one of each model, built with `address=` alone,
    in the order given.

    On bus 1 a model goes at its `DEFAULT_ADDRESS`, or when another model took that, at the next
    free address above it, wrapping from 0x77 to 0x03 (`next_free_address`); a model with no free
    address is left out. Chips that share a default (TMP102, LM75 and ADS1115 at 0x48) take the
    addresses above it, which their address pins also select. A model that declares `ADDRESSES`
    (the addresses its chip can have) takes only one of those: the first free one on bus 1, else
    on `SECOND_BUS`, then on the other `SPARE_BUSES` (each made when the first model needs it),
    else it is left out."""
    buses = {1: FakeI2CBus(number=1)}
    for cls in models:
        # Every model class has a DEFAULT_ADDRESS (the kit's test checks it); the base class does not declare one.
        default: int = cls.DEFAULT_ADDRESS  # type: ignore[attr-defined]
        allowed: tuple[int, ...] | None = getattr(cls, "ADDRESSES", None)
        if allowed is None:
            placed = (1, next_free_address(default, buses[1].devices))
        else:
            placed = (1, None)
            for number in (1, *SPARE_BUSES):
                taken = buses[number].devices if number in buses else {}
                free = [a for a in dict.fromkeys((default, *allowed)) if a not in taken]
                if free:
                    placed = (number, free[0])
                    break
        number, address = placed
        if address is None:
            log.debug("no free address for %s", cls.__name__)
            continue
        bus = buses.setdefault(number, FakeI2CBus(number=number))
        bus.attach(cls(address=address), address)
    return buses


def next_free_address(default: int, taken: Iterable[int], *, first: int = 0x03, last: int = 0x77) -> int | None:
    """`default` if it is not in `taken`, else the next address above it that is not, wrapping
    from `last` to `first`; None when every address is taken."""
    used = set(taken)
    span = last - first + 1
    for step in range(span):
        address = first + (default - first + step) % span
        if address not in used:
            return address
    return None


def fake_node_serial() -> FakeSerialPorts:
    """The fake node's serial ports: a PMS5003 on /dev/ttyUSB0, an SDS011 on /dev/ttyUSB1 and an
    MH-Z19B on /dev/serial0 (each model's `DEFAULT_PORT`), at their default values, each port on
    its own clock (the daemon reads them in parallel threads)."""
    from .models.mhz19 import MHZ19Model
    from .models.pms5003 import PMS5003Model
    from .models.sds011 import SDS011Model

    ports = FakeSerialPorts()
    for model in (PMS5003Model(), SDS011Model(), MHZ19Model()):
        ports.attach(model.DEFAULT_PORT, model, clock=FakeClock())
    return ports
