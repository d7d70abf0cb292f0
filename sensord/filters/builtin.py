"""The built-in filters and their factories (`BUILTIN_FILTERS`). Pure, no I/O, no clocks.

Semantics shared by every filter (NaN, booleans, heartbeat, forced mode) are described in
`sensord.filters`. Summary of the filters, with their TOML form:

- `{delta = 0.5}` / `{delta = "5%"}`: deadband; passes a value when it differs from the last one
  this filter passed by at least 0.5 (or 5% of that value; relative to 0, any change passes). The
  first value passes. A step of exactly `delta` passes despite float rounding. Booleans: changes.
- `{throttle_s = 60}`: at most one value per 60 s (the first passes).
- `{heartbeat_s = 600}`: send at least every 600 s (see `sensord.filters`).
- `{round = 1}`: round to 1 decimal place, halves away from zero on the value as printed
  (2.675 → 2.68). `{step = 0.5}`: round to a multiple of 0.5. Both set the channel's resolution
  (`FilterChain.resolution`); with a whole-number step (or `round = 0`) values become integers.
- `{clamp = {min = 0, max = 100, mode = "clip"}}`: out-of-range values are clipped to the bound
  (`"clip"`, the default) or dropped as invalid (`"drop"`; a heartbeat does not force them).
- `{offset = -1.5}`, `{multiply = 1.8}`: value + offset, value × factor.
- `{calibrate_linear = [[0.0, 0.3], [50.0, 49.1], [100.0, 98.5]]}`: `[measured, true]` points;
  the least-squares line through them maps measured to true (`fit_line`).
- `{moving_average = {window = 10, send_every = 10}}` (mean of the last 10 values) or
  `{moving_average = {alpha = 0.1, send_every = 5}}` (exponential, the first value seeds it);
  `{median = {window = 5, send_every = 1}}`. `send_every` (default 1): send every Nth value;
  `send_first_at` (default 1, at most send_every): which value is sent first, as in ESPHome.
  NaN values are skipped, not averaged; a due heartbeat sends the current aggregate.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..schema import show
from ..sensor import Value
from .chain import (
    Filter,
    FilterFactory,
    Gate,
    Heartbeat,
    filter_error,
    filter_options,
    is_number,
    on_grid,
    period_passed,
    usable,
)

if TYPE_CHECKING:
    from decimal import Decimal

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


# ---------------------------------------------------------------------------------------------
# Gates: pass values unchanged or drop them


class Delta(Gate):
    """Deadband against the last value passed: absolute, or a percentage of that value."""

    def __init__(self, threshold: float, *, percent: bool = False) -> None:
        self.threshold = threshold
        self.percent = percent
        self._last: Value | None = None

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if not usable(value):
            return None
        if self._last is None or force or self._moved(value, self._last):
            self._last = value
            return value
        return None

    def _moved(self, value: Value, last: Value) -> bool:
        if not (is_number(value) and is_number(last)):
            return value != last or isinstance(value, bool) != isinstance(last, bool)
        diff = abs(value - last)
        threshold = self.threshold * abs(last) / 100 if self.percent else self.threshold
        # 20.2 - 20.1 is 0.09999999999999787: a step of exactly `delta` must still pass.
        slack = 1e-12 * max(1.0, abs(value), abs(last))
        return diff > 0 and diff >= threshold - slack

    def reset(self) -> None:
        self._last = None


class Throttle(Gate):
    """At most one value per `period_s` seconds of sample time."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._last_ts: float | None = None

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if not usable(value):
            return None
        if self._last_ts is None or force or period_passed(ts, self._last_ts, self.period_s):
            self._last_ts = ts
            return value
        return None

    def reset(self) -> None:
        self._last_ts = None


class Clamp(Filter):
    """Keep values within [minimum, maximum]: clip them to the bound, or drop them as invalid."""

    def __init__(self, minimum: float | None, maximum: float | None, *, drop: bool = False) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.drop = drop

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if not usable(value):
            return None
        if not is_number(value):
            return value
        if self.minimum is not None and value < self.minimum:
            return None if self.drop else self.minimum
        if self.maximum is not None and value > self.maximum:
            return None if self.drop else self.maximum
        return value

    def resolution(self, upstream: float | None) -> float | None:
        if self.drop or upstream is None:
            return upstream
        bounds = [b for b in (self.minimum, self.maximum) if b is not None]
        return upstream if all(on_grid(b, upstream) for b in bounds) else None


# ---------------------------------------------------------------------------------------------
# Transforms: one value in, one value out


