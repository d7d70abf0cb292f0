"""Hook specifications. Every hook is synchronous, does no I/O and returns classes or values.

Compatibility rule: never remove or rename a hook parameter; adding one is compatible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .encoding import Encoding
    from .filters import FilterFactory
    from .sensor import Sensor
    from .testing.i2c import I2CDeviceModel

from collections.abc import Iterator, Mapping
from typing import Any

from .errors import PluginError

PROJECT = "sensord"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


def call_per_plugin(pm: pluggy.PluginManager, hook: str, *, returns: type | tuple[type, ...], expected: str,
                    hook_args: Mapping[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
    """Call each plugin's implementation of `hook` on its own, in load order, and yield
    `(plugin name, result)`: a registration hook's errors then name the plugin. PluginError when
    an implementation raises or returns something not of type `returns` (`expected` says what).

    Each call goes through pluggy (a hook caller for that one plugin, `pm.subset_hook_caller`)
    with `hook_args` as keyword arguments, so an implementation gets only the parameters it
    names: one written before the spec gained a parameter keeps working."""
    caller = getattr(pm.hook, hook, None)
    plugins = pm.get_plugins()
    for impl in caller.get_hookimpls() if caller is not None else []:
        where = f'plugin "{impl.plugin_name}": {hook}'
        alone = pm.subset_hook_caller(hook, [p for p in plugins if p is not impl.plugin])
        try:
            results = alone(**(hook_args or {}))
        except Exception as exc:  # third-party code can raise anything; name the plugin
            raise PluginError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        result = results[0] if results else None  # pluggy leaves out a None result
        if not isinstance(result, returns):
            raise PluginError(f"{where} must return {expected}, returned {type(result).__name__}")
        yield impl.plugin_name, result


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
