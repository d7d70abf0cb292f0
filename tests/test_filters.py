"""Filters: each built-in with its edge cases, chains, heartbeat, `or`, resolution, per-channel
state, plugin registration, and one exact line per kind of bad config."""

from __future__ import annotations

import math
import re
import textwrap
import tomllib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
import pytest

from sensord import filters, hookspecs
from sensord.errors import ConfigError, PluginError
from sensord.filters import (
    ChannelFilters,
    Filter,
    FilterChain,
    build_chain,
    build_sensor_filters,
    builtin_filters,
)
from sensord.filters.builtin import fit_line
from sensord.plugins import collect_filters
from sensord.sensor import Sample

NAN = math.nan
FILE = "s.toml"


def chain(spec: list[Any], registry: dict[str, Any] | None = None) -> FilterChain:
    return build_chain(spec, path="sensor[0].filters", file=FILE, registry=registry or builtin_filters())


def run(c: Filter, values: list[Any], *, every_s: float = 10.0, start: float = 1000.0) -> list[Any]:
    """Feed values at a steady cadence; the outputs, None where dropped."""
    return [c.process(v, start + i * every_s) for i, v in enumerate(values)]


def feed(c: Filter, timed: list[tuple[float, Any]]) -> list[Any]:
    return [c.process(v, ts) for ts, v in timed]


# ---------------------------------------------------------------------------------------------
# Gates


def test_delta_absolute_first_value_passes_and_exact_step_passes() -> None:
    c = chain([{"delta": 0.1}])
    # 20.2 - 20.1 == 0.09999999999999787 in floats: a step of exactly delta must pass.
    assert run(c, [20.0, 20.05, 20.1, 20.2, 20.25, 20.1]) == [20.0, None, 20.1, 20.2, None, 20.1]


def test_delta_compares_with_last_passed_not_last_seen() -> None:
    c = chain([{"delta": 1}])
    assert run(c, [10, 10.6, 11.2, 10.3]) == [10, None, 11.2, None]


def test_delta_percent_is_relative_to_last_passed_value() -> None:
    c = chain([{"delta": "5%"}])
    assert run(c, [100.0, 104.0, 105.0, 109.0, 110.25, -5.0]) == [100.0, None, 105.0, None, 110.25, -5.0]


def test_delta_percent_from_zero_passes_any_change_only() -> None:
    c = chain([{"delta": "10%"}])
    assert run(c, [0.0, 0.0, 0.001]) == [0.0, None, 0.001]


def test_delta_on_booleans_passes_changes() -> None:
    c = chain([{"delta": 0.5}])
    assert run(c, [False, False, True, True, False]) == [False, None, True, None, False]


def test_nan_is_dropped_and_leaves_state_alone() -> None:
    c = chain([{"delta": 1}])
    out = run(c, [NAN, 10.0, NAN, 10.5, math.inf, -math.inf, 11.0])
    assert out == [None, 10.0, None, None, None, None, 11.0]


def test_empty_chain_passes_everything_but_non_finite() -> None:
    c = chain([])
    assert run(c, [1, 2.5, True, NAN, math.inf]) == [1, 2.5, True, None, None]


def test_throttle() -> None:
    c = chain([{"throttle_s": 60}])
    assert feed(c, [(0, 1), (30, 2), (59.99, 3), (70, 4), (119.98, 5), (200, True)]) == [1, None, 3, None, 5, True]


def test_throttle_passes_when_the_clock_steps_back() -> None:
    c = chain([{"throttle_s": 60}])
    assert feed(c, [(1000, 1), (1010, 2), (500, 3), (510, 4)]) == [1, None, 3, None]


# ---------------------------------------------------------------------------------------------
# Heartbeat


def test_heartbeat_lets_an_unchanged_value_through_after_a_long_silence() -> None:
    c = chain([{"delta": 0.5}, {"heartbeat_s": 600}])
    out = feed(c, [(0, 20.0), (300, 20.1), (599, 20.1), (600, 20.1), (660, 20.2), (4000, 20.2), (4010, 20.3)])
    assert out == [20.0, None, None, 20.1, None, 20.2, None]


