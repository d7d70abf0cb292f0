"""The filter layer: per-channel chains that drop, transform or thin out samples. Pure, no I/O.

Time comes only from each sample's `ts`; no clock is read. In the config a chain is a list of
one-key tables, the key naming the filter and the value being its argument::

    [[sensor]]
    name = "attic"
    type = "bme280"
    interval_s = 60
    filters = [{clamp = {min = -40, max = 85, mode = "drop"}}, {round = 1}, {delta = 0.2}, {heartbeat_s = 600}]

    [sensor.channel_filters]          # replaces the sensor-wide chain for the channels named here
    pressure = [{delta = "1%"}, {heartbeat_s = 1800}]
    humidity = []                     # no filtering at all

Each channel of a sensor gets its own chain with its own state. The built-in filters are in
`sensord.filters_builtin`; `or` (ESPHome's) is built into the chain builder because its branches
are chains. Rules that hold for every chain:

- A float that is not finite (NaN, ±inf) never passes: JSON cannot carry it and it would poison
  averages. It is dropped before the first filter and touches no filter's state.
- Booleans (door contacts) are data: numeric transforms (round, step, clamp, offset, multiply,
  calibrate_linear, moving_average, median) pass them untouched; delta passes a change; throttle_s,
  heartbeat_s and or work as for numbers.
- `heartbeat_s = H` is a floor, not a limit: a value arriving H seconds or more after the chain's
  last output passes even if a filter that holds values back (delta, throttle_s, the send_every of
  moving_average and median) would drop it; the chain runs those filters in *forced* mode. Filters
  that reject a value as invalid (clamp with mode "drop", non-finite values) still drop it. Filters
  run only when a reading arrives, so the heartbeat fires on the first reading at or after H, not
  on a timer: while valid readings arrive, the gap between outputs is at most H + interval_s.
  Where it sits in the chain does not matter. Alone it changes nothing (use throttle_s to send
  less often). In an `or`, a branch that is only heartbeat_s passes a value when H has passed
  since the `or` last passed one, so ESPHome's `or = [{delta = 0.5}, {heartbeat_s = 600}]`
  means what it does there.
- Periods (throttle_s, heartbeat_s) are compared with a slack of 1% of the period, at most 50 ms:
  the scheduler stamps readings with the wall clock on a monotonic grid, so a reading due exactly
  one period later can be stamped a few milliseconds early, and without slack it would wait one
  more interval half the time. A clock stepped backwards counts as the period having passed, so
  a time jump cannot mute a channel.

Plugins add filters through the `sensord_register_filters` hook (`collect_filters`): a
factory takes the TOML argument and its key path and returns a `Filter`, or raises `ConfigError`
whose message starts with that key path (`filter_error()` writes one; `filter_options()` builds an
options dataclass from a table with sensord's usual messages). The file name is added for it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, PluginError
from ..schema import build_options, did_you_mean, show, toml_key
from ..sensor import Value

if TYPE_CHECKING:
    import pluggy

    from ..sensor import Sample

T = TypeVar("T")

#: The name of the combinator built into `build_chain`; no plugin may register it.
OR = "or"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# ---------------------------------------------------------------------------------------------
# The filter API


class Filter:
    """One step of a chain. Subclasses implement `process`; stateful ones also `reset`.

    `process(value, ts, force)` returns the value to pass on (possibly changed) or None to drop
    it. `force` is True when the chain's heartbeat is due: a filter that merely holds values back
    (a deadband, a rate limit, an every-Nth-value sender) must then pass one and update its state
    as if it had passed it normally; a filter that rejects invalid values ignores `force`.
    Non-finite floats never reach a filter inside a chain, but a filter should still not break on
    one. Booleans are data (see the module docstring).
    """

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all state, as if no value had been seen. Default: stateless, nothing to do."""

    def resolution(self, upstream: float | None) -> float | None:
        """The step between distinct output values, given that of the input (None: exact float).

        Default None: an unknown filter may change values arbitrarily. A filter that passes
        values unchanged returns `upstream`; a quantiser returns its step."""
        return None


FilterFactory = Callable[[Any, str], Filter]
"""Builds a filter from its TOML argument and key path (`sensor[0].filters[1].delta`).

Raises `ConfigError` (or `ValueError`) whose message starts with the key path."""


def filter_error(path: str, expected: str, found: Any) -> ConfigError:
    """`<path>: expected <expected>, found <found as TOML>`, for factories to raise."""
    return ConfigError(f"{path}: expected {expected}, found {show(found)}")


