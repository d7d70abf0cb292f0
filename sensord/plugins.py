"""Finding and loading plugins, and collecting what their hooks register.

Load order: the built-in modules (every module in `plugins/`, by name), then entry points of group
`sensord` (one at a time, so a broken third-party plugin is reported by name while the others
load), then `*.py` drop-in files from `[plugins] dirs`. Plugins named in `[plugins] disabled` are
blocked before they load.

A config that names its sensor types (`get_plugin_manager(sensor_types=...)`: `check`, `run`, a
reload) imports only the built-in modules that register those types, found in the generated
table `sensord_plugins._index` (`write_builtin_index()`); importing the other 17 drivers was most
of a start-up. The table is a cache, never the list of built-ins: pkgutil still finds every
module, a module the table does not know is imported as before, and the rest load on demand
(`PluginHost.load_deferred()`) when a type is still unknown, a loaded module registered other
types than the table says, or every chip model is wanted (the fake node). A test checks the
table against what importing every module registers.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from . import entrypoints, hookspecs
from .errors import PluginError
from .filters import OR, FilterFactory, builtin_filters
from .sensor import Sensor, SensorConfig

if TYPE_CHECKING:
    from .encoding import Encoding
    from .testing.i2c import I2CDeviceModel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sensord"
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginInfo(NamedTuple):  # not a dataclass: 0.7 ms less at every start (issue 13)
    """A plugin that loaded (or failed to): where it came from and its version."""

    name: str
    source: str  # "builtin", "entry point", "drop-in"
    version: str = ""
    origin: str = ""  # distribution name or file path
    error: str = ""


@dataclass
class PluginHost:
    """A pluggy manager plus what sensord learned while loading into it."""

    pm: pluggy.PluginManager
    loaded: list[PluginInfo] = field(default_factory=list)
    failed: list[PluginInfo] = field(default_factory=list)
    sensor_types: dict[str, type[Sensor]] = field(default_factory=dict)
    sensor_plugin: dict[str, str] = field(default_factory=dict)  # type name → plugin name
    filter_types: dict[str, FilterFactory] = field(default_factory=dict)
    #: The plugins' encodings, checked as they loaded; `encodings` adds the built-in ones.
    plugin_encodings: dict[str, Encoding] = field(default_factory=dict)
    #: The chip models of every plugin (`sensord_register_device_models`) in load order, built-in
    #: ones first; None until `collect_device_models` collects them (importing them costs start-up time).
    device_models: list[type[I2CDeviceModel]] | None = None
    device_model_plugin: dict[type[I2CDeviceModel], str] = field(default_factory=dict)  # model → plugin
    #: Built-in modules not imported because the config uses none of their types (see the module
    #: docstring); `load_deferred()` imports them.
    deferred: tuple[str, ...] = ()

    def load_deferred(self) -> None:
        """Import and register the built-in modules left out at start-up, then collect the sensor
        types again: for an unknown type's message, a stale table, or every chip model."""
        if not self.deferred:
            return
        modules, self.deferred = self.deferred, ()
        for module_name in modules:
            _register_builtin(self, module_name)
        _check_hooks(self.pm)
        self.sensor_types, self.sensor_plugin = {}, {}
        _collect_sensor_types(self)

    @property
    def encoding_names(self) -> list[str]:
        """The names of `encodings`, without importing the built-in encoders (`sensord check`)."""
        return [*BUILTIN_ENCODINGS, *self.plugin_encodings]

    @functools.cached_property
    def encodings(self) -> dict[str, Encoding]:
        """The built-in encodings, then the plugins', by name (as `collect_encodings` returns them)."""
        from .encoding import ENCODINGS

        return {**ENCODINGS, **self.plugin_encodings}

    def failure_hint(self) -> str:
        """A note for "unknown sensor type" errors when some plugin did not load."""
        if not self.failed:
            return ""
        return " (plugins that failed to load: " + ", ".join(f.name for f in self.failed) + ")"