def test_heartbeat_counts_from_the_last_output_and_resets_the_deadband() -> None:
    c = chain([{"heartbeat_s": 600}, {"delta": 1}])  # position does not matter
    out = feed(c, [(0, 10), (500, 12), (1000, 12.5), (1100, 12.4), (1200, 13.2), (1300, 13.4)])
    # 1100 is 600 s after the output at 500; the forced 12.4 becomes the deadband's reference.
    assert out == [10, 12, None, 12.4, None, 13.4]


def test_heartbeat_is_due_from_the_first_reading_not_on_it() -> None:
    c = chain([{"delta": 5}, {"heartbeat_s": 60}])
    assert feed(c, [(100, 1.0), (130, 1.0), (160, 1.0), (219.99, 1.0), (230, 1.0)]) == [1.0, None, 1.0, 1.0, None]


def test_heartbeat_forces_throttle_and_sends_the_current_average() -> None:
    c = chain([{"moving_average": {"window": 3, "send_every": 100}}, {"throttle_s": 1000}, {"heartbeat_s": 300}])
    out = feed(c, [(0, 3.0), (100, 6.0), (200, 9.0), (300, 12.0), (400, 15.0)])
    assert out == [3.0, None, None, 9.0, None]


def test_heartbeat_does_not_force_values_rejected_as_invalid() -> None:
    c = chain([{"clamp": {"min": 0, "max": 50, "mode": "drop"}}, {"delta": 10}, {"heartbeat_s": 60}])
    out = feed(c, [(0, 20.0), (60, 6553.5), (70, 21.0), (80, 22.0)])
    assert out == [20.0, None, 21.0, None]  # still due at 70: the first valid reading goes out


def test_heartbeat_alone_changes_nothing() -> None:
    assert run(chain([{"heartbeat_s": 600}]), [1, 1, 1]) == [1, 1, 1]


# ---------------------------------------------------------------------------------------------
# or


def test_or_delta_or_heartbeat_is_the_esphome_idiom() -> None:
    c = chain([{"or": [{"delta": 0.5}, {"heartbeat_s": 600}]}])
    out = feed(c, [(0, 20.0), (60, 20.2), (120, 21.0), (660, 21.1), (720, 21.1), (1260, 21.1), (1320, 21.1),
                   (1330, 21.7)])
    assert out == [20.0, None, 21.0, None, 21.1, None, 21.1, 21.7]
    assert c.heartbeat_s is None  # the heartbeat belongs to the or, not the chain


def test_or_output_is_the_first_passing_branch_output() -> None:
    c = chain([{"or": [[{"delta": 1}, {"multiply": 10}], [{"throttle_s": 100}, {"offset": 0.5}]]}])
    out = feed(c, [(0, 1.0), (10, 1.2), (20, 3.0), (150, 3.1), (160, 3.2)])
    assert out == [10.0, None, 30.0, 3.6, None]


def test_or_of_only_heartbeat_sends_one_value_per_period() -> None:
    c = chain([{"or": [{"heartbeat_s": 60}]}])
    assert feed(c, [(0, 1), (30, 2), (60, 3), (90, 4), (120, 5)]) == [None, None, 3, None, 5]


# ---------------------------------------------------------------------------------------------
# Transforms


def test_round_halves_away_from_zero_on_the_printed_value() -> None:
    c = chain([{"round": 2}])
    assert run(c, [2.675, -2.675, 1.005, 21.0, 7, True, NAN]) == [2.68, -2.68, 1.01, 21.0, 7.0, True, None]


def test_round_zero_and_whole_steps_give_integers() -> None:
    assert run(chain([{"round": 0}]), [2.5, -2.5, 3.49]) == [3, -3, 3]
    assert all(type(v) is int for v in run(chain([{"round": 0}]), [2.5, 0.1]))
    assert run(chain([{"step": 2}]), [2.9, 3.0, -1.2]) == [2, 4, -2]