def filter_options(cls: type[T], arg: Any, path: str) -> T:
    """Build dataclass `cls` from a filter's table argument, with sensord's messages.

    Field types and `metadata` bounds are checked as for `SensorConfig`; unknown keys get a
    did-you-mean; `__post_init__` raises `ValueError("<key>: ...")` for checks across fields."""
    try:
        built: T = build_options(cls, arg, path, "")
    except ConfigError as exc:  # built with no file name: ": <path>: ..."
        raise ConfigError(str(exc).removeprefix(": ")) from None
    return built


def is_number(value: Any) -> bool:
    """True for int and float values that numeric transforms apply to (not bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def usable(value: Any) -> bool:
    """False for the floats a chain never passes: NaN, +inf, -inf."""
    return not (isinstance(value, float) and not math.isfinite(value))


def period_passed(now: float, since: float, period_s: float) -> bool:
    """`period_s` has passed from `since` to `now`, with jitter slack; a backwards clock counts."""
    return now < since or now - since >= period_s - min(0.05, 0.01 * period_s)


def common_grid(resolutions: Iterable[float | None]) -> float | None:
    """The finest step that all outputs lie on: the smallest step when every other step is a
    multiple of it, else None (also None when any step is None or there are none)."""
    steps = list(resolutions)
    if not steps or any(r is None for r in steps):
        return None
    finest = min(r for r in steps if r is not None)
    return finest if all(r is not None and on_grid(r, finest) for r in steps) else None


def on_grid(value: float, step: float) -> bool:
    """`value` is an integer multiple of `step` (0 included), allowing for float rounding."""
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-9 * max(1.0, abs(ratio))


class Gate(Filter):
    """A filter that passes values unchanged or drops them, so it keeps the resolution."""

    def resolution(self, upstream: float | None) -> float | None:
        return upstream


class Heartbeat(Gate):
    """`heartbeat_s`: passes values unchanged; the chain holding it does the work (see module)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        return value


class _Beat:
    """The heartbeat bookkeeping shared by chains and `or`: is a forced pass due at `ts`?"""

    def __init__(self, period_s: float | None) -> None:
        self.period_s = period_s
        self.first_ts: float | None = None
        self.last_out_ts: float | None = None

    def due(self, ts: float) -> bool:
        if self.first_ts is None:
            self.first_ts = ts
        if self.period_s is None:
            return False
        since = self.last_out_ts if self.last_out_ts is not None else self.first_ts
        return period_passed(ts, since, self.period_s)

    def reset(self) -> None:
        self.first_ts = self.last_out_ts = None


class FilterChain(Filter):
    """An ordered list of filters with its own heartbeat, itself usable as a filter."""

    def __init__(self, filters: Sequence[Filter] = ()) -> None:
        self.filters = tuple(filters)
        beats = [f.period_s for f in self.filters if isinstance(f, Heartbeat)]
        self._beat = _Beat(min(beats) if beats else None)

    @property
    def heartbeat_s(self) -> float | None:
        """The shortest heartbeat_s in this chain (None without one)."""
        return self._beat.period_s

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        """Run `value` through every filter; None when one drops it."""
        if not usable(value):
            return None
        force = self._beat.due(ts) or force
        out = value
        for f in self.filters:
            result = f.process(out, ts, force)
            if result is None or not usable(result):
                return None
            out = result
        self._beat.last_out_ts = ts
        return out

    def reset(self) -> None:
        self._beat.reset()
        for f in self.filters:
            f.reset()

    def resolution(self, declared: float | None) -> float | None:
        """The channel's resolution after this chain, given the sensor's declared one.

        The coarsest quantiser (round, step) whose grid still holds at the end wins; a
        transform after it (multiply, offset off the grid, an average) cancels it → None."""
        res = declared
        for f in self.filters:
            res = f.resolution(res)
        return res

    def copy(self) -> FilterChain:
        """An independent chain with the same filters and no state."""
        fresh = copy.deepcopy(self)
        fresh.reset()
        return fresh


class Or(Filter):
    """`or`: every branch sees every value; the output is the first passing branch's output.

    Branches that are only heartbeat_s pass the value when their period has passed since this
    `or` last passed a value (ESPHome's `or: [delta, heartbeat]` idiom); each other branch keeps
    its own state, as in ESPHome (a delta branch compares with what *it* last passed)."""

    def __init__(self, branches: Sequence[FilterChain]) -> None:
        self.branches = tuple(b for b in branches if not _only_heartbeats(b))
        beats = [b.heartbeat_s for b in branches if _only_heartbeats(b) and b.heartbeat_s is not None]
        self._beat = _Beat(min(beats) if beats else None)
        self._has_beats = bool(beats)

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if not usable(value):
            return None
        force = self._beat.due(ts) or force
        result: Value | None = None
        for branch in self.branches:
            out = branch.process(value, ts, force)
            if result is None and out is not None:
                result = out
        if result is None and force and self._has_beats:
            result = value
        if result is not None:
            self._beat.last_out_ts = ts
        return result

    def reset(self) -> None:
        self._beat.reset()
        for branch in self.branches:
            branch.reset()

    def resolution(self, upstream: float | None) -> float | None:
        grids = [b.resolution(upstream) for b in self.branches]
        if self._has_beats:
            grids.append(upstream)
        return common_grid(grids)


