"""Home Assistant MQTT discovery: what a node announces, and the small state message Home
Assistant reads its values from. Pure: builds payloads from the node's channels; the publisher
(`sensord.mqtt.publisher`) decides when they go out.

- One retained *device* discovery message per node on `{discovery_prefix}/device/{object id}/config`
  (the `cmps` form, Home Assistant 2024.12 and later): the device, the origin, availability from
  the node's status topic, and one component per channel (`sensor`, or `binary_sensor` for a
  channel of kind `binary`) plus the node's diagnostics (buffer backlog, readings dropped, last
  delivery, uptime).
- One retained *state* message on `{topic_prefix}/{node}/state` after each delivery: a JSON object
  with the latest value of each channel that changed since the previous one, under a short key
  (two or three characters, from a hash of the channel's unique id); each component's
  `value_template` picks its key and leaves the entity as it is when the key is absent. The batches
  on `…/data` stay as they are, in whatever encoding; this message is what Home Assistant reads.

Mapping a channel to Home Assistant: the device class comes from the unit and the quantity
(`°C` → temperature, `hPa` → pressure, a `total` in `mm` → precipitation, ...), only in combinations
Home Assistant accepts (tests/ha/ha_device_classes.json, dumped from Home Assistant itself, is
checked against `DEVICE_CLASSES` in the tests); `state_class` is `measurement`, or
`total_increasing` for a channel of kind `total`; `suggested_display_precision` is the number of
decimals of the channel's resolution.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import ConfigError
from .sensor import Channel, Value

#: Where Home Assistant's docs say a project's support page goes (`o.url`).
SUPPORT_URL = "https://github.com/sensord/sensord"
#: Shown as the device's model when /proc/device-tree/model does not exist (not a Pi, a container).
DEFAULT_MODEL = "sensord node"

_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")
_KEY_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def object_id(text: str) -> str:
    """`text` as Home Assistant accepts it in a discovery topic or an object id: `[a-zA-Z0-9_-]`,
    anything else becoming `_`."""
    return _NOT_ALLOWED.sub("_", text)


def slug(text: str) -> str:
    """Roughly Home Assistant's `slugify` for ASCII names: what it makes an entity id from."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", text.lower())).strip("_") or "unknown"


# ---------------------------------------------------------------------------------------------
# Device classes

class _Rule(NamedTuple):  # not a dataclass: 0.7 ms less at every start (issue 13)
    device_class: str
    units: tuple[str, ...]
    quantities: tuple[str, ...] = ()  # a quantity containing one of these words; () = any
    kinds: tuple[str, ...] = ("measurement",)


#: Numeric channels: the first rule whose unit, quantity and kind match gives the device class.
#: Every (device class, unit, state class) here is one Home Assistant accepts.
DEVICE_CLASSES: tuple[_Rule, ...] = (
    _Rule("temperature", ("°C", "°F", "K")),
    _Rule("humidity", ("%",), ("humidity",)),
    _Rule("moisture", ("%",), ("moisture",)),
    _Rule("battery", ("%",), ("battery",)),
    _Rule("pressure", ("hPa", "Pa", "kPa", "bar", "mbar", "psi", "mmHg", "inHg")),
    _Rule("illuminance", ("lx",)),
    _Rule("carbon_dioxide", ("ppm",), ("carbon_dioxide", "co2")),
    _Rule("aqi", ("",), ("voc_index",)),  # Sensirion's VOC index (sgp40): unitless, 1 to 500
    # Particulate matter (pms5003, sds011, iio): pm10 before pm1, whose name it contains.
    _Rule("pm10", ("μg/m³",), ("pm10",)),
    _Rule("pm25", ("μg/m³",), ("pm2_5", "pm25")),
    _Rule("pm4", ("μg/m³",), ("pm4",)),
    _Rule("pm1", ("μg/m³",), ("pm1",)),
    _Rule("voltage", ("V", "mV")),
    _Rule("current", ("A", "mA")),
    _Rule("power", ("W", "kW")),
    _Rule("distance", ("m", "cm", "mm", "km")),
    _Rule("duration", ("s", "min", "h", "d"), (), ("measurement", "total")),
    _Rule("precipitation", ("mm", "cm", "in"), (), ("total",)),
    _Rule("energy", ("Wh", "kWh", "MWh"), (), ("total",)),
    _Rule("water", ("L", "m³", "gal"), (), ("total",)),
    _Rule("distance", ("m", "km"), (), ("total",)),
)
# Home Assistant writes µg/m³ with the Greek mu (U+03BC), sensord with the micro sign (U+00B5).
_UNIT_SPELLING = {"l": "L", "m3": "m³", "\u00b5g/m³": "\u03bcg/m³", "ug/m3": "\u03bcg/m³"}