def test_step_quantises_to_a_multiple() -> None:
    assert run(chain([{"step": 0.5}]), [21.24, 21.25, 21.26, -0.3]) == [21.0, 21.5, 21.5, -0.5]
    assert run(chain([{"step": 0.1}]), [0.34, 0.36]) == [0.3, 0.4]  # not 0.30000000000000004


def test_clamp_clip_and_drop() -> None:
    assert run(chain([{"clamp": {"min": 0, "max": 100}}]), [-5, 50, 150, False]) == [0, 50, 100, False]
    assert run(chain([{"clamp": {"min": 0, "max": 100, "mode": "drop"}}]), [-5, 50, 150]) == [None, 50, None]
    assert run(chain([{"clamp": {"max": 10}}]), [-1e9, 11]) == [-1e9, 10]


def test_offset_and_multiply() -> None:
    assert run(chain([{"offset": -1.5}]), [20, 0.5, True]) == [18.5, -1.0, True]
    assert run(chain([{"multiply": 1.8}, {"offset": 32}]), [0, 100, -40]) == pytest.approx([32, 212, -40])


def test_fit_line_matches_a_hand_computed_fit() -> None:
    # x̄ = 1, ȳ = 8/3, Σ(x-x̄)² = 2, Σ(x-x̄)(y-ȳ) = 5/3 + 4/3 = 3: slope 1.5, intercept 8/3 - 1.5 = 7/6.
    assert fit_line([(0, 1), (1, 3), (2, 4)]) == pytest.approx((1.5, 7 / 6))
    assert fit_line([(0, 0.3), (100, 98.3)]) == pytest.approx((0.98, 0.3))
    with pytest.raises(ValueError, match="at least 2"):
        fit_line([(1, 1)])
    with pytest.raises(ValueError, match="equal"):
        fit_line([(1, 1), (1, 2)])


def test_calibrate_linear_applies_the_fit() -> None:
    c = chain([{"calibrate_linear": [[0, 1], [1, 3], [2, 4]]}])
    assert run(c, [0.0, 4.0, True]) == [pytest.approx(7 / 6), pytest.approx(6 + 7 / 6), True]


# ---------------------------------------------------------------------------------------------
# Aggregates


def test_moving_average_window() -> None:
    assert run(chain([{"moving_average": {"window": 3}}]), [1, 2, 3, 4, 8]) == [1, 1.5, 2, 3, 5]


def test_moving_average_send_every_and_send_first_at() -> None:
    c = chain([{"moving_average": {"window": 2, "send_every": 3}}])
    assert run(c, [1, 2, 3, 4, 5, 6, 7]) == [1, None, None, 3.5, None, None, 6.5]
    c = chain([{"moving_average": {"window": 10, "send_every": 3, "send_first_at": 2}}])
    assert run(c, [1, 2, 3, 4, 5]) == [None, 1.5, None, None, 3]


def test_moving_average_skips_nan_and_passes_booleans() -> None:
    c = chain([{"moving_average": {"window": 2, "send_every": 2}}])
    assert run(c, [NAN, 1.0, NAN, True, 3.0, NAN, 5.0]) == [None, 1.0, None, True, None, None, 4.0]


def test_exponential_moving_average() -> None:
    c = chain([{"moving_average": {"alpha": 0.5}}])
    assert run(c, [10.0, 20.0, NAN, 30.0]) == [10.0, 15.0, None, 22.5]
    c = chain([{"moving_average": {"alpha": 0.5, "send_every": 2}}])
    assert run(c, [10.0, 20.0, 30.0, 40.0]) == [10.0, None, 22.5, None]


