"""`sensord detect`: find the chips on an I2C bus, name the ones a sensor type recognises, and
print `[[sensor]]` blocks ready to paste into the configuration.

    found = identify(bus, scan(bus), host.sensor_types.values())
    for f in found:
        print(toml_block(f, suggest_name(f), bus=1))

`scan()` probes like `i2cdetect -y 1` in its default mode. `identify()` asks every sensor type
whose `i2c_addresses` include an address to `identify()` the chip there. Nothing here prints.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .schema import toml_key, toml_value
from .sensor import Sensor

if TYPE_CHECKING:
    from .hardware import I2CBus

log = logging.getLogger(__name__)

#: i2cdetect reads a byte here instead of a quick write: a quick write can corrupt some EEPROMs
#: (0x50-0x5F, the AT24RF08) and lock up some chips at 0x30-0x37 (i2cdetect.c, MODE_AUTO).
READ_PROBE_RANGES = (range(0x30, 0x38), range(0x50, 0x60))
#: What `note` says of an address a kernel driver has claimed (i2cdetect shows "UU").
BUSY_NOTE = "in use by a kernel driver (i2cdetect shows UU); sensord cannot use it"


@dataclass(frozen=True)
class Found:
    """A chip that answered at `address`.

    `type_name` is the sensor type that recognised it (None: unknown chip), `keys` the
    `[[sensor]]` keys its `identify()` returned, `also` other types that recognised it too (chips
    that look alike), `note` why it could not be identified, `candidates` the types that use
    this address but did not recognise the chip (some chips, e.g. the LM75, have no id to check).
    """

    address: int
    type_name: str | None
    keys: dict[str, Any] = field(default_factory=dict)
    also: tuple[str, ...] = ()
    note: str = ""
    candidates: tuple[str, ...] = ()


def scan(bus: I2CBus, *, first: int = 0x03, last: int = 0x77) -> list[int]:
    """The addresses from `first` to `last` where a chip is, as `i2cdetect` finds them: an SMBus
    quick write, or a read byte in `READ_PROBE_RANGES`. Includes addresses a kernel driver has
    claimed (EBUSY; "UU" in i2cdetect); any other error means nobody there, as in i2cdetect."""
    if not 0x03 <= first <= last <= 0x77:
        raise ValueError(f"scan range {first:#04x}..{last:#04x}: expected 0x03 <= first <= last <= 0x77")
    return [address for address in range(first, last + 1) if _probe(bus, address) != "absent"]


def _probe(bus: I2CBus, address: int) -> str:
    """'ack', 'busy' (claimed by a kernel driver) or 'absent'."""
    try:
        if any(address in r for r in READ_PROBE_RANGES):
            bus.read_byte(address)
        else:
            bus.write_quick(address)
    except OSError as exc:
        return "busy" if exc.errno == errno.EBUSY else "absent"
    return "ack"


def identify(bus: I2CBus, addresses: Iterable[int], sensor_classes: Iterable[type[Sensor]], *,
             sleep: Callable[[float], None] = time.sleep) -> list[Found]:
    """Ask each sensor class listing an address in `i2c_addresses` whether the chip there is
    its own (`Sensor.identify`, which waits with `sleep` between a command and its answer), in
    the order the classes are given; the first to say yes names it. A class whose probe fails
    with an I/O error (the chip NACKs a foreign command) just does not recognise it. Other
    exceptions are bugs in that class and propagate."""
    classes = list(sensor_classes)
    found = []
    for address in addresses:
        if _probe(bus, address) == "busy":
            found.append(Found(address, None, note=BUSY_NOTE))
            continue
        matches: list[tuple[str, dict[str, Any]]] = []
        candidates = [cls for cls in classes if address in cls.i2c_addresses]
        for cls in candidates:
            try:
                keys = cls.identify(bus, address, sleep=sleep)
            except OSError as exc:
                log.debug("%s at %#04x: %s", cls.type_name, address, exc)
                continue
            if keys is not None:
                matches.append((str(keys.get("type", cls.type_name)), dict(keys)))
        if matches:
            (type_name, keys), others = matches[0], matches[1:]
            found.append(Found(address, type_name, keys, tuple(t for t, _ in others if t != type_name)))
        else:
            names = tuple(sorted({cls.type_name for cls in candidates}))
            found.append(Found(address, None, candidates=names))
    return found


def suggest_name(found: Found) -> str:
    """A sensor name for a found chip: `bme280_76`."""
    return f"{found.type_name or 'chip'}_{found.address:02x}"


def toml_block(found: Found, name: str, *, bus: int = 1, interval_s: int = 60) -> str:
    """A `[[sensor]]` block for `found`, ready to paste, or a comment line for a chip no sensor
    type recognised (`# 0x50: unknown chip`); either ends with a newline."""
    if found.type_name is None:
        text = f"# 0x{found.address:02x}: {found.note or 'unknown chip'}"
        if found.candidates:
            text += f"; sensor types that use this address: {', '.join(found.candidates)}"
        return text + "\n"
    keys = dict(found.keys)
    keys.pop("type", None)
    address = keys.pop("address", found.address)
    keys.pop("bus", None)
    lines = []
    if found.also:
        lines.append(f"## 0x{found.address:02x} also looks like: {', '.join(found.also)} "
                     f"(check the marking on the chip)")
    lines.append(sensor_block(name, found.type_name, {"bus": bus, "address": address, **keys},
                              interval_s=interval_s))
    return "\n".join(lines)


def sensor_block(name: str, type_name: str, keys: Mapping[str, Any], *, interval_s: int = 60) -> str:
    """A `[[sensor]]` block with `name`, `type`, `interval_s` and `keys` (an `address` in hex).
    Also for sensors found elsewhere, e.g. 1-Wire: `sensor_block("boiler", "ds18b20",
    {"device": "28-00000a1b2c3d"})`."""
    lines = ["[[sensor]]", f"name = {toml_value(name)}", f"type = {toml_value(type_name)}",
             f"interval_s = {interval_s}"]
    for key, value in keys.items():
        text = f"0x{value:02x}" if key == "address" and isinstance(value, int) else toml_value(value)
        lines.append(f"{toml_key(key)} = {text}")
    return "\n".join(lines) + "\n"