def builtin_plugins() -> tuple[str, ...]:
    """The built-in plugins: every module of `sensord_plugins` (the `plugins/` folder) whose name
    does not start with "_", sorted by name. Nothing else lists them: a new driver is a new module."""
    import sensord_plugins

    found = pkgutil.iter_modules(sensord_plugins.__path__, f"{sensord_plugins.__name__}.")
    return tuple(sorted(m.name for m in found if not m.name.rsplit(".", 1)[-1].startswith("_")))


def _builtin_index() -> dict[str, tuple[str, ...]]:
    """The generated table: built-in module (short name) → the sensor types it registers; {}
    when it is missing or unreadable (then every built-in module is imported)."""
    try:
        from sensord_plugins import _index
    except ImportError:
        return {}
    table = getattr(_index, "SENSOR_TYPES", None)
    return table if isinstance(table, dict) else {}


def _needed_builtins(builtins: tuple[str, ...], sensor_types: Iterable[str]) -> tuple[str, ...]:
    """The modules of `builtins` to import for a config naming `sensor_types`: those the table
    says register one of them, and every module the table does not know."""
    index = _builtin_index()
    wanted = set(sensor_types)
    return tuple(m for m in builtins
                 if (short := m.rsplit(".", 1)[-1]) not in index or wanted.intersection(index[short]))


def write_builtin_index(path: str | Path | None = None) -> str:
    """Import every built-in module, and write what each registers as `sensord_plugins/_index.py`
    (or `path`); returns the text. Run it after adding a driver or a type (`make plugin-index`);
    until then the new module is imported at every start (nothing is lost, only time)."""
    host = get_plugin_manager(entry_points=False)
    # A module with a filter or an encoding is left out, so it is imported at every start: the
    # config's filters and encodings are checked against all of them.
    others = {impl.plugin_name for hook in ("sensord_register_filters", "sensord_register_encodings")
              for impl in getattr(host.pm.hook, hook).get_hookimpls()}
    by_module: dict[str, list[str]] = {p.name: [] for p in host.loaded if p.name not in others}
    for type_name, plugin in sorted(host.sensor_plugin.items()):
        if plugin in by_module:
            by_module[plugin].append(type_name)
    rows = "".join(f"    {_quoted(name)}: ({_quoted_tuple(types)}),\n" for name, types in sorted(by_module.items()))
    text = ('"""Generated by `make plugin-index` (`sensord.plugins.write_builtin_index()`): which built-in\n'
            "module registers which sensor types, so that a start-up imports only the drivers its config uses.\n"
            'A cache, checked by tests/test_plugins.py; a module missing here is imported at every start."""\n\n'
            f"SENSOR_TYPES: dict[str, tuple[str, ...]] = {{\n{rows}}}\n")
    import sensord_plugins

    target = Path(path) if path is not None else Path(next(iter(sensord_plugins.__path__))) / "_index.py"
    target.write_text(text)
    return text


def _quoted(text: str) -> str:
    return '"' + text + '"'


def _quoted_tuple(items: list[str]) -> str:
    return ", ".join(map(_quoted, items)) + ("," if len(items) == 1 else "")