def test_median() -> None:
    c = chain([{"median": {"window": 3}}])
    assert run(c, [1.0, 100.0, 2.0, 3.0, NAN, 4.0]) == [1.0, 50.5, 2.0, 3.0, None, 3.0]
    c = chain([{"median": {"window": 5, "send_every": 5, "send_first_at": 5}}])
    assert run(c, [5, 1, 9, 2, 3, 7]) == [None, None, None, None, 3.0, None]


# ---------------------------------------------------------------------------------------------
# Resolution


@pytest.mark.parametrize(("spec", "declared", "expected"), [
    ([], 0.01, 0.01),
    ([], None, None),
    ([{"round": 1}], 0.01, 0.1),
    ([{"round": 1}], None, 0.1),
    ([{"round": 2}], 1.0, 1.0),  # the coarser declared grid still holds
    ([{"step": 0.5}], 0.01, 0.5),
    ([{"round": 1}, {"step": 0.5}], None, 0.5),
    ([{"step": 0.5}, {"round": 2}], None, 0.5),
    ([{"round": 1}, {"multiply": 1.8}], 0.01, None),  # a transform after the quantiser cancels it
    ([{"round": 1}, {"multiply": 1.8}, {"round": 0}], 0.01, 1.0),  # re-quantised
    ([{"round": 1}, {"multiply": 3}], None, 0.1),  # an integer factor keeps the grid
    ([{"round": 1}, {"offset": 0.5}], None, 0.1),
    ([{"round": 1}, {"offset": 0.05}], None, None),
    ([{"round": 1}, {"delta": 0.5}, {"throttle_s": 60}, {"heartbeat_s": 600}], None, 0.1),
    ([{"round": 1}, {"clamp": {"min": 0, "max": 99.5}}], None, 0.1),
    ([{"round": 1}, {"clamp": {"min": 0.05}}], None, None),
    ([{"round": 1}, {"clamp": {"min": 0.05, "mode": "drop"}}], None, 0.1),
    ([{"round": 1}, {"moving_average": {"window": 5}}], None, None),
    ([{"round": 1}, {"median": {"window": 5}}], None, 0.05),
    ([{"calibrate_linear": [[0, 0], [1, 1.1]]}], 0.01, None),
    ([{"or": [{"delta": 1}, {"heartbeat_s": 60}]}], 0.01, 0.01),
    ([{"or": [[{"round": 0}], [{"step": 2}]]}], 0.01, 1.0),
    ([{"or": [[{"round": 1}], [{"step": 0.25}]]}], 0.01, None),
])
def test_resolution(spec: list[Any], declared: float | None, expected: float | None) -> None:
    res = chain(spec).resolution(declared)
    assert res == (pytest.approx(expected) if expected is not None else None)


# ---------------------------------------------------------------------------------------------
# Per-channel state, overrides, samples


def sample(quantity: str, value: Any, ts: float) -> Sample:
    return Sample("attic", quantity, value, "", ts)


def test_each_channel_has_its_own_state_and_overrides_replace_the_chain() -> None:
    cf = build_sensor_filters([{"delta": 1}], {"humidity": [], "pressure": [{"round": 0}]},
                              path="sensor[0]", file=FILE, registry=builtin_filters())
    first = cf.apply([sample("temperature", 20.0, 0), sample("dew_point", 20.0, 0), sample("humidity", 50.0, 0),
                      sample("pressure", 1013.4, 0)])
    assert [(s.quantity, s.value) for s in first] == [("temperature", 20.0), ("dew_point", 20.0),
                                                      ("humidity", 50.0), ("pressure", 1013)]
    second = cf.apply([sample("temperature", 20.5, 10), sample("dew_point", 21.0, 10),
                       sample("humidity", 50.0, 10)])
    assert [(s.quantity, s.value, s.ts) for s in second] == [("dew_point", 21.0, 10), ("humidity", 50.0, 10)]
    assert cf.for_channel("temperature") is cf.for_channel("temperature")
    assert cf.for_channel("temperature") is not cf.for_channel("dew_point")