#: binary_sensor device classes by a word in the quantity's name, first match wins.
BINARY_CLASSES: tuple[tuple[str, str], ...] = (
    ("motion", "motion"), ("occupancy", "occupancy"), ("presence", "presence"),
    ("door", "door"), ("window", "window"), ("garage", "garage_door"), ("contact", "opening"),
    ("opening", "opening"), ("open", "opening"), ("leak", "moisture"), ("moisture", "moisture"),
    ("smoke", "smoke"), ("vibration", "vibration"), ("rain", "moisture"),
)


def classify(channel: Channel) -> tuple[str, str | None, str | None, str | None]:
    """(component, device class, unit, state class) of a channel."""
    quantity = channel.quantity.lower()
    if channel.kind == "binary":
        for word, device_class in BINARY_CLASSES:
            if word in quantity:
                return "binary_sensor", device_class, None, None
        return "binary_sensor", None, None, None
    unit = _UNIT_SPELLING.get(channel.unit, channel.unit)
    state_class = "total_increasing" if channel.kind == "total" else "measurement"
    for rule in DEVICE_CLASSES:
        if unit in rule.units and channel.kind in rule.kinds and (
                not rule.quantities or any(word in quantity for word in rule.quantities)):
            return "sensor", rule.device_class, unit or None, state_class
    return "sensor", None, unit or None, state_class


def precision(resolution: float | None) -> int | None:
    """Decimals that show a value of this resolution: 0.01 → 2, 0.0625 → 2, 1 → 0, 5 → 0."""
    if resolution is None or resolution <= 0 or not math.isfinite(resolution):
        return None
    return max(0, math.ceil(-math.log10(resolution) - 1e-9))


# ---------------------------------------------------------------------------------------------
# Entities

class Entity(NamedTuple):  # not a dataclass: 0.7 ms less at every start (issue 13)
    """One component of the device message."""

    component_id: str  # the key in `cmps`: `{node}_{sensor}_{quantity}`, sanitised
    key: str  # its key in the state message
    name: str  # shown after the device's name
    platform: str  # "sensor" or "binary_sensor"
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = None
    precision: int | None = None
    diagnostic: bool = False
    timestamp: bool = False  # the state is a Unix time; the template makes it ISO 8601
    channel: tuple[str, str] | None = None  # (sensor, quantity); None for a diagnostic

    def entity_id(self, device_name: str) -> str:
        """The entity id Home Assistant makes: `<platform>.<device name>_<entity name>`, slugified."""
        return f"{self.platform}.{slug(f'{device_name} {self.name}')}"

    def template(self) -> str:
        """The `value_template`: the value under this entity's key; when a state message does not
        carry it, an empty result, which Home Assistant skips for a numeric sensor and a binary one
        (keeping the state it has). A timestamp sensor would take '' as a value (a warning and
        `unknown`), so its template gives back the state it has instead."""
        value = f"value_json['{self.key}']"
        if self.platform == "binary_sensor":
            shown = f"('ON' if {value} else 'OFF')"
        elif self.timestamp:
            shown = f"({value} | timestamp_custom('%Y-%m-%dT%H:%M:%S+00:00', false))"
            return (f"{{{{ {shown} if '{self.key}' in value_json else (this.state if this.state not in "
                    "('unknown', 'unavailable') else 'None') }}")
        else:
            shown = value
        return f"{{{{ {shown} if '{self.key}' in value_json else '' }}}}"

    def component(self, node: str) -> dict[str, Any]:
        out: dict[str, Any] = {"p": self.platform, "name": self.name,
                               "uniq_id": f"sensord_{object_id(node)}_{self.component_id}"}
        for key, value in (("dev_cla", self.device_class), ("unit_of_meas", self.unit),
                           ("stat_cla", self.state_class), ("sug_dsp_prc", self.precision)):
            if value is not None:
                out[key] = value
        if self.diagnostic:
            out["ent_cat"] = "diagnostic"
        out["val_tpl"] = self.template()
        return out