def get_plugin_manager(*, dirs: Iterable[str] = (), disabled: Iterable[str] = (),
                       entry_points: bool = True,
                       builtins: Iterable[str] | None = None,
                       sensor_types: Iterable[str] | None = None) -> PluginHost:
    """Build a manager, load every plugin, validate hooks and collect the sensor types.
    `builtins` are module names to load first (default: `builtin_plugins()`). With
    `sensor_types` (the types a config names), only the built-in modules needed for them are
    imported; the others wait in `deferred` (see the module docstring).

    Raises PluginError for a hook implementation with no matching spec (a misspelled hook) and
    for invalid or clashing registrations; plugins that fail to import are recorded in `failed`.
    """
    builtins = builtin_plugins() if builtins is None else tuple(builtins)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    blocked = set(disabled)
    for name in blocked:
        pm.set_blocked(name)

    needed = builtins if sensor_types is None else _needed_builtins(builtins, sensor_types)
    host.deferred = tuple(m for m in builtins if m not in needed and m.rsplit(".", 1)[-1] not in blocked)
    for module_name in needed:
        if module_name.rsplit(".", 1)[-1] not in blocked:
            _register_builtin(host, module_name)

    # A built-in's name stays taken when its module is deferred: an old third-party plugin of a
    # chip that became a built-in (the example plugin's mcp9808) is refused the same way whether
    # or not the config names that type, instead of clashing in the sensor types only sometimes.
    builtin_names = {m.rsplit(".", 1)[-1] for m in builtins} - blocked
    if entry_points:
        for ep in entrypoints.entry_points(ENTRY_POINT_GROUP):
            dist = ep.dist
            dist_text = f"{dist.name} {dist.version}" if dist is not None else "unknown dist"
            info = PluginInfo(ep.name, "entry point", dist.version if dist else "", dist_text)
            if ep.name in blocked:
                continue
            if pm.has_plugin(ep.name) or ep.name in builtin_names:
                _fail(host, info, _taken(ep.name, builtin_names))
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a third-party import can raise anything
                _fail(host, info, _cause(exc))
                continue
            host.loaded.append(info)

    for directory in dirs:
        for path in sorted(Path(directory).glob("*.py")) if Path(directory).is_dir() else []:
            name = path.stem
            info = PluginInfo(name, "drop-in", "", str(path))
            if name in blocked:
                continue
            if pm.has_plugin(name) or name in builtin_names:
                _fail(host, info, _taken(name, builtin_names))
                continue
            try:
                pm.register(_import_file(path), name=name)
            except Exception as exc:  # a drop-in can raise anything at import
                _fail(host, info, _cause(exc))
                continue
            host.loaded.append(info)

    # Only with names to check: _discoverable() scans the entry points a second time.
    unknown_blocked = blocked - {p.name for p in host.loaded} - _discoverable(dirs, builtins) if blocked else set()
    for name in sorted(unknown_blocked):
        log.warning("[plugins] disabled names %r, but no plugin of that name exists", name)

    _check_hooks(pm)
    _collect_sensor_types(host)
    if host.deferred and not _index_holds(host):
        host.load_deferred()
    host.filter_types = collect_filters(pm)
    host.plugin_encodings = collect_plugin_encodings(pm)
    builtin = {p.name for p in host.loaded if p.source == "builtin"}
    if any(impl.plugin_name not in builtin for impl in pm.hook.sensord_register_device_models.get_hookimpls()):
        collect_device_models(host)  # a third-party plugin's bad model is a start-up error, as its sensors are
    return host


def _register_builtin(host: PluginHost, module_name: str) -> None:
    short = module_name.rsplit(".", 1)[-1]
    host.pm.register(importlib.import_module(module_name), name=short)
    host.loaded.append(PluginInfo(short, "builtin", _own_version(), module_name))


def _index_holds(host: PluginHost) -> bool:
    """Each imported built-in module registered exactly the types the table gives it."""
    index = _builtin_index()
    registered: dict[str, set[str]] = {p.name: set() for p in host.loaded if p.source == "builtin"}
    for type_name, plugin in host.sensor_plugin.items():
        if plugin in registered:
            registered[plugin].add(type_name)
    return all(name not in index or set(index[name]) == types for name, types in registered.items())


def _taken(name: str, builtin_names: set[str]) -> str:
    if name in builtin_names:
        return "a built-in plugin has that name (rename this one, or remove it if sensord now drives its chip itself)"
    return "a plugin of that name is already loaded"


def _fail(host: PluginHost, info: PluginInfo, cause: str) -> None:
    failed = PluginInfo(info.name, info.source, info.version, info.origin, cause)
    host.failed.append(failed)
    log.error('cannot load plugin "%s" (%s): %s', info.name, info.origin, cause)


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _own_version() -> str:
    from . import __version__

    return __version__


def _import_file(path: Path) -> ModuleType:
    module_name = f"sensord_dropin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _discoverable(dirs: Iterable[str], builtins: Iterable[str]) -> set[str]:
    names = {m.rsplit(".", 1)[-1] for m in builtins}
    names |= {ep.name for ep in entrypoints.entry_points(ENTRY_POINT_GROUP)}
    for directory in dirs:
        if Path(directory).is_dir():
            names |= {p.stem for p in Path(directory).glob("*.py")}
    return names