def test_fresh_copies_share_no_state_with_the_template() -> None:
    template = build_sensor_filters([{"delta": 1}], None, path="sensor[0]", file=FILE, registry=builtin_filters())
    a = template.fresh()
    assert [s.value for s in a.apply([sample("t", 1.0, 0), sample("t", 1.2, 1)])] == [1.0]
    b = template.fresh()
    assert [s.value for s in b.apply([sample("t", 1.2, 2)])] == [1.2]
    a.reset()
    assert [s.value for s in a.apply([sample("t", 1.2, 3)])] == [1.2]


def test_apply_keeps_the_sample_when_the_value_is_unchanged() -> None:
    s = sample("t", 1.5, 0)
    assert ChannelFilters.passthrough().apply([s, sample("t", NAN, 1)]) == [s]


def test_channel_resolution_uses_the_channel_chain() -> None:
    cf = build_sensor_filters([{"round": 1}], {"pressure": [{"step": 0.5}]}, path="sensor[0]", file=FILE,
                              registry=builtin_filters())
    assert (cf.resolution("temperature", 0.01), cf.resolution("pressure", 0.01)) == (0.1, 0.5)


def test_check_channels_names_an_unknown_override() -> None:
    cf = build_sensor_filters(None, {"temprature": [], "pm2.5": []}, path="sensor[3]", file=FILE,
                              registry=builtin_filters())
    cf.check_channels([])  # a driver that declares no channels: nothing to check
    with pytest.raises(ConfigError) as err:
        cf.check_channels(["temperature", "humidity", "pm2.5"])
    assert str(err.value) == ('s.toml: sensor[3].channel_filters.temprature: unknown channel, did you mean '
                              '"temperature"?; the sensor has: humidity, pm2.5, temperature')


def test_module_docstring_example_parses() -> None:
    assert filters.__doc__ is not None
    toml = re.search(r"::\n\n((?: {4}.*\n|\n)+)", filters.__doc__)
    assert toml is not None
    doc = tomllib.loads(textwrap.dedent(toml.group(1)))
    table = doc["sensor"][0]
    cf = build_sensor_filters(table["filters"], table["channel_filters"], path="sensor[0]", file=FILE,
                              registry=builtin_filters())
    assert set(cf.overrides) == {"pressure", "humidity"}
    assert cf.resolution("temperature", 0.01) == 0.1


# ---------------------------------------------------------------------------------------------
# Plugins


class Ewma(Filter):
    """A plugin's filter: halves the distance to each new value."""

    def __init__(self) -> None:
        self.last: float | None = None

    def process(self, value: Any, ts: float, force: bool = False) -> Any:
        self.last = value if self.last is None else (self.last + value) / 2
        return self.last

    def reset(self) -> None:
        self.last = None


def make_ewma(arg: Any, path: str) -> Filter:
    if arg is not True:
        raise ConfigError(f"{path}: expected true, found {filters.show(arg)}")
    return Ewma()


class FilterSpec:
    """The hook spec the lead adds to sensord/hookspecs.py, for a manager built in the test."""

    @hookspecs.hookspec
    def sensord_register_filters(self) -> dict[str, Any]:  # type: ignore[empty-body]
        """Return the filters this plugin provides: {name: factory}."""


def manager(*plugins: tuple[str, dict[str, Any] | Any]) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(FilterSpec)
    for name, result in plugins:
        # A class instance, not a SimpleNamespace: pluggy 1.0 (Debian bookworm) hashes plugins.
        plugin = type(f"Plugin_{name}", (), {})()
        plugin.sensord_register_filters = hookspecs.hookimpl(lambda result=result: result)  # type: ignore[attr-defined]
        pm.register(plugin, name=name)
    return pm


def test_plugin_filter_is_registered_and_usable() -> None:
    registry = collect_filters(manager(("smooth", {"ewma": make_ewma})))
    assert set(builtin_filters()) < set(registry)
    c = chain([{"ewma": True}, {"round": 1}], registry)
    assert run(c, [10.0, 20.0, 20.0]) == [10.0, 15.0, 17.5]
    assert c.resolution(0.01) == 0.1
    assert chain([{"ewma": True}], registry).resolution(0.01) is None  # unknown filters cancel resolution
    with pytest.raises(ConfigError) as err:
        chain([{"ewma": 1}], registry)
    assert str(err.value) == "s.toml: sensor[0].filters[0].ewma: expected true, found 1"