#: The node's own figures: (state key, name, unit, device class, state class, is a timestamp).
DIAGNOSTICS: tuple[tuple[str, str, str | None, str | None, str | None, bool], ...] = (
    ("_b", "backlog", "readings", None, "measurement", False),
    ("_x", "readings dropped", "readings", None, "total_increasing", False),
    ("_d", "last delivery", None, "timestamp", None, True),
    ("_u", "uptime", "s", "duration", "total_increasing", False),
)


def short_keys(ids: Sequence[str]) -> dict[str, str]:
    """A short key per id, stable across restarts and reloads: the first characters of a base-36
    hash of the id, two or more, as few as keep every key of this node distinct."""
    from .deferred import sha256  # not hashlib: OpenSSL costs `sensord check` 2-4 ms and a node 3.4 MiB

    def digits(text: str) -> str:
        n = int.from_bytes(sha256(text.encode())[:8], "big")
        out = ""
        while n:
            n, r = divmod(n, 36)
            out += _KEY_ALPHABET[r]
        return out.ljust(13, "0")

    full = {i: digits(i) for i in ids}
    for length in range(2, 14):
        keys = {i: h[:length] for i, h in full.items()}
        if len(set(keys.values())) == len(keys):
            return keys
    raise AssertionError("sha256 prefixes of distinct ids collide")  # pragma: no cover


def entities(node: str, channels: Iterable[tuple[str, Channel]], *, file: str = "", keys: bool = True) -> list[Entity]:
    """The components a node announces for `(sensor name, channel)` pairs, then its diagnostics.

    ConfigError when two channels would get the same object id once sanitised (`a.b` and `a_b`).
    `keys=False` leaves the channels' state keys empty: for a listing (`sensord check`) or the
    collision check alone, which then need not hash (hashlib loads OpenSSL: 3-4 ms)."""
    seen: dict[str, str] = {}
    made: list[tuple[str, str, Channel, str]] = []
    for sensor, channel in channels:
        cid = object_id(f"{sensor}_{channel.quantity}")
        where = f'sensor "{sensor}" channel "{channel.quantity}"'
        if cid in seen:
            raise ConfigError(f"{file + ': ' if file else ''}homeassistant: {where} and {seen[cid]} would both be "
                              f'"{cid}" in Home Assistant (only A-Z a-z 0-9 _ - are kept); rename one of '
                              "the sensors, or set [homeassistant] discovery = false")
        seen[cid] = where
        made.append((cid, sensor, channel, where))
    ids = [f"{sensor}\0{channel.quantity}" for _, sensor, channel, _ in made]
    short = short_keys(ids) if keys else dict.fromkeys(ids, "")
    out = []
    for cid, sensor, channel, _ in made:
        platform, device_class, unit, state_class = classify(channel)
        out.append(Entity(component_id=cid, key=short[f"{sensor}\0{channel.quantity}"],
                          name=f"{sensor} {channel.quantity}", platform=platform, device_class=device_class,
                          unit=unit, state_class=state_class,
                          precision=None if platform != "sensor" else precision(channel.resolution),
                          channel=(sensor, channel.quantity)))
    for key, name, unit, device_class, state_class, timestamp in DIAGNOSTICS:
        out.append(Entity(component_id=object_id(f"sensord_{name.replace(' ', '_')}"), key=key, name=name,
                          platform="sensor", device_class=device_class, unit=unit, state_class=state_class,
                          precision=0 if unit else None, diagnostic=True, timestamp=timestamp))
    return out


