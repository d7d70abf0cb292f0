"""Write tests/ha/ha_device_classes.json: which units and state classes Home Assistant accepts per
sensor device class, and its binary sensor device classes, read from the installed Home Assistant.

Run with the Home Assistant venv (.ci/ha-env):  .venv-ha/bin/python tests/ha/dump_device_classes.py
`--check` exits 1 if the file differs from what the installed Home Assistant says (make test-ha runs
that). sensord's fast tests read the file to check its device class table without Home Assistant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("ha_device_classes.json")


def dump() -> dict[str, Any]:
    from homeassistant.components.binary_sensor import BinarySensorDeviceClass
    from homeassistant.components.sensor import const
    from homeassistant.const import __version__

    def values(items: Any) -> list[str | None]:
        # None in a unit set means "no unit" is allowed.
        return sorted((None if item is None else str(item) for item in items), key=lambda v: (v is not None, v))

    sensor = {}
    for device_class in sorted(const.SensorDeviceClass, key=str):
        sensor[str(device_class)] = {
            "units": values(const.DEVICE_CLASS_UNITS.get(device_class, ())),
            "state_classes": values(const.DEVICE_CLASS_STATE_CLASSES.get(device_class, ())),
            "numeric": device_class not in const.NON_NUMERIC_DEVICE_CLASSES,
        }
    return {
        "homeassistant": __version__,
        "sensor": sensor,
        "state_classes": values(const.SensorStateClass),
        "binary_sensor": values(BinarySensorDeviceClass),
    }


def main(argv: list[str]) -> int:
    text = json.dumps(dump(), indent=1, ensure_ascii=False) + "\n"
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run .venv-ha/bin/python {Path(__file__).relative_to(Path.cwd())}",
                  file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
