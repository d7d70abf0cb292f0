"""Digital input, type `digital_input`: a door or window contact (reed switch), a push button, a
float switch, the digital output of a rain or soil module: anything that is on or off on one GPIO.

`read()` reports the current state; `watch()` also pushes a reading on every (debounced) change,
so a door that opens is published at once, not at the next poll. Polling still matters: it is
what corrects the state after a change too short to pass the debounce.

Value: `true` while the input is *active*, that is pulled away from its idle level. With
`pull_up = true` (the default) the pin idles high through the Pi's internal pull-up and a closed
contact pulls it to ground, so `true` means "contact closed". With `pull_up = false` the internal
pull-down holds it low and `true` means "driven high". `invert = true` reports the opposite, e.g.
`door_open = true` from a reed switch that is closed while the door is shut.

Wiring (BCM pin numbers, 3.3 V logic only, never 5 V on a GPIO):

    pull_up = true  (default): contact between GPIOn and GND
    pull_up = false:           contact between GPIOn and 3.3 V

On a cable longer than a few metres, add an external 4.7 kΩ pull-up to 3.3 V and 100 nF to GND at
the Pi: the internal ~50 kΩ resistor picks up mains hum.

Debounce: `bounce_s` is applied twice, on purpose. It goes to gpiozero as `bounce_time`, so pin
libraries that filter below Python do so (lgpio, the default on Raspberry Pi OS bookworm, and
pigpio report an edge only after the level stayed stable for `bounce_s`; RPi.GPIO drops edges
within `bounce_s` of the previous one). And the driver itself ignores any edge that comes within
`bounce_s` of the last one it accepted, timed with the pin's own edge timestamps, so the
behaviour is the same on every pin library, including gpiozero's `MockFactory`, which filters
nothing. pigpio refuses more than 0.3 s, hence the upper limit.

Example::

    [[sensor]]
    name = "front_door"
    type = "digital_input"
    interval_s = 300
    pin = 17
    ## The reed switch is closed while the door is shut; report "door_open" instead.
    quantity = "door_open"
    invert = true
    ## true: the contact closes to GND (internal pull-up); false: to 3.3 V (pull-down).
    # pull_up = true
    ## Edges closer together than this (seconds) are contact bounce and ignored; 0 turns it off.
    # bounce_s = 0.05
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, SensorError, field_range

if TYPE_CHECKING:
    from sensord import Hardware

#: The GPIOs on the 40-pin header of every Raspberry Pi since the B+, BCM numbering.
BCM_PIN = {"ge": 0, "le": 27}
#: pigpio refuses a longer bounce time ("bounce must be between 0 and 0.3").
BOUNCE_MAX_S = 0.3
_QUANTITY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Emit = Callable[[list[Reading]], None]


def pin_field() -> Any:
    """A required BCM pin number field, 0..27."""
    return dataclasses.field(metadata=dict(BCM_PIN))


def check_quantity(key: str, value: str) -> None:
    """Raise ValueError naming `key` unless `value` is a usable quantity name."""
    if not _QUANTITY.match(value):
        raise ValueError(f'{key}: expected a name of letters, digits and _, found "{value}"')


@dataclass(frozen=True)
class DigitalInputConfig(SensorConfig):
    pin: int = pin_field()
    pull_up: bool = True
    bounce_s: float = field_range(0.05, ge=0, le=BOUNCE_MAX_S)
    quantity: str = "contact"
    invert: bool = False

    def __post_init__(self) -> None:
        check_quantity("quantity", self.quantity)


class EdgeFilter:
    """Lock-out debounce: accept an edge only when `bounce_s` has passed since the last accepted
    one. Edge times are the pin factory's ticks (see `edge_ticks()`), compared with its
    `ticks_diff()`: hardware time, not a clock the driver reads. Safe to call from any thread."""

    def __init__(self, bounce_s: float, factory: Any) -> None:
        self.bounce_s = bounce_s
        self._factory = factory
        self._last: Any = None
        self._lock = threading.Lock()

    def accept(self, ticks: Any) -> bool:
        """Whether an edge at `ticks` is a real change (True) or contact bounce (False)."""
        if self.bounce_s <= 0:
            return True
        with self._lock:
            if self._last is not None and self._factory.ticks_diff(ticks, self._last) < self.bounce_s:
                return False
            self._last = ticks
            return True


def edge_ticks(device: Any) -> Any:
    """When the edge a gpiozero callback is handling happened, in pin factory ticks.

    gpiozero stores the pin's own timestamp of the edge (the kernel's, with lgpio) in
    `_last_changed` just before it calls `when_activated`/`when_deactivated` (1.6.2 and 2.0
    alike). It is used rather than the time the callback runs, which lags when Python is busy
    and would make queued real edges look like bounce. Falls back to the factory's clock."""
    ticks = getattr(device, "_last_changed", None)
    return device.pin_factory.ticks() if ticks is None else ticks


