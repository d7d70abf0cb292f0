"""Hook specifications. Every hook is synchronous, does no I/O and returns classes or values.

Compatibility rule: never remove or rename a hook parameter; adding one is compatible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .sensor import Sensor

PROJECT = "sensord"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sensord_register_sensors() -> list[type[Sensor]]:  # type: ignore[empty-body]
    """Return the `Sensor` subclasses this plugin provides.

    Each class needs a unique `type_name` (the TOML `type = ...`, lower case, `[a-z][a-z0-9_]*`)
    and a `Config` dataclass derived from `SensorConfig`.
    """