class Quantise(Filter):
    """Round to a multiple of `quantum` (10^-decimals for `round`, the step for `step`)."""

    def __init__(self, quantum: str, *, places: int | None = None) -> None:
        """`quantum` as decimal text (`"0.05"`, `"1E-2"`); `places` when it is 10**-places, places >= 0.

        `decimal` is imported only when a value needs the Decimal path (a repr in exponent form,
        `step`): it costs every daemon 0.4 MiB, and `round = N` on a float takes `_round_repr`."""
        self._text = quantum
        self._places = places
        self._resolution = float(quantum)
        self._quantum: Decimal | None = None

    @property
    def quantum(self) -> Decimal:
        if self._quantum is None:
            from decimal import Decimal

            self._quantum = Decimal(self._text)
        return self._quantum

    @classmethod
    def decimals(cls, places: int) -> Quantise:
        return cls(f"1E{-places:+d}", places=places if places >= 0 else None)

    @classmethod
    def step(cls, step: float) -> Quantise:
        return cls(repr(step))

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if type(value) is float and self._places is not None and math.isfinite(value):
            rounded = _round_repr(value, self._places)
            if rounded is not None:
                return rounded
        if not usable(value):
            return None
        if not is_number(value):
            return value
        from decimal import ROUND_HALF_UP, Decimal

        # Decimal on the shortest repr: 2.675 is printed 2.675 and should round to 2.68.
        quantum = self.quantum
        units = (Decimal(repr(value)) / quantum).to_integral_value(rounding=ROUND_HALF_UP)
        result = units * quantum
        return int(result) if quantum == quantum.to_integral_value() else float(result)

    def resolution(self, upstream: float | None) -> float | None:
        quantum = self._resolution
        # Values already on a coarser grid that is a multiple of ours stay on it.
        return upstream if upstream is not None and on_grid(upstream, quantum) else quantum


def _round_repr(value: float, places: int) -> Value | None:
    """What the Decimal path of `Quantise` returns for a quantum of 10**-places, from the repr's
    digits (half up, away from zero); about 4 times cheaper, and this runs for every reading. None
    for a repr in exponent form (the Decimal path then)."""
    text = repr(value)
    if "e" in text:
        return None
    negative = text.startswith("-")
    whole, _, frac = text.removeprefix("-").partition(".")
    if len(frac) <= places:
        return value  # on the grid already
    units = int(whole + frac[:places]) + (frac[places] >= "5")
    if not places:
        return -units if negative else units  # an integral quantum gives an int
    result: float = units / 10**places  # int / int rounds correctly, as float(Decimal) does
    return -result if negative else result


