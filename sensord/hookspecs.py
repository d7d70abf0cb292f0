"""Hook specifications. Every hook is synchronous, does no I/O and returns classes or values.

Compatibility rule: never remove or rename a hook parameter; adding one is compatible, because
sensord calls every hook through pluggy (`sensord.plugins.call_per_plugin`), which passes an
implementation only the parameters it names. The loading and the collecting of what the hooks
return live in `sensord/plugins.py`; this module holds the specs only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .encoding import Encoding
    from .filters import FilterFactory
    from .sensor import Sensor
    from .testing.i2c import I2CDeviceModel

PROJECT = "sensord"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sensord_register_sensors() -> list[type[Sensor]]:  # type: ignore[empty-body]
    """Return the `Sensor` subclasses this plugin provides.

    Each class needs a unique `type_name` (the TOML `type = ...`, lower case, `[a-z][a-z0-9_]*`)
    and a `Config` dataclass derived from `SensorConfig`.
    """


@hookspec
def sensord_register_filters() -> dict[str, FilterFactory]:  # type: ignore[empty-body]
    """Return the filters this plugin provides: `{name: factory}`.

    A name is the key of a filter table in `filters = [...]` (lower case, `[a-z][a-z0-9_]*`) and
    must not clash with a built-in filter, `or`, or another plugin's filter. The factory is called
    once per use in the config as `factory(arg, path)` with the table's value and its key path
    (`sensor[0].filters[1].ewma`); it returns a `sensord.filters.Filter`, or raises ConfigError
    whose message starts with `path` (`sensord.filters.filter_error` writes one). A factory does
    no I/O; the Filter it returns reads no clock (time is the `ts` passed to `process`).
    """

@hookspec
def sensord_register_encodings() -> list[Encoding]:  # type: ignore[empty-body]
    """Return the batch encodings this plugin provides (objects, see `sensord.encoding.Encoding`).

    Each has a unique `name` (the `encoding = ...` config value, `[a-z][a-z0-9_.+-]*`), a
    `content_type`, `encode(batch: BatchData) -> bytes` raising EncodeError, `decode(payload:
    bytes) -> Batch` raising DecodeError, and `matches(payload: bytes) -> bool`, which recognises
    the encoding's own payloads from their first bytes (at most 16 are passed) without claiming
    another encoding's: every batch must be decodable on its own.
    """


@hookspec
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:  # type: ignore[empty-body]
    """Return the device models of this plugin's chips, for `--fake` and `sensord detect --fake`.

    Each is a `sensord.testing.I2CDeviceModel` subclass with an int `DEFAULT_ADDRESS` (0x03 to
    0x77) that builds with `address=` alone. The built-in drivers register their chips' models
    here too. The fake node puts one of each on bus 1, in plugin load order (built-in drivers
    first): at `DEFAULT_ADDRESS`, or when that is taken at the next free address above it
    (wrapping from 0x77 to 0x03). Only the fake node calls this hook, so import the models inside
    the implementation when your plugin should not import `sensord.testing` at start-up.
    """
