"""Start-up shared by every command: read the config, load plugins, build sensors."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from . import config as cfgmod
from .config import Config, SensorSpec
from .errors import ConfigError, SensorError
from .hardware import Hardware
from .plugins import PluginHost, get_plugin_manager
from .sensor import Sensor

#: The compatibility mode: one plain-text MQTT message per reading (the publisher's job; batches
#: are still buffered in the default encoding).
PER_CHANNEL = "per_channel"


@dataclass(frozen=True)
class Loaded:
    config: Config
    plugins: PluginHost


def load(path: str, *, entry_points: bool = True) -> Loaded:
    """Parse `path`, load the plugins its `[plugins]` section allows, validate everything.

    Raises ConfigError or PluginError (exit 78 material)."""
    doc = cfgmod.read_toml(path)
    plugins_cfg = cfgmod.parse_plugins(doc, path)
    host = get_plugin_manager(dirs=plugins_cfg.dirs, disabled=plugins_cfg.disabled,
                              entry_points=entry_points)
    config = cfgmod.parse_config(doc, path, host.sensor_types, type_hint=host.failure_hint(),
                                 filter_types=host.filter_types)
    known = [*host.encodings, PER_CHANNEL]
    if config.batch.encoding not in known:
        close = difflib.get_close_matches(config.batch.encoding, known, n=1)
        hint = f', did you mean "{close[0]}"?' if close else ""
        raise ConfigError(f'{path}: batch.encoding: unknown encoding "{config.batch.encoding}"{hint}; '
                          f"known encodings: {', '.join(known)}")
    return Loaded(config, host)


def build_sensor(spec: SensorSpec, loaded: Loaded, hardware: Hardware) -> Sensor:
    """Instantiate (but do not open) the sensor a `[[sensor]]` table describes."""
    cls = loaded.plugins.sensor_types[spec.type]
    try:
        sensor = cls(spec.options, name=spec.name, hardware=hardware)
    except SensorError:
        raise
    except Exception as exc:  # a plugin constructor can raise anything
        raise SensorError(f'sensor "{spec.name}" ({spec.type}): cannot create: '
                          f"{type(exc).__name__}: {exc}") from exc
    try:
        declared = [c.quantity for c in sensor.channels()]
    except Exception:  # a plugin's channels() may need open(); then there is nothing to check
        declared = []
    spec.filters.check_channels(declared)  # ConfigError for a misspelled channel_filters key
    return sensor


def make_hardware(config: Config, *, fake: bool = False, host: PluginHost | None = None) -> Hardware:
    """The node's real hardware, or with `fake` (or `[hardware] fake = true`) the device models of
    `sensord.testing`: one of each built-in I2C chip on bus 1, plus the models the plugins in
    `host` register, gpiozero mock pins, and a 1-Wire directory holding one DS18B20, for demos and
    tests without a Pi."""
    if not (fake or config.hardware.fake):
        return Hardware()
    from .testing.fakenode import fake_node_hardware

    return fake_node_hardware(host.device_models if host is not None else ())
