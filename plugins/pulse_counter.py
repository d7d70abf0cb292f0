"""Pulse counter, type `pulse_counter`: a tipping-bucket rain gauge, a water or gas meter's reed
contact, an electricity meter's S0 output, an anemometer: anything that says "one more" by
closing a contact.

Pulses are counted (debounced) in gpiozero's callback thread, between reads. Each read reports:
- `count`: every pulse since the counter was first started. It survives restarts: it is kept in
  `state_file`, written atomically (temporary file, fsync, rename) at most once per
  `save_every_reads` reads and only when it changed, and at shutdown; never per pulse, to spare
  the SD card. A power cut loses at most the pulses since the last write.
- the `quantity` channel (default `total`): `count × per_pulse` in `unit`, e.g. mm of rain.
- `pulses`: the pulses since the previous read (since start-up for the first one).

Rates are computed downstream, not here, because a driver never reads a clock: the average rate
over a read interval is `pulses / (ts - previous ts)` of two consecutive samples, about
`pulses / interval_s` (rain intensity; power in W is `pulses × per_pulse × 3600 / Δt` for a meter
counting Wh; wind speed is `pulses × per_pulse / Δt` with `per_pulse` in metres of wind run).

Common scales: rain gauges 0.2794 mm per tip (Misol/SparkFun WH-SP-RG) or 0.2 mm; S0 meters
1000 imp/kWh (`per_pulse = 1`, `unit = "Wh"`); water meters 1 or 10 l per pulse; SparkFun/Misol
anemometer 2.4 km/h per Hz (`per_pulse = 0.667`, `unit = "m"`).

Wiring (BCM pin numbers), with `pull_up = true` (the default): reed contact, or the S0 output's
`-` side, between GPIOn and GND; an S0 output's `+` side to GPIOn. Add an external 4.7 kΩ pull-up
to 3.3 V on a long cable. The pulse starts when the input leaves its idle level.

Debounce: as for `digital_input` (see there), edges within `bounce_s` of the last accepted one are
ignored. Reed switches bounce for about a millisecond and S0 pulses last at least 30 ms (IEC
62053-31), while an anemometer's contact at 50 m/s closes for about 7 ms: hence 5 ms. With
lgpio or pigpio, pulses shorter than `bounce_s` are dropped entirely.

Example::

    [[sensor]]
    name = "rain"
    type = "pulse_counter"
    interval_s = 300
    pin = 6
    ## One bucket tip is 0.2794 mm of rain.
    per_pulse = 0.2794
    unit = "mm"
    quantity = "rain"
    # pull_up = true
    # bounce_s = 0.005
    ## Where the count is kept across restarts; default /var/lib/sensord/pulse-<name>.count.
    # state_file = "/var/lib/sensord/pulse-rain.count"
    ## Write the state file at most once every this many reads (and at shutdown).
    # save_every_reads = 1
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, Reading, Sensor, SensorConfig, SensorError, field_range

from .digital_input import BOUNCE_MAX_S, EdgeFilter, check_quantity, edge_ticks, open_input, pin_field

if TYPE_CHECKING:
    from sensord import Hardware

STATE_DIR = "/var/lib/sensord"  # systemd's StateDirectory=sensord
_FIXED_CHANNELS = ("count", "pulses")


@dataclass(frozen=True)
class PulseCounterConfig(SensorConfig):
    pin: int = pin_field()
    pull_up: bool = True
    bounce_s: float = field_range(0.005, ge=0, le=BOUNCE_MAX_S)
    per_pulse: float = field_range(1.0, gt=0)
    unit: str = ""
    quantity: str = "total"
    state_file: str = ""  # "": STATE_DIR/pulse-<sensor name>.count
    save_every_reads: int = field_range(1, ge=1)

    def __post_init__(self) -> None:
        check_quantity("quantity", self.quantity)
        if self.quantity in _FIXED_CHANNELS:
            raise ValueError(f'quantity: "{self.quantity}" is taken by a built-in channel '
                             f"({', '.join(_FIXED_CHANNELS)}); choose another name")


def scaled_total(count: int, per_pulse: float) -> float:
    """`count × per_pulse`, rounded to the decimals of `per_pulse` so that 3 × 0.2794 is 0.8382,
    not 0.8382000000000001."""
    mantissa, _, exponent = repr(per_pulse).partition("e")  # 0.2794, 1e-05, 1.5e-07
    decimals = len(mantissa.partition(".")[2].rstrip("0")) - int(exponent or 0)
    return round(count * per_pulse, max(decimals, 0))


def load_count(path: str) -> int | None:
    """The count saved in `path`, or None when there is no such file (a first start).

    Raises ValueError when the file holds anything but a whole number >= 0, and OSError when it
    cannot be read: a silently reset meter total would be worse than a sensor that stops."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(64).strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise ValueError(f'holds "{text[:20]}", expected a pulse count (a whole number >= 0)')
    return int(text)