def open_input(sensor: Sensor, *, pin: int, pull_up: bool, bounce_s: float) -> Any:
    """A gpiozero `DigitalInputDevice` on the sensor's injected pin factory.

    What gpiozero or the pin library raise (pin in use, fixed pull-up on GPIO2/3, no pin library
    on this machine) becomes a SensorError naming the sensor and the pin."""
    try:
        from gpiozero import DigitalInputDevice  # lazy: sensord imports without gpiozero

        return DigitalInputDevice(pin, pull_up=pull_up, bounce_time=bounce_s or None,
                                  pin_factory=sensor.hardware.pin_factory)
    except Exception as exc:  # gpiozero, lgpio and RPi.GPIO each raise their own types
        raise SensorError(f"{sensor.describe()}: cannot use GPIO{pin}: {exc}") from exc


class DigitalInput(Sensor):
    """An on/off input on one GPIO, polled and pushed on change."""

    type_name = "digital_input"
    Config = DigitalInputConfig
    config: DigitalInputConfig

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        self._device: Any = None
        self._filter: EdgeFilter | None = None
        self._emit: Emit | None = None

    def describe(self) -> str:
        return f'sensor "{self.name}" ({self.type_name} on GPIO{self.config.pin})'

    def channels(self) -> list[Channel]:
        return [Channel(self.config.quantity, kind="binary")]

    def open(self) -> None:
        cfg = self.config
        self._device = open_input(self, pin=cfg.pin, pull_up=cfg.pull_up, bounce_s=cfg.bounce_s)
        self._filter = EdgeFilter(cfg.bounce_s, self._device.pin_factory)

    def read(self) -> list[Reading]:
        return [self._reading(bool(self._opened().is_active))]

    def watch(self, emit: Emit) -> None:
        device = self._opened()
        self._emit = emit
        device.when_activated = self._activated
        device.when_deactivated = self._deactivated

    def close(self) -> None:
        device, self._device = self._device, None
        self._emit = None
        if device is not None:
            device.close()  # also detaches the callbacks

    # -- gpiozero's callback thread ---------------------------------------------------------

    def _activated(self) -> None:
        self._edge(True)

    def _deactivated(self) -> None:
        self._edge(False)

    def _edge(self, active: bool) -> None:
        # The edge's direction, not the pin's level now: the level may be mid-bounce.
        emit, edge_filter, device = self._emit, self._filter, self._device
        if emit is not None and edge_filter is not None and device is not None \
                and edge_filter.accept(edge_ticks(device)):
            emit([self._reading(active)])

    # -- helpers ----------------------------------------------------------------------------

    def _reading(self, active: bool) -> Reading:
        return Reading(self.config.quantity, active != self.config.invert)

    def _opened(self) -> Any:
        if self._device is None:
            raise SensorError(f"{self.describe()}: not open")
        return self._device


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [DigitalInput]
