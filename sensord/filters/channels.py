"""`ChannelFilters`: one sensor's filter chains, one independent chain per channel; `filtered_channels`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError
from ..schema import did_you_mean, toml_key
from ..sensor import Channel, Sample, Sensor, declared_channels
from .chain import FilterChain


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
        live = self._live
        for sample in samples:
            chain = live.get(sample.quantity) or self.for_channel(sample.quantity)
            value = chain.process(sample.value, sample.ts)
            if value is None:
                continue
            # The constructor, not dataclasses.replace(): this runs for every reading.
            passed.append(sample if value is sample.value
                          else Sample(sample.sensor, sample.quantity, value, sample.unit, sample.ts))
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


def filtered_channels(chains: ChannelFilters, sensor: Sensor) -> list[Channel]:
    """The sensor's declared channels with the resolution after its filters: what the encoder
    is told, what the node's meta message says and what Home Assistant discovery announces.
    Here, not in `pipeline`: `sensord check` lists the entities without importing the encodings."""
    return [Channel(c.quantity, c.unit, chains.resolution(c.quantity, c.resolution), c.kind)
            for c in declared_channels(sensor)]
