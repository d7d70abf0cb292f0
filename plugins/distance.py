"""Ultrasonic distance, type `distance`: HC-SR04 (and the 3.3 V HC-SR04P, RCWL-1601) through
gpiozero's `DistanceSensor`, e.g. the water level in a tank or a car in the garage.

Reports `distance` in m, the median of the last `samples` pings, rounded to 1 mm (the module
itself resolves about 3 mm, from 2 cm to about 4 m). gpiozero pings continuously in a
background thread, about 15 times a second, and `read()` takes the median of what it collected;
a read fails when no echo came back since the previous read, so an unplugged module is reported
instead of repeating its last distance. The speed of sound is taken at 20 °C (343.26 m/s): the
distance reads about 0.17 % short per °C colder.

A distance at or beyond `max_distance_m` (nothing in range, or an echo too weak) is an error,
not a value: gpiozero clips it to the maximum, which would look like a real distance.

Wiring (BCM pin numbers):

    VCC  to 5 V (HC-SR04P: 3.3 V)       Trig to GPIO `trigger` (3.3 V is enough)
    GND  to GND                          Echo to GPIO `echo` through a divider:
                                         Echo ─ 1 kΩ ─┬─ GPIO, and ┴ 2 kΩ to GND
The HC-SR04's echo output is 5 V, which damages a GPIO without the divider; the HC-SR04P's is
not. Datasheet: https://cdn.sparkfun.com/datasheets/Sensors/Proximity/HCSR04.pdf

Example::

    [[sensor]]
    name = "tank"
    type = "distance"
    interval_s = 60
    trigger = 4
    echo = 17
    ## Farther than this (m) is reported as an error: nothing in range.
    max_distance_m = 2.5
    ## The reading is the median of this many recent pings.
    # samples = 5
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, SensorError, field_range

from .digital_input import pin_field

if TYPE_CHECKING:
    from sensord import Hardware

_RESOLUTION_M = 0.001
_POLL_S = 0.05  # how often open() and read() look whether gpiozero's thread has pinged
_FIRST_ECHO_WAIT_S = 1.0  # a ping takes at most ~0.16 s (60 ms gap + 100 ms echo timeout)


@dataclass(frozen=True)
class DistanceConfig(SensorConfig):
    trigger: int = pin_field()
    echo: int = pin_field()
    max_distance_m: float = field_range(2.0, gt=0, le=5.0)
    samples: int = field_range(5, ge=1, le=30)

    def __post_init__(self) -> None:
        if self.trigger == self.echo:
            raise ValueError(f"echo: expected a pin other than trigger, found both GPIO{self.echo}")


def distance_m(fraction: float, max_distance_m: float) -> float:
    """gpiozero's `DistanceSensor.value` (distance / max, clipped to 0..1) in metres, rounded to
    1 mm. ValueError when there is no distance: 0 (no ping so far) or 1 (nothing in range)."""
    if fraction <= 0:
        raise ValueError("no measurement yet")
    if fraction >= 1:
        raise ValueError(f"nothing within max_distance_m = {max_distance_m:g} m (or the echo was too weak)")
    return round(fraction * max_distance_m, 3)


def _counting_distance_sensor() -> type:
    """gpiozero's DistanceSensor, counting its pings and echoes so that `read()` can tell fresh
    data from the stale median of a module that stopped answering.

    `_read()` is the hook gpiozero's `SmoothedInputDevice` subclasses implement (the same in
    gpiozero 1.6.2 and 2.0); only its background thread calls it, so plain counters suffice."""
    from gpiozero import DistanceSensor  # lazy: sensord imports without gpiozero

    class CountingDistanceSensor(DistanceSensor):  # type: ignore[misc]  # gpiozero ships no annotations
        pings = 0
        echoes = 0

        def _read(self) -> Any:
            value = super()._read()
            self.pings += 1
            if value is not None:
                self.echoes += 1
            return value

    return CountingDistanceSensor


class Distance(Sensor):
    """An HC-SR04 ultrasonic range finder."""

    type_name = "distance"
    Config = DistanceConfig
    config: DistanceConfig

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        self._device: Any = None
        self._seen = (0, 0)  # (pings, echoes) at the previous read

    def describe(self) -> str:
        cfg = self.config
        return f'sensor "{self.name}" ({self.type_name}, trigger GPIO{cfg.trigger}, echo GPIO{cfg.echo})'

    def channels(self) -> list[Channel]:
        return [Channel("distance", "m", _RESOLUTION_M)]

    def open(self) -> None:
        cfg = self.config
        try:
            cls = _counting_distance_sensor()
            # threshold_distance only drives gpiozero's in/out-of-range events, unused here, but
            # must lie inside (0, max_distance).
            device = cls(echo=cfg.echo, trigger=cfg.trigger, queue_len=cfg.samples,
                         max_distance=cfg.max_distance_m, threshold_distance=cfg.max_distance_m / 2,
                         partial=True, pin_factory=self.hardware.pin_factory)
        except Exception as exc:  # gpiozero, lgpio and RPi.GPIO each raise their own types
            raise SensorError(f"{self.describe()}: cannot use the pins: {exc}") from exc
        if not self._wait(lambda: device.echoes > 0, _FIRST_ECHO_WAIT_S):
            pings = device.pings
            device.close()
            raise SensorError(f"{self.describe()}: no echo within {_FIRST_ECHO_WAIT_S:g} s ({pings} pings): "
                              f"check the wiring, the 5 V supply and the divider on echo")
        self._device = device
        self._seen = (0, 0)

    def read(self) -> list[Reading]:
        device = self._device
        if device is None:
            raise SensorError(f"{self.describe()}: not open")
        pings_before, echoes_before = self._seen
        if not self._wait(lambda: device.pings > pings_before, _FIRST_ECHO_WAIT_S):
            raise SensorError(f"{self.describe()}: gpiozero's measuring thread stopped pinging")
        pings, echoes = device.pings, device.echoes
        self._seen = (pings, echoes)
        if echoes == echoes_before:
            raise SensorError(f"{self.describe()}: no echo to the last {pings - pings_before} pings: "
                              f"check the wiring and the 5 V supply")
        try:
            value = distance_m(device.value, self.config.max_distance_m)
        except ValueError as exc:
            raise SensorError(f"{self.describe()}: {exc}") from None
        return [Reading("distance", value, "m")]

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            device.close()  # stops and joins gpiozero's thread (up to ~0.1 s)

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Poll `done()` every `_POLL_S` with the injected sleep, for about `timeout_s`."""
        for _ in range(round(timeout_s / _POLL_S)):
            if done():
                return True
            self.hardware.sleep(_POLL_S)
        return done()


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [Distance]