def save_count(path: str, count: int) -> None:
    """Write `count` to `path` atomically: a reader, or a power cut, sees the old or the new file,
    never a partial one. Creates the directory if needed."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{count}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    # The rename is durable only once the directory is; not every file system allows this.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PulseCounter(Sensor):
    """Counts debounced pulses on one GPIO; the total is kept across restarts."""

    type_name = "pulse_counter"
    Config = PulseCounterConfig
    config: PulseCounterConfig

    def __init__(self, config: SensorConfig, *, name: str, hardware: Hardware) -> None:
        super().__init__(config, name=name, hardware=hardware)
        self.state_file = self.config.state_file or os.path.join(STATE_DIR, f"pulse-{name}.count")
        self._device: Any = None
        self._filter: EdgeFilter | None = None
        self._lock = threading.Lock()
        self._count = 0  # guarded by _lock: written by gpiozero's callback thread
        self._saved = 0  # the count in the state file
        self._reported = 0  # the count at the previous read
        self._reads_since_save = 0

    def describe(self) -> str:
        return f'sensor "{self.name}" ({self.type_name} on GPIO{self.config.pin})'

    def channels(self) -> list[Channel]:
        cfg = self.config
        return [Channel("count", "", 1.0, "total"), Channel(cfg.quantity, cfg.unit, cfg.per_pulse, "total"),
                Channel("pulses", "", 1.0)]

    @property
    def count(self) -> int:
        """Pulses since the counter was first started."""
        with self._lock:
            return self._count

    def open(self) -> None:
        # Find out now, not at the first save, if the count cannot be kept.
        directory = os.path.dirname(self.state_file) or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise SensorError(f"{self.describe()}: cannot create {directory} for the state file: "
                              f"{exc.strerror or exc}") from exc
        if not os.access(directory, os.W_OK):
            raise SensorError(f"{self.describe()}: cannot write the state file: {directory} is not writable")
        try:
            saved = load_count(self.state_file)
        except (OSError, ValueError) as exc:
            raise SensorError(f"{self.describe()}: state file {self.state_file} {_why(exc)}; "
                              f"fix or delete it (deleting restarts the count at 0)") from exc
        with self._lock:
            self._count = self._saved = self._reported = saved or 0
        cfg = self.config
        device = open_input(self, pin=cfg.pin, pull_up=cfg.pull_up, bounce_s=cfg.bounce_s)
        self._filter = EdgeFilter(cfg.bounce_s, device.pin_factory)
        self._device = device
        device.when_activated = self._activated
        device.when_deactivated = self._deactivated

    def read(self) -> list[Reading]:
        if self._device is None:
            raise SensorError(f"{self.describe()}: not open")
        count = self.count
        self._reads_since_save += 1
        if count != self._saved and self._reads_since_save >= self.config.save_every_reads:
            self._save(count)  # before updating _reported: a failed read loses no pulses
        pulses, self._reported = count - self._reported, count
        cfg = self.config
        return [Reading("count", count),
                Reading(cfg.quantity, scaled_total(count, cfg.per_pulse), cfg.unit),
                Reading("pulses", pulses)]

    def close(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        device.close()
        count = self.count
        if count != self._saved:
            self._save(count)

    # -- gpiozero's callback thread ---------------------------------------------------------

    def _activated(self) -> None:
        if self._accept():
            with self._lock:
                self._count += 1

    def _deactivated(self) -> None:
        self._accept()  # the release bounces too: an accepted release starts a lock-out of its own

    def _accept(self) -> bool:
        device, edge_filter = self._device, self._filter
        return device is not None and edge_filter is not None and edge_filter.accept(edge_ticks(device))

    def _save(self, count: int) -> None:
        try:
            save_count(self.state_file, count)
        except OSError as exc:
            raise SensorError(f"{self.describe()}: cannot write state file {self.state_file}: "
                              f"{exc.strerror or exc}") from exc
        self._saved = count
        self._reads_since_save = 0


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"cannot be read: {exc.strerror or exc}"
    return str(exc)


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [PulseCounter]
