"""Simulated sensor, type `sim`: deterministic data for demos and for end-to-end tests.

Signals:
- `counter`: 0, 1, 2, ... on successive reads of one sensor, the same value on every channel, so
  a consumer can spot a lost or duplicated reading.
- `sine`: a slow daily-looking swing around `mean` with a little sensor noise, at 0.01 resolution.
- `random_walk`: a mean-reverting random walk around `mean`, at 0.01 resolution.

The same `seed` gives the same sequence on every run. No hardware and no clock are used: values
depend only on how many times the sensor was read.

Example::

    [[sensor]]
    name = "greenhouse"
    type = "sim"
    interval_s = 10
    channels = ["temperature", "humidity"]
    signal = "sine"
    unit = "°C"
    seed = 7
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, field_range

if TYPE_CHECKING:
    from sensord import Hardware

_RESOLUTION = 0.01


@dataclass(frozen=True)
class SimConfig(SensorConfig):
    channels: list[str] = field(default_factory=lambda: ["value"])
    signal: Literal["counter", "sine", "random_walk"] = "sine"
    unit: str | None = None  # default: "" for counter, "°C" otherwise
    seed: int = 0
    mean: float = 20.0
    amplitude: float = field_range(5.0, ge=0)
    period_reads: int = field_range(360, ge=2)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("channels: expected at least one quantity name, found []")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels: expected distinct names, found {self.channels}")


def sine_value(k: int, *, mean: float, amplitude: float, period_reads: int, phase: float,
               noise: float) -> float:
    """Read number k of a sine signal, rounded to the sensor's 0.01 resolution."""
    return round(mean + amplitude * math.sin(2 * math.pi * k / period_reads + phase) + noise, 2)


class SimSensor(Sensor):
    """A sensor that makes up believable or countable numbers."""

    type_name = "sim"
    Config = SimConfig
    config: SimConfig
    blocking = False  # arithmetic only: read on the event loop, no worker thread

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        cfg = self.config
        self._unit = cfg.unit if cfg.unit is not None else ("" if cfg.signal == "counter" else "°C")
        self._count = 0
        # One generator per channel, seeded by (seed, channel): adding a channel leaves the
        # others' sequences unchanged.
        self._rngs = [random.Random(f"{cfg.seed}:{ch}") for ch in cfg.channels]
        self._walk = [cfg.mean + rng.uniform(-1, 1) for rng in self._rngs]

    def channels(self) -> list[Channel]:
        resolution = 1.0 if self.config.signal == "counter" else _RESOLUTION
        kind: Literal["total", "measurement"] = "total" if self.config.signal == "counter" else "measurement"
        return [Channel(q, self._unit, resolution, kind) for q in self.config.channels]

    def read(self) -> list[Reading]:
        cfg, k = self.config, self._count
        self._count += 1
        if cfg.signal == "counter":
            return [Reading(q, k, self._unit) for q in cfg.channels]
        out = []
        for i, (q, rng) in enumerate(zip(cfg.channels, self._rngs, strict=True)):
            if cfg.signal == "sine":
                value = sine_value(k, mean=cfg.mean, amplitude=cfg.amplitude,
                                   period_reads=cfg.period_reads, phase=i * 0.7,
                                   noise=rng.gauss(0, 0.05))
            else:
                # Pull back toward the mean so the walk stays in a plausible band.
                self._walk[i] += rng.gauss(0, 0.05) + 0.01 * (cfg.mean - self._walk[i])
                value = round(self._walk[i], 2)
            out.append(Reading(q, value, self._unit))
        return out


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [SimSensor]