def test_collect_filters_without_the_hookspec_gives_builtins() -> None:
    assert collect_filters(pluggy.PluginManager(hookspecs.PROJECT)) == builtin_filters()


def fake_pm(*impls: tuple[str, Any]) -> Any:
    """A manager with one plugin per (name, `sensord_register_filters` function), in that order."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, fn in impls:
        plugin = ModuleType(name)
        plugin.sensord_register_filters = hookspecs.hookimpl(fn)  # type: ignore[attr-defined]
        pm.register(plugin, name=name)
    return pm


def boom() -> dict[str, Any]:
    raise RuntimeError("no numpy")


@pytest.mark.parametrize(("impls", "message"), [
    ([("a", lambda: {"delta": make_ewma})],
     'plugin "a": filter "delta" is already registered by sensord (built-in)'),
    ([("a", lambda: {"or": make_ewma})], 'plugin "a": filter "or" is already registered by sensord (built-in)'),
    ([("a", lambda: {"ewma": make_ewma}), ("b", lambda: {"ewma": make_ewma})],
     'plugin "b": filter "ewma" is already registered by plugin "a"'),
    ([("a", lambda: [make_ewma])],
     'plugin "a": sensord_register_filters must return a dict of filter name to factory, returned list'),
    ([("a", lambda: {"EWMA": make_ewma})],
     'plugin "a": sensord_register_filters: filter names must match [a-z][a-z0-9_]*, found \'EWMA\''),
    ([("a", lambda: {"ewma": 5})],
     'plugin "a": sensord_register_filters: filter "ewma": expected a factory (arg, path) -> Filter, found 5'),
    ([("a", boom)], 'plugin "a": sensord_register_filters raised RuntimeError: no numpy'),
])
def test_collect_filters_names_the_plugin(impls: list[tuple[str, Any]], message: str) -> None:
    with pytest.raises(PluginError) as err:
        collect_filters(fake_pm(*impls))
    assert str(err.value) == message


def test_real_manager_reports_a_clash_by_plugin_name() -> None:
    pm = manager(("first", {"ewma": make_ewma}), ("second", {"ewma": make_ewma}))
    with pytest.raises(PluginError, match=r'filter "ewma" is already registered by plugin "(first|second)"'):
        collect_filters(pm)


def test_a_factory_returning_no_filter_is_a_plugin_error() -> None:
    with pytest.raises(PluginError) as err:
        chain([{"bad": 1}], {**builtin_filters(), "bad": lambda arg, path: 42})
    assert str(err.value) == 'filter "bad": the factory returned 42, expected a sensord Filter'


def test_a_plain_value_error_from_a_factory_gets_file_and_path() -> None:
    def picky(arg: Any, path: str) -> Filter:
        raise ValueError("window must be odd")

    with pytest.raises(ConfigError) as err:
        chain([{"delta": 1}, {"picky": 4}], {**builtin_filters(), "picky": picky})
    assert str(err.value) == "s.toml: sensor[0].filters[1].picky: window must be odd"


@dataclass(frozen=True)
class WindowOptions:
    window: int = field(default=3, metadata={"ge": 1})


def test_filter_options_gives_plugins_sensord_messages() -> None:
    assert filters.filter_options(WindowOptions, {"window": 5}, "p").window == 5
    with pytest.raises(ConfigError) as err:
        filters.filter_options(WindowOptions, {"windw": 5}, "sensor[0].filters[0].x")
    assert str(err.value) == 'sensor[0].filters[0].x.windw: unknown key, did you mean "window"?'


# ---------------------------------------------------------------------------------------------
# Bad configs: one exact line each

BAD: list[tuple[Any, str]] = [
    ({"delta": 0.1},
     "sensor[0].filters: expected a list of filters like [{delta = 0.5}], found a table"),
    (["delta"],
     'sensor[0].filters[0]: expected a table naming one filter like {delta = 0.5}, found "delta"'),
    ([{"delta": 0.1, "round": 1}],
     "sensor[0].filters[0]: expected one filter per table, found 2 keys (delta, round)"),
    ([{}], "sensor[0].filters[0]: expected one filter per table, found 0 keys"),
    ([{"delta": 1}, {"round": 1}, {"medain": {"window": 3}}],
     'sensor[0].filters[2]: unknown filter "medain", did you mean "median"?'),
    ([{"lowpass": 3}],
     'sensor[0].filters[0]: unknown filter "lowpass"; known filters: calibrate_linear, clamp, delta, '
     "heartbeat_s, median, moving_average, multiply, offset, or, round, step, throttle_s"),
    ([{"delta": 1}, {"delta": "x"}],
     'sensor[0].filters[1].delta: expected a number > 0 or a percentage like "5%", found "x"'),
    ([{"delta": 0}], 'sensor[0].filters[0].delta: expected a number > 0 or a percentage like "5%", found 0'),
    ([{"delta": "-5%"}],
     'sensor[0].filters[0].delta: expected a number > 0 or a percentage like "5%", found "-5%"'),
    ([{"delta": True}],
     'sensor[0].filters[0].delta: expected a number > 0 or a percentage like "5%", found true'),
    ([{"throttle_s": -1}], "sensor[0].filters[0].throttle_s: expected a number > 0, found -1"),
    ([{"heartbeat_s": "10m"}], 'sensor[0].filters[0].heartbeat_s: expected a number > 0, found "10m"'),
    ([{"heartbeat_s": math.inf}], "sensor[0].filters[0].heartbeat_s: expected a number > 0, found inf"),
    ([{"round": 1.5}], "sensor[0].filters[0].round: expected an integer >= 0, found 1.5"),
    ([{"round": -1}], "sensor[0].filters[0].round: expected an integer >= 0, found -1"),
    ([{"step": 0}], "sensor[0].filters[0].step: expected a number > 0, found 0"),
    ([{"clamp": 5}],
     'sensor[0].filters[0].clamp: expected a table like {min = 0, max = 100, mode = "clip"}, found 5'),
    ([{"clamp": {}}], "sensor[0].filters[0].clamp: expected min, max or both, found neither"),
    ([{"clamp": {"min": 0, "mode": "cut"}}],
     'sensor[0].filters[0].clamp.mode: expected one of "clip", "drop", found "cut"'),
    ([{"clamp": {"minimum": 0}}], 'sensor[0].filters[0].clamp.minimum: unknown key, did you mean "min"?'),
    ([{"clamp": {"min": 10, "max": 5}}], "sensor[0].filters[0].clamp.max: expected a number >= min (10), found 5"),
    ([{"offset": "1"}], 'sensor[0].filters[0].offset: expected a number, found "1"'),
    ([{"multiply": 0}], "sensor[0].filters[0].multiply: expected a number other than 0, found 0"),
    ([{"calibrate_linear": [[0, 1]]}],
     "sensor[0].filters[0].calibrate_linear: expected at least 2 [measured, true] points, found 1"),
    ([{"calibrate_linear": [[5, 1], [5, 2]]}],
     "sensor[0].filters[0].calibrate_linear: expected at least 2 different measured values, found only 5"),
    ([{"calibrate_linear": [[0, 1], [1, 2, 3]]}],
     "sensor[0].filters[0].calibrate_linear[1]: expected a [measured, true] pair of numbers, found [1, 2, 3]"),
    ([{"calibrate_linear": {"a": 1}}],
     "sensor[0].filters[0].calibrate_linear: expected a list of [measured, true] points like "
     "[[0.0, 0.3], [50.0, 49.1]], found a table"),
    ([{"moving_average": {"window": 3, "alpha": 0.2}}],
     "sensor[0].filters[0].moving_average: expected window or alpha, found both"),
    ([{"moving_average": {"send_every": 3}}],
     "sensor[0].filters[0].moving_average: expected window or alpha, found neither"),
    ([{"moving_average": {"alpha": 1.5}}],
     "sensor[0].filters[0].moving_average.alpha: expected a number > 0 and <= 1, found 1.5"),
    ([{"moving_average": {"window": 0}}],
     "sensor[0].filters[0].moving_average.window: expected an integer >= 1, found 0"),
    ([{"moving_average": {"window": 4, "send_every": 2, "send_first_at": 3}}],
     "sensor[0].filters[0].moving_average.send_first_at: expected an integer <= send_every (2), found 3"),
    ([{"median": {}}], "sensor[0].filters[0].median.window: required key missing"),
    ([{"median": 5}], "sensor[0].filters[0].median: expected a table like {window = 5}, found 5"),
    ([{"or": {"delta": 1}}],
     "sensor[0].filters[0].or: expected a non-empty list of filters or chains like "
     "[{delta = 0.5}, {heartbeat_s = 600}], found a table"),
    ([{"or": [[]]}], "sensor[0].filters[0].or[0]: expected a chain of at least one filter, found []"),
    ([{"or": [{"delta": 1}, [{"round": 1}, {"delta": -1}]]}],
     'sensor[0].filters[0].or[1][1].delta: expected a number > 0 or a percentage like "5%", found -1'),
    ([{"or": [{"heartbeat_s": 60}, {"delt": 1}]}],
     'sensor[0].filters[0].or[1]: unknown filter "delt", did you mean "delta"?'),
]


@pytest.mark.parametrize(("spec", "message"), BAD)
def test_bad_chain(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        chain(spec)
    assert str(err.value) == f"s.toml: {message}"


@pytest.mark.parametrize(("channel_filters", "message"), [
    ([{"delta": 1}], "sensor[1].channel_filters: expected a table of channel = [filters], found [a table]"),
    ({"temperature": {"delta": 1}},
     "sensor[1].channel_filters.temperature: expected a list of filters like [{delta = 0.5}], found a table"),
    ({"pm2.5": [{"step": "0.5"}]}, 'sensor[1].channel_filters."pm2.5"[0].step: expected a number > 0, found "0.5"'),
])
def test_bad_channel_filters(channel_filters: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_sensor_filters(None, channel_filters, path="sensor[1]", file=FILE, registry=builtin_filters())
    assert str(err.value) == f"s.toml: {message}"


def test_round_on_the_repr_digits_matches_the_decimal_rounding() -> None:
    """`round = N` takes a shortcut on the repr's digits for floats; it must give exactly what
    the Decimal path gives (value, type and the sign of zero)."""
    import random
    from decimal import ROUND_HALF_UP, Decimal

    from sensord.filters.builtin import Quantise

    rng = random.Random(13)
    values = [2.675, 0.125, -0.125, -0.005, 0.005, -0.0, 0.0, 0.5, -0.5, 2.5, 1e15 + 0.3, 5e-324, -1e-7, 1e22]
    for scale in (1e-6, 1e-2, 1.0, 1e3, 1e9, 1e16):
        values += [rng.uniform(-1, 1) * scale for _ in range(300)]
        values += [round(rng.uniform(-1, 1) * scale, rng.randint(0, 8)) for _ in range(200)]
    for places in range(7):
        quantise = Quantise.decimals(places)
        for value in values:
            units = (Decimal(repr(value)) / quantise.quantum).to_integral_value(rounding=ROUND_HALF_UP)
            exact = int(units * quantise.quantum) if places == 0 else float(units * quantise.quantum)
            got = quantise.process(value, 0.0)
            assert (type(got), got, math.copysign(1, got)) == (type(exact), exact, math.copysign(1, exact)), \
                (places, value)
