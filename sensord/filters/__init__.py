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

Each channel of a sensor gets its own chain with its own state. The package: `chain` (the
`Filter` API, `FilterChain`, `Or`), `channels` (`ChannelFilters`), `build` (chains from the
config; `or`, ESPHome's, is built in there because its branches are chains) and `builtin` (the
built-in filters). Rules that hold for every chain:

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

Plugins add filters through the `sensord_register_filters` hook (`sensord.plugins.collect_filters`): a
factory takes the TOML argument and its key path and returns a `Filter`, or raises `ConfigError`
whose message starts with that key path (`filter_error()` writes one; `filter_options()` builds an
options dataclass from a table with sensord's usual messages). The file name is added for it.
"""

from ..schema import show
from .build import OR, build_chain, build_sensor_filters, builtin_filters
from .chain import (
    Filter,
    FilterChain,
    FilterFactory,
    Gate,
    Heartbeat,
    Or,
    common_grid,
    filter_error,
    filter_options,
    is_number,
    on_grid,
    period_passed,
    usable,
)
from .channels import ChannelFilters

__all__ = [
    # The plugin API (docs/plugins.md, sensord_register_filters)
    "Filter",
    "FilterFactory",
    "Gate",
    "filter_error",
    "filter_options",
    "is_number",
    "show",
    # For the daemon, the config and the test harness
    "OR",
    "ChannelFilters",
    "FilterChain",
    "Heartbeat",
    "Or",
    "build_chain",
    "build_sensor_filters",
    "builtin_filters",
    "common_grid",
    "on_grid",
    "period_passed",
    "usable",
]