class Linear(Filter):
    """value × slope + intercept (`offset`, `multiply`, `calibrate_linear`)."""

    def __init__(self, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.slope = slope
        self.intercept = intercept

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if not usable(value):
            return None
        if not is_number(value):
            return value
        return value * self.slope + self.intercept

    def resolution(self, upstream: float | None) -> float | None:
        # An integer factor and an offset on the grid keep values on the grid; anything else
        # (1.8, an arbitrary calibration) moves them off it.
        if upstream is None or not float(self.slope).is_integer() or not on_grid(self.intercept, upstream):
            return None
        return upstream


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares `(slope, intercept)` of true = slope × measured + intercept.

    ValueError with fewer than 2 points or when all measured values are equal."""
    if len(points) < 2:
        raise ValueError(f"need at least 2 points, got {len(points)}")
    n = len(points)
    mean_x = math.fsum(x for x, _ in points) / n
    mean_y = math.fsum(y for _, y in points) / n
    sxx = math.fsum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("all measured values are equal")
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


# ---------------------------------------------------------------------------------------------
# Aggregates: a window of values, sent every Nth value


class _Aggregate(Filter):
    """ESPHome's send_every / send_first_at counting, around an aggregate of the values seen."""

    def __init__(self, *, send_every: int, send_first_at: int) -> None:
        self.send_every = send_every
        self.send_first_at = send_first_at
        self._count = send_every - send_first_at

    def add(self, value: float) -> None:
        raise NotImplementedError

    def current(self) -> float:
        raise NotImplementedError

    def process(self, value: Value, ts: float, force: bool = False) -> Value | None:
        if not usable(value):
            return None  # skipped: NaN must not poison the window, nor count as a value
        if not is_number(value):
            return value
        self.add(value)
        self._count += 1
        if self._count >= self.send_every or force:
            self._count = 0
            return self.current()
        return None

    def reset(self) -> None:
        self._count = self.send_every - self.send_first_at


class _Windowed(_Aggregate):
    """An aggregate of the last `window` values."""

    def __init__(self, window: int, *, send_every: int = 1, send_first_at: int = 1) -> None:
        super().__init__(send_every=send_every, send_first_at=send_first_at)
        self.window = window
        self._values: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        self._values.append(value)

    def reset(self) -> None:
        super().reset()
        self._values.clear()


class MovingAverage(_Windowed):
    """Mean of the last `window` values."""

    def current(self) -> float:
        return math.fsum(self._values) / len(self._values)


class ExponentialAverage(_Aggregate):
    """avg ← alpha × value + (1 − alpha) × avg; the first value seeds avg."""

    def __init__(self, alpha: float, *, send_every: int = 1, send_first_at: int = 1) -> None:
        super().__init__(send_every=send_every, send_first_at=send_first_at)
        self.alpha = alpha
        self._avg: float | None = None

    def add(self, value: float) -> None:
        self._avg = value if self._avg is None else self.alpha * value + (1 - self.alpha) * self._avg

    def current(self) -> float:
        assert self._avg is not None  # add() ran first
        return self._avg

    def reset(self) -> None:
        super().reset()
        self._avg = None


class Median(_Windowed):
    """Median of the last `window` values (the mean of the middle two for an even count)."""

    def current(self) -> float:
        import statistics  # here: importing it costs `sensord check` 3 ms, and few configs use a median

        return float(statistics.median(self._values))

    def resolution(self, upstream: float | None) -> float | None:
        if upstream is None or self.window == 1:
            return upstream
        return upstream / 2  # the mean of two values on a grid lies on the half grid


# ---------------------------------------------------------------------------------------------
# Factories: TOML argument + key path → Filter, or ConfigError naming the path


def _number(arg: Any, path: str, *, positive: bool = False) -> float:
    ok = is_number(arg) and math.isfinite(arg) and (arg > 0 or not positive)
    if not ok:
        raise filter_error(path, "a number > 0" if positive else "a number", arg)
    return float(arg)


def make_delta(arg: Any, path: str) -> Filter:
    if isinstance(arg, str):
        match = _PERCENT.match(arg)
        if match and float(match[1]) > 0:
            return Delta(float(match[1]), percent=True)
    elif is_number(arg) and math.isfinite(arg) and arg > 0:
        return Delta(float(arg))
    raise filter_error(path, 'a number > 0 or a percentage like "5%"', arg)


def make_throttle(arg: Any, path: str) -> Filter:
    return Throttle(_number(arg, path, positive=True))


def make_heartbeat(arg: Any, path: str) -> Filter:
    return Heartbeat(_number(arg, path, positive=True))


def make_round(arg: Any, path: str) -> Filter:
    if not (isinstance(arg, int) and not isinstance(arg, bool) and arg >= 0):
        raise filter_error(path, "an integer >= 0", arg)
    return Quantise.decimals(arg)


def make_step(arg: Any, path: str) -> Filter:
    return Quantise.step(_number(arg, path, positive=True))


def make_clamp(arg: Any, path: str) -> Filter:
    if not isinstance(arg, dict):
        raise filter_error(path, 'a table like {min = 0, max = 100, mode = "clip"}', arg)
    from .options import ClampOptions  # here: see sensord.filters.options

    opts = filter_options(ClampOptions, arg, path)
    if opts.min is None and opts.max is None:
        raise ConfigError(f"{path}: expected min, max or both, found neither")
    return Clamp(opts.min, opts.max, drop=opts.mode == "drop")


def make_offset(arg: Any, path: str) -> Filter:
    return Linear(1.0, _number(arg, path))


def make_multiply(arg: Any, path: str) -> Filter:
    factor = _number(arg, path)
    if factor == 0:
        raise filter_error(path, "a number other than 0", arg)
    return Linear(factor, 0.0)


def make_calibrate_linear(arg: Any, path: str) -> Filter:
    if not isinstance(arg, list):
        raise filter_error(path, "a list of [measured, true] points like [[0.0, 0.3], [50.0, 49.1]]", arg)
    points = []
    for i, point in enumerate(arg):
        if not (isinstance(point, list) and len(point) == 2
                and all(is_number(v) and math.isfinite(v) for v in point)):
            raise filter_error(f"{path}[{i}]", "a [measured, true] pair of numbers", point)
        points.append((float(point[0]), float(point[1])))
    if len(points) < 2:
        raise ConfigError(f"{path}: expected at least 2 [measured, true] points, found {len(points)}")
    if len({x for x, _ in points}) < 2:
        raise ConfigError(f"{path}: expected at least 2 different measured values, "
                          f"found only {show(points[0][0])}")
    return Linear(*fit_line(points))


def make_moving_average(arg: Any, path: str) -> Filter:
    if not isinstance(arg, dict):
        raise filter_error(path, "a table like {window = 10} or {alpha = 0.1}", arg)
    from .options import AverageOptions

    opts = filter_options(AverageOptions, arg, path)
    send = {"send_every": opts.send_every, "send_first_at": opts.send_first_at}
    if opts.window is not None and opts.alpha is not None:
        raise ConfigError(f"{path}: expected window or alpha, found both")
    if opts.window is not None:
        return MovingAverage(opts.window, **send)
    if opts.alpha is not None:
        return ExponentialAverage(opts.alpha, **send)
    raise ConfigError(f"{path}: expected window or alpha, found neither")


def make_median(arg: Any, path: str) -> Filter:
    if not isinstance(arg, dict):
        raise filter_error(path, "a table like {window = 5}", arg)
    from .options import MedianOptions

    opts = filter_options(MedianOptions, arg, path)
    return Median(opts.window, send_every=opts.send_every, send_first_at=opts.send_first_at)


BUILTIN_FILTERS: Mapping[str, FilterFactory] = MappingProxyType({
    "delta": make_delta,
    "throttle_s": make_throttle,
    "heartbeat_s": make_heartbeat,
    "round": make_round,
    "step": make_step,
    "clamp": make_clamp,
    "offset": make_offset,
    "multiply": make_multiply,
    "calibrate_linear": make_calibrate_linear,
    "moving_average": make_moving_average,
    "median": make_median,
})
"""The built-in filters by TOML name. `or` is built into `sensord.filters.build_chain`."""
