"""PIR motion sensor, type `motion`: HC-SR501, AM312 and similar passive-infrared detectors with a
digital output that goes high while they see movement.

`read()` reports `motion` (true while the output is high); `watch()` also pushes a reading when
motion starts and when it ends, so an alarm or a light does not wait for the next poll.

The detector decides how long "motion" lasts: the HC-SR501's time potentiometer (about 3 s to
5 min) and its jumper (H: retrigger while there is movement, L: one pulse) set it; the AM312 holds
about 2 s. After power-up a PIR needs up to a minute to settle and may trigger falsely meanwhile.

Wiring (BCM pin numbers):

    HC-SR501: VCC to 5 V, OUT to GPIOn, GND to GND  (OUT is 3.3 V logic despite the 5 V supply)
    AM312:    VCC to 3.3 V, OUT to GPIOn, GND to GND

The output drives both levels, so no pull resistor is needed; the internal pull-down
(`pull_up = false`, the default) only keeps the input low while the detector is unplugged.
PIR outputs do not bounce, so `bounce_s` defaults to 0; raise it if Wi-Fi or a long cable makes
short glitches (see `digital_input` for how the debounce works).

Example::

    [[sensor]]
    name = "hallway"
    type = "motion"
    interval_s = 600
    pin = 23
    # pull_up = false
    # bounce_s = 0.0
    # quantity = "motion"
    # invert = false
"""

from __future__ import annotations

from dataclasses import dataclass

import sensord
from sensord import Sensor, field_range

from .digital_input import BOUNCE_MAX_S, DigitalInput, DigitalInputConfig


@dataclass(frozen=True)
class MotionConfig(DigitalInputConfig):
    """As `digital_input`, with a PIR's defaults: pull-down, no debounce, quantity `motion`."""

    pull_up: bool = False
    bounce_s: float = field_range(0.0, ge=0, le=BOUNCE_MAX_S)
    quantity: str = "motion"


class Motion(DigitalInput):
    """A PIR detector: `motion` is true while its output is high."""

    type_name = "motion"
    Config = MotionConfig
    config: MotionConfig


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [Motion]
