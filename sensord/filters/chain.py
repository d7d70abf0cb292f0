"""Filters and chains: the `Filter` API for plugins, `FilterChain` (with its heartbeat) and `Or`.

The rules every chain follows (non-finite values, booleans, heartbeat_s, period slack) are in
`sensord.filters`. Pure: no I/O, no clock (time comes from each sample's `ts`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..errors import ConfigError
from ..schema import build_options, show
from ..sensor import Value

T = TypeVar("T")


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
        # `usable()` written out: this runs for every reading and every filter.
        if isinstance(value, float) and not math.isfinite(value):
            return None
        beat = self._beat
        if beat.period_s is not None or beat.first_ts is None:  # else due() is False: skip the call
            force = beat.due(ts) or force
        out = value
        for f in self.filters:
            result = f.process(out, ts, force)
            if result is None or (isinstance(result, float) and not math.isfinite(result)):
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