def _check_hooks(pm: pluggy.PluginManager) -> None:
    """A `sensord_*` function marked as a hook implementation must match a spec."""
    specs = [name for name in dir(hookspecs) if name.startswith("sensord_")]
    for plugin_name, plugin in pm.list_name_plugin():
        for attr in dir(plugin):
            impl = getattr(plugin, attr, None)
            if not attr.startswith("sensord_") or attr in specs:
                continue
            if callable(impl) and hasattr(impl, f"{hookspecs.PROJECT}_impl"):
                import difflib  # here: only an error's did-you-mean needs it (0.2 MiB)

                close = difflib.get_close_matches(attr, specs, n=1)
                hint = f', did you mean "{close[0]}"?' if close else f"; known hooks: {', '.join(specs)}"
                raise PluginError(f'plugin "{plugin_name}": unknown hook "{attr}"{hint}')
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f'plugin "{exc.plugin}": {exc}') from None


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


def _collect_sensor_types(host: PluginHost) -> None:
    """Call each plugin's `sensord_register_sensors` separately so errors name the plugin. A
    type that a deferred built-in module registers (by the table) clashes as if it were loaded."""
    deferred = {m.rsplit(".", 1)[-1] for m in host.deferred}
    owner = {t: name for name, types in _builtin_index().items() if name in deferred for t in types}
    for plugin, result in call_per_plugin(host.pm, "sensord_register_sensors", returns=(list, tuple),
                                          expected="a list of Sensor classes"):
        for cls in result:
            _validate_sensor_class(plugin, cls)
            if cls.type_name in host.sensor_types or cls.type_name in owner:
                other = host.sensor_plugin.get(cls.type_name) or owner[cls.type_name]
                raise PluginError(f'plugin "{plugin}": sensor type "{cls.type_name}" is already '
                                  f'registered by plugin "{other}"')
            host.sensor_types[cls.type_name] = cls
            host.sensor_plugin[cls.type_name] = plugin


def _validate_sensor_class(plugin: str, cls: Any) -> None:
    where = f'plugin "{plugin}"'
    if not (isinstance(cls, type) and issubclass(cls, Sensor)):
        raise PluginError(f"{where}: sensord_register_sensors returned {cls!r}, expected a Sensor subclass")
    if not isinstance(cls.type_name, str) or not _TYPE_NAME.match(cls.type_name):
        raise PluginError(f"{where}: {cls.__name__}.type_name must match [a-z][a-z0-9_]*, "
                          f"found {cls.type_name!r}")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, SensorConfig)
            and is_dataclass(cls.Config)):
        raise PluginError(f"{where}: {cls.__name__}.Config must be a dataclass derived from SensorConfig")


def collect_device_models(host: PluginHost) -> list[type[I2CDeviceModel]]:
    """The chip models of every plugin in `host` (`sensord_register_device_models`), in load order:
    the built-in drivers' first. Collected on the first call and kept in `host.device_models`:
    only the fake node needs them, so a plain start-up does not import `sensord.testing`
    (`get_plugin_manager` collects at once only when a plugin that is not built in has models,
    so that its errors show at start-up). Each plugin is called on its own so errors name it."""
    if host.device_models is not None:
        return host.device_models
    from .testing.i2c import I2CDeviceModel  # only now: the models cost start-up time

    host.load_deferred()  # one model of every chip: the drivers a config does not use included
    builtin_first = {p.name: p.source != "builtin" for p in host.loaded}

    models: list[type[I2CDeviceModel]] = []
    owner: dict[type[I2CDeviceModel], str] = {}
    found = call_per_plugin(host.pm, "sensord_register_device_models", returns=(list, tuple),
                            expected="a list of I2CDeviceModel classes")
    # Built-in drivers first, in name order, also when some were loaded after the entry points.
    ranked = sorted(found, key=lambda item: (builtin_first.get(item[0], True),
                                             item[0] if not builtin_first.get(item[0], True) else ""))
    for plugin, result in ranked:
        where = f'plugin "{plugin}": sensord_register_device_models'
        for cls in result:
            if not (isinstance(cls, type) and issubclass(cls, I2CDeviceModel)):
                raise PluginError(f"{where} returned {cls!r}, expected a subclass of "
                                  f"sensord.testing.I2CDeviceModel")
            default = getattr(cls, "DEFAULT_ADDRESS", None)
            if not (isinstance(default, int) and not isinstance(default, bool) and 0x03 <= default <= 0x77):
                raise PluginError(f"{where}: {cls.__name__}.DEFAULT_ADDRESS must be an I2C address "
                                  f"from 0x03 to 0x77, found {default!r}")
            try:
                inspect.signature(cls).bind(address=default)
            except TypeError as exc:
                raise PluginError(f"{where}: {cls.__name__} must build with only address=: {exc}") from None
            except ValueError:  # no signature to inspect (a C extension): find out when it is built
                pass
            if cls in owner:
                raise PluginError(f'{where}: device model {cls.__name__} is already registered by '
                                  f'plugin "{owner[cls]}"')
            models.append(cls)
            owner[cls] = plugin
    host.device_models, host.device_model_plugin = models, owner
    return models


