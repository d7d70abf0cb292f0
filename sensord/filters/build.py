"""Building filter chains from the config: `build_sensor_filters()` for a sensor's `filters` and
`channel_filters`, `build_chain()` for one list, with `or` (ESPHome's) built in because its
branches are chains. Factories come from a registry: `builtin_filters()`, plus the plugins'
(`sensord.plugins.collect_filters`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, PluginError
from ..schema import did_you_mean, show, toml_key
from .builtin import BUILTIN_FILTERS
from .chain import Filter, FilterChain, FilterFactory, Or
from .channels import ChannelFilters

#: The name of the combinator built into `build_chain`; no plugin may register it.
OR = "or"


def builtin_filters() -> dict[str, FilterFactory]:
    """The built-in filter factories by name (a new dict; `or` is not in it, see `OR`)."""
    return dict(BUILTIN_FILTERS)


def build_chain(spec: Any, *, path: str, file: str, registry: Mapping[str, FilterFactory]) -> FilterChain:
    """A chain from its TOML list (`[{delta = 0.1}, {heartbeat_s = 600}]`) at key path `path`.

    Raises ConfigError (`<file>: <path>[i].<name>: ...`) or, when a plugin's factory returns
    something that is not a Filter, PluginError."""
    if not isinstance(spec, list):
        raise ConfigError(f"{file}: {path}: expected a list of filters like [{{delta = 0.5}}], "
                          f"found {show(spec)}")
    return FilterChain([_build_filter(item, f"{path}[{i}]", file, registry) for i, item in enumerate(spec)])


def build_sensor_filters(filters_spec: Any, channel_filters_spec: Any, *, path: str, file: str,
                         registry: Mapping[str, FilterFactory]) -> ChannelFilters:
    """A sensor's `filters` and `channel_filters` (either may be None: absent) at `path` (`sensor[0]`)."""
    default = FilterChain() if filters_spec is None else build_chain(
        filters_spec, path=f"{path}.filters", file=file, registry=registry)
    overrides: dict[str, FilterChain] = {}
    if channel_filters_spec is not None:
        if not isinstance(channel_filters_spec, dict):
            raise ConfigError(f"{file}: {path}.channel_filters: expected a table of channel = [filters], "
                              f"found {show(channel_filters_spec)}")
        for quantity, chain_spec in channel_filters_spec.items():
            overrides[quantity] = build_chain(chain_spec, path=f"{path}.channel_filters.{toml_key(quantity)}",
                                              file=file, registry=registry)
    return ChannelFilters(default, overrides, path=path, file=file)


def _build_filter(item: Any, path: str, file: str, registry: Mapping[str, FilterFactory]) -> Filter:
    if not isinstance(item, dict):
        raise ConfigError(f"{file}: {path}: expected a table naming one filter like {{delta = 0.5}}, "
                          f"found {show(item)}")
    if len(item) != 1:
        keys = f" ({', '.join(item)})" if item else ""
        raise ConfigError(f"{file}: {path}: expected one filter per table, found {len(item)} keys{keys}")
    ((name, arg),) = item.items()
    arg_path = f"{path}.{name}"
    if name == OR:
        return _build_or(arg, arg_path, file, registry)
    factory = registry.get(name)
    if factory is None:
        known = sorted([*registry, OR])
        hint = did_you_mean(name, known) or f"; known filters: {', '.join(known)}"
        raise ConfigError(f"{file}: {path}: unknown filter {show(name)}{hint}")
    try:
        built = factory(arg, arg_path)
    except ValueError as exc:  # ConfigError included; a plugin may raise a plain ValueError
        raise ConfigError(_with_file(file, str(exc), arg_path)) from None
    if not isinstance(built, Filter):
        raise PluginError(f'filter "{name}": the factory returned {built!r:.60}, expected a sensord Filter')
    return built


def _build_or(arg: Any, path: str, file: str, registry: Mapping[str, FilterFactory]) -> Or:
    if not isinstance(arg, list) or not arg:
        raise ConfigError(f"{file}: {path}: expected a non-empty list of filters or chains like "
                          f"[{{delta = 0.5}}, {{heartbeat_s = 600}}], found {show(arg)}")
    branches = []
    for j, branch in enumerate(arg):
        if isinstance(branch, list):
            if not branch:
                raise ConfigError(f"{file}: {path}[{j}]: expected a chain of at least one filter, found []")
            branches.append(build_chain(branch, path=f"{path}[{j}]", file=file, registry=registry))
        else:
            branches.append(FilterChain([_build_filter(branch, f"{path}[{j}]", file, registry)]))
    return Or(branches)


def _with_file(file: str, message: str, path: str) -> str:
    """Prefix a factory's message with the file, and with the key path if it lacks one."""
    if message.startswith(path.split(".")[0]):
        return f"{file}: {message}"
    return f"{file}: {path}: {message}"
