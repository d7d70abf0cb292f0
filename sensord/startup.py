"""Start-up shared by every command: read the config, load plugins, build sensors."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from . import config as cfgmod
from . import homeassistant
from .config import Config, SensorSpec
from .errors import ConfigError, SensorError
from .filters.channels import filtered_channels
from .hardware import Hardware
from .plugins import PluginHost, get_plugin_manager
from .schema import show
from .sensor import Channel, Sensor, declared_channels

#: The compatibility mode: one plain-text MQTT message per reading (the publisher's job; batches
#: are still buffered in the default encoding).
PER_CHANNEL = "per_channel"


class Loaded(NamedTuple):  # not a dataclass: 0.7 ms less at every start (issue 13)
    config: Config
    plugins: PluginHost
    #: The (sensor name, channel) pairs `announced_entities(self)` announces, kept by
    #: `load_runnable()` when discovery is on (it builds every sensor to check them), so `check`
    #: lists them without building them again.
    declared_channels: tuple[tuple[str, Channel], ...] | None = None


def load(path: str, *, entry_points: bool = True) -> Loaded:
    """Parse `path`, load the plugins its `[plugins]` section allows, validate everything.

    Raises ConfigError or PluginError (exit 78 material)."""
    doc = cfgmod.read_toml(path)
    plugins_cfg = cfgmod.parse_plugins(doc, path)
    # Only the built-in drivers of the types named here are imported (the others when one is unknown).
    named = [t["type"] for t in doc.get("sensor", []) if isinstance(t, dict) and isinstance(t.get("type"), str)]
    host = get_plugin_manager(dirs=plugins_cfg.dirs, disabled=plugins_cfg.disabled,
                              entry_points=entry_points, sensor_types=named)
    if any(t not in host.sensor_types for t in named):
        host.load_deferred()  # so the unknown type's message lists every type, with a did-you-mean
    config = cfgmod.parse_config(doc, path, host.sensor_types, type_hint=host.failure_hint(),
                                 filter_types=host.filter_types)
    known = [*host.encoding_names, PER_CHANNEL]
    if config.batch.encoding not in known:
        import difflib  # here: only an error's did-you-mean needs it (0.2 MiB)

        close = difflib.get_close_matches(config.batch.encoding, known, n=1)
        hint = f', did you mean "{close[0]}"?' if close else ""
        raise ConfigError(f'{path}: batch.encoding: unknown encoding "{config.batch.encoding}"{hint}; '
                          f"known encodings: {', '.join(known)}")
    return Loaded(config, host)


def load_runnable(path: str, *, entry_points: bool = True) -> Loaded:
    """`load()`, then `check_runnable()`: what `sensord check`, `sensord run` and a reload (SIGHUP)
    accept, all three through this one function, so `check` passes exactly what `run` will take.

    Raises ConfigError or PluginError (exit 78 material)."""
    loaded = load(path, entry_points=entry_points)
    check_runnable(loaded.config)
    cfg = loaded.config
    if cfg.homeassistant.discovery:
        channels = _channels(loaded)
        homeassistant.entities(cfg.node.id, channels, file=cfg.file, keys=False)  # ConfigError on a collision
        loaded = loaded._replace(declared_channels=tuple(channels))
    return loaded


def announced_entities(loaded: Loaded, hardware: Hardware | None = None,
                       sensors: list[tuple[SensorSpec, Sensor]] | None = None, *,
                       keys: bool = True) -> list[homeassistant.Entity]:
    """The Home Assistant entities the node announces: its enabled sensors' channels (as declared
    before `open()`, unless `sensors` were opened), then its diagnostics. `keys=False`: without
    their state keys, as `homeassistant.entities` says (`check` lists them)."""
    cfg = loaded.config
    return homeassistant.entities(cfg.node.id, _channels(loaded, hardware, sensors), file=cfg.file, keys=keys)


def _channels(loaded: Loaded, hardware: Hardware | None = None,
              sensors: list[tuple[SensorSpec, Sensor]] | None = None) -> list[tuple[str, Channel]]:
    """What `announced_entities` announces: the channels `load_runnable` kept, else those of
    `sensors`, else of the enabled sensors built (not opened) on `hardware`."""
    if sensors is None and hardware is None and loaded.declared_channels is not None:
        return list(loaded.declared_channels)
    if sensors is None:
        hardware = hardware or Hardware()  # built, not opened: nothing touches it
        sensors = [(spec, build_sensor(spec, loaded, hardware)) for spec in loaded.config.enabled_sensors]
    return announced_channels(sensors)


def announced_channels(sensors: list[tuple[SensorSpec, Sensor]]) -> list[tuple[str, Channel]]:
    """(sensor name, channel after its filters) of each sensor: what discovery announces."""
    return [(spec.name, channel) for spec, sensor in sensors for channel in filtered_channels(spec.filters, sensor)]


#: Encodings whose names must follow RFC 8428 §4.5.1 (`senml_name_problem`).
SENML_ENCODINGS = ("senml+json", "senml+cbor")


def check_runnable(config: Config) -> None:
    """What the daemon needs beyond a well-typed config, checked before it starts or reloads:
    at least one enabled sensor, names its encoding can carry, and a password file and TLS files
    it can use. Raises ConfigError naming the file and the key path."""
    file = config.file
    enabled = config.enabled_sensors
    if not config.sensors:
        raise ConfigError(f"{file}: sensor: expected at least one [[sensor]] table, found none "
                          f"(an empty or cut-short file?)")
    if not enabled:
        raise ConfigError(f"{file}: sensor: expected at least one enabled [[sensor]], found "
                          f"{counted(len(config.sensors), 'sensor')}, all with enabled = false")
    if config.batch.encoding in SENML_ENCODINGS:
        _check_senml_names(config, enabled)
    mqtt = config.mqtt
    if mqtt.password_file is None and mqtt.tls is None:
        return
    # The checks `run` makes when it connects, made here too so `check` and a reload catch them.
    from .mqtt import make_tls_context, read_password_file

    if mqtt.password_file is not None:
        try:
            read_password_file(mqtt.password_file)
        except ConfigError as exc:
            raise _in_file(file, "mqtt.password_file", exc) from None
    if mqtt.tls is not None:
        try:
            # insecure only switches checks off after loading: load the files without its warning,
            # which the link gives when it connects.
            make_tls_context(dataclasses.replace(mqtt.tls, insecure=False))
        except ConfigError as exc:
            raise _in_file(file, "mqtt.tls", exc) from None


def _check_senml_names(config: Config, enabled: tuple[SensorSpec, ...]) -> None:
    from .encoding import senml_name_problem  # here: a config in another encoding needs no encoder

    allowed = "A-Z a-z 0-9 - : . _ only"
    why = f'RFC 8428 §4.5.1, batch.encoding = "{config.batch.encoding}"'
    node = config.node.id
    if senml_name_problem(node, "s", "q"):
        raise ConfigError(f"{config.file}: node.id: expected a name of {allowed}, starting with a letter or "
                          f"digit ({why}), found {show(node)}")
    for spec in enabled:
        if senml_name_problem(node, spec.name, "q"):
            raise ConfigError(f"{config.file}: {spec.path}.name: expected a name of {allowed} ({why}), "
                              f"found {show(spec.name)}")


def _in_file(file: str, key: str, exc: ConfigError) -> ConfigError:
    message = str(exc)
    return ConfigError(f"{file}: {message}" if message.startswith(key) else f"{file}: {key}: {message}")


def counted(n: int, noun: str) -> str:
    """`1 sensor`, `2 sensors`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
    # A plugin's channels() may need open(): then there is nothing to check.
    # ConfigError for a misspelled channel_filters key.
    spec.filters.check_channels(c.quantity for c in declared_channels(sensor))
    return sensor


def make_hardware(config: Config, *, fake: bool = False, host: PluginHost | None = None) -> Hardware:
    """The node's real hardware, or with `fake` (or `[hardware] fake = true`) the fake node of
    `sensord.testing`: on bus 1 one of each chip model the plugins in `host` register (the built-in
    drivers' and any others; without a host, the built-in ones), gpiozero mock pins, and a 1-Wire
    directory holding one DS18B20, for demos and tests without a Pi."""
    if not (fake or config.hardware.fake):
        return Hardware()
    from .testing.fakenode import fake_node_hardware

    return fake_node_hardware(host)