def device_model(path: str = "/proc/device-tree/model") -> str:
    """The board's name (`Raspberry Pi 4 Model B Rev 1.4`), from the device tree when there is one."""
    try:
        return Path(path).read_bytes().rstrip(b"\0").decode(errors="replace").strip() or DEFAULT_MODEL
    except OSError:
        return DEFAULT_MODEL


def discovery_topic(prefix: str, node: str) -> str:
    return f"{prefix}/device/sensord_{object_id(node)}/config"


def discovery_message(*, node: str, entities: Sequence[Entity], status_topic: str, state_topic: str,
                      version: str, model: str) -> dict[str, Any]:
    """The device discovery message."""
    components = {e.component_id: e.component(node) for e in entities}
    return {
        "dev": {"ids": [f"sensord_{object_id(node)}"], "name": node, "mdl": model, "sw": version},
        "o": {"name": "sensord", "sw": version, "url": SUPPORT_URL},
        "avty_t": status_topic, "pl_avail": "online", "pl_not_avail": "offline",
        "stat_t": state_topic, "qos": 1,
        "cmps": components,
    }


def with_removed(message: Mapping[str, Any], removed: Mapping[str, str]) -> dict[str, Any]:
    """`message` also listing `removed` (component ids announced before and gone now, with their
    platform) as `{"p": platform}` only: the form that makes Home Assistant delete them."""
    stubs = {cid: {"p": platform} for cid, platform in removed.items() if cid not in message["cmps"]}
    return {**message, "cmps": {**message["cmps"], **stubs}}


def encode(message: Mapping[str, Any]) -> bytes:
    import json  # here, as in `message`: `sensord check` lists the entities without json

    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def announced(message: Mapping[str, Any]) -> dict[str, str]:
    """{component id: platform} of the components a device message announces (not the removals)."""
    return {cid: c.get("p", "sensor") for cid, c in message.get("cmps", {}).items() if len(c) > 1}


# ---------------------------------------------------------------------------------------------
# The state message

def _rounded(value: Value, digits: int | None) -> Value:
    if isinstance(value, bool) or not isinstance(value, float) or digits is None or not math.isfinite(value):
        return value
    out = round(value, digits)
    return int(out) if digits == 0 else out


class StateTracker:
    """The latest value of each channel, and what changed since the last state message."""

    def __init__(self, entities: Sequence[Entity]) -> None:
        self._latest: dict[str, Value] = {}
        self._sent: dict[str, Value] = {}
        self._by_channel: dict[tuple[str, str], Entity] = {}
        self.reconfigure(entities)

    def reconfigure(self, entities: Sequence[Entity]) -> None:
        """New entities (a reload): values of keys still in use are kept, and stay sent."""
        self._by_channel = {e.channel: e for e in entities if e.channel is not None}
        keys = {e.key for e in entities}
        self._latest = {k: v for k, v in self._latest.items() if k in keys}
        self._sent = {k: v for k, v in self._sent.items() if k in keys}

    def observe(self, sensor: str, quantity: str, value: Value) -> None:
        entity = self._by_channel.get((sensor, quantity))
        if entity is None:
            return
        if not isinstance(value, (bool, int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            return  # not a number (the pipeline drops those earlier), or NaN/inf, which JSON has not
        self._latest[entity.key] = _rounded(value, entity.precision)

    def message(self, diagnostics: Mapping[str, Value], *, everything: bool = False) -> bytes | None:
        """The state message with what changed since the last one (everything, e.g. after Home
        Assistant restarted), or None when nothing did. Marks what it returns as sent."""
        current = {**self._latest, **diagnostics}
        changed = {k: v for k, v in current.items() if everything or k not in self._sent or self._sent[k] != v
                   or type(self._sent[k]) is not type(v)}
        if not changed:
            return None
        self._sent.update(changed)
        import json  # the daemon has imported it long before (a dictionary look-up)

        return json.dumps(changed, separators=(",", ":")).encode()

    def forget_sent(self) -> None:
        """The broker may have lost the retained state: send everything next time."""
        self._sent.clear()