def _only_heartbeats(chain: FilterChain) -> bool:
    return bool(chain.filters) and all(isinstance(f, Heartbeat) for f in chain.filters)


# ---------------------------------------------------------------------------------------------
# Per-sensor, per-channel chains


class ChannelFilters:
    """One sensor's filters: a sensor-wide chain and per-channel overrides, state per channel.

    The instance built from the config is a template; the daemon takes `fresh()` copies for each
    run so that filter state never outlives a reload. `for_channel(q)` creates the chain of
    channel `q` on first use and returns the same (stateful) chain afterwards."""

    def __init__(self, default: FilterChain | None = None, overrides: Mapping[str, FilterChain] | None = None,
                 *, path: str = "", file: str = "") -> None:
        self.default = default if default is not None else FilterChain()
        self.overrides = dict(overrides or {})
        self.path = path
        self.file = file
        self._live: dict[str, FilterChain] = {}

    @classmethod
    def passthrough(cls) -> ChannelFilters:
        """No filters (non-finite values are still dropped)."""
        return cls()

    def template(self, quantity: str) -> FilterChain:
        """The configured (stateless) chain of channel `quantity`."""
        return self.overrides.get(quantity, self.default)

    def for_channel(self, quantity: str) -> FilterChain:
        """The live chain of channel `quantity`, with state independent of every other channel."""
        chain = self._live.get(quantity)
        if chain is None:
            chain = self._live[quantity] = self.template(quantity).copy()
        return chain

    def apply(self, samples: Sequence[Sample]) -> list[Sample]:
        """Filter one sensor's samples in order; returns those that pass, with filtered values."""
        passed = []
        for sample in samples:
            value = self.for_channel(sample.quantity).process(sample.value, sample.ts)
            if value is None:
                continue
            passed.append(sample if value is sample.value else dataclasses.replace(sample, value=value))
        return passed

    def resolution(self, quantity: str, declared: float | None) -> float | None:
        """Channel `quantity`'s resolution after its chain (see `FilterChain.resolution`)."""
        return self.template(quantity).resolution(declared)

    def fresh(self) -> ChannelFilters:
        """The same configuration with no state."""
        return ChannelFilters(self.default, self.overrides, path=self.path, file=self.file)

    def reset(self) -> None:
        """Drop every channel's state."""
        self._live.clear()

    def check_channels(self, quantities: Iterable[str]) -> None:
        """ConfigError for a `channel_filters` key that is not one of the sensor's channels.

        Call it with the quantities of `Sensor.channels()`; an empty list (a driver that does
        not declare its channels) checks nothing."""
        known = sorted(set(quantities))
        if not known:
            return
        for quantity in self.overrides:
            if quantity not in known:
                raise ConfigError(f"{self.file}: {self.path}.channel_filters.{toml_key(quantity)}: unknown "
                                  f"channel{did_you_mean(quantity, known)}; the sensor has: {', '.join(known)}")

    def __repr__(self) -> str:
        return f"ChannelFilters({self.default!r}, {self.overrides!r})"


# ---------------------------------------------------------------------------------------------
# Building chains from the config


def builtin_filters() -> dict[str, FilterFactory]:
    """The built-in filter factories by name (a new dict; `or` is not in it, see `OR`)."""
    # filters_builtin subclasses Filter from this module, so import it at call time.
    from .builtin import BUILTIN_FILTERS

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


# ---------------------------------------------------------------------------------------------
# Plugins

def collect_filters(pm: pluggy.PluginManager) -> dict[str, FilterFactory]:
    """The built-in filters plus every plugin's `sensord_register_filters`, called one plugin at a
    time so that an error names the plugin. Raises PluginError on a bad return or a name clash."""
    registry = builtin_filters()
    owner = dict.fromkeys([*registry, OR], "")  # "" = built-in
    from ..hookspecs import call_per_plugin

    for plugin, result in call_per_plugin(pm, "sensord_register_filters", returns=Mapping,
                                          expected="a dict of filter name to factory"):
        where = f'plugin "{plugin}": sensord_register_filters'
        for name, factory in result.items():
            if not isinstance(name, str) or not _NAME.match(name):
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