_ENCODING_NAME = re.compile(r"[a-z][a-z0-9_.+-]*")
#: The names of `sensord.encoding.ENCODINGS`, in its order: loading plugins checks theirs against
#: these without importing the encoders (tests/test_encoding.py compares the two).
BUILTIN_ENCODINGS = ("compact", "json", "senml+json", "senml+cbor")


def collect_encodings(pm: pluggy.PluginManager) -> dict[str, Encoding]:
    """The built-in encodings, then each plugin's, in load order; PluginError naming the plugin
    for a hook that raises, returns something else than a list of encodings, or reuses a name."""
    from .encoding import ENCODINGS

    return {**ENCODINGS, **collect_plugin_encodings(pm)}


def collect_plugin_encodings(pm: pluggy.PluginManager) -> dict[str, Encoding]:
    """Each plugin's encodings, in load order, checked as `collect_encodings` says."""
    found: dict[str, Encoding] = {}
    owner = dict.fromkeys(BUILTIN_ENCODINGS, "sensord (built-in)")
    for plugin, result in call_per_plugin(pm, "sensord_register_encodings", returns=(list, tuple),
                                          expected="a list of encodings"):
        for item in result:
            problem = _encoding_problem(item)
            if problem:
                raise PluginError(f'plugin "{plugin}": sensord_register_encodings returned {item!r}: {problem}')
            if item.name in owner:
                raise PluginError(f'plugin "{plugin}": encoding "{item.name}" is already registered by '
                                  f"{owner[item.name]}")
            found[item.name] = item
            owner[item.name] = f'plugin "{plugin}"'
    return found


def _encoding_problem(item: object) -> str | None:
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not _ENCODING_NAME.fullmatch(name):
        return f"name {name!r} is not a lower-case name ([a-z][a-z0-9_.+-]*)"
    content_type = getattr(item, "content_type", None)
    if not isinstance(content_type, str) or not content_type:
        return f"content_type {content_type!r} is not a non-empty string"
    missing = [m for m in ("matches", "encode", "decode") if not callable(getattr(item, m, None))]
    return f"missing method {', '.join(missing)}" if missing else None


def collect_filters(pm: pluggy.PluginManager) -> dict[str, FilterFactory]:
    """The built-in filters plus every plugin's `sensord_register_filters`, called one plugin at a
    time so that an error names the plugin. Raises PluginError on a bad return or a name clash."""
    registry = builtin_filters()
    owner = dict.fromkeys([*registry, OR], "")  # "" = built-in
    for plugin, result in call_per_plugin(pm, "sensord_register_filters", returns=Mapping,
                                          expected="a dict of filter name to factory"):
        where = f'plugin "{plugin}": sensord_register_filters'
        for name, factory in result.items():
            if not isinstance(name, str) or not _TYPE_NAME.match(name):
                raise PluginError(f"{where}: filter names must match [a-z][a-z0-9_]*, found {name!r}")
            if not callable(factory):
                raise PluginError(f'{where}: filter "{name}": expected a factory (arg, path) -> Filter, '
                                  f"found {factory!r:.60}")
            if name in owner:
                other = owner[name]
                by = f'plugin "{other}"' if other else "sensord (built-in)"
                raise PluginError(f'plugin "{plugin}": filter "{name}" is already registered by {by}')
            registry[name] = factory
            owner[name] = plugin
    return registry
