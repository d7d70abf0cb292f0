"""The MQTT stage: the link to the broker and the publisher that drains the buffer through it.

- `link`: `MqttLink`, one client of one broker (connect, publish with PUBACK, will, subscribe),
  its errors made into one-line `BrokerError`s, the password file and TLS context.
- `backoff`: `Backoff` and `connect_timeout_s`, without the MQTT library, so that `reconnect`
  (the policy `sensord check` prints) imports neither paho nor asyncio.
- `compat`: the two MQTT library generations (aiomqtt 2.x, asyncio-mqtt 0.16) behind one
  `Connection` class. This package is the only part of sensord that imports paho, aiomqtt or
  asyncio_mqtt (the paho subscriber of the test kit, `sensord.testing.mqtt_client`, aside).
- `publisher`: `Publisher`, the daemon's MQTT loop (status, meta, batches, per_channel values).

Tests run the link and the publisher against `sensord.testing.fake_mqtt.FakeBroker` through the
`connection_factory=` seam, and against a real mosquitto for what only a broker can show.

The names below are imported on first use (PEP 562), so importing a pure submodule such as
`sensord.mqtt.reconnect` does not import paho, aiomqtt, asyncio and ssl with this package.
"""

from typing import TYPE_CHECKING

from .._compat import lazy as _lazy

if TYPE_CHECKING:
    from .backoff import Backoff, connect_timeout_s
    from .compat import LIBRARY
    from .link import MqttLink, Received, Will, make_tls_context, read_password_file, v5_probe_s
    from .publisher import OFFLINE, ONLINE, Publisher, Topics, format_value, will_delay_s

__all__ = ["LIBRARY", "OFFLINE", "ONLINE", "Backoff", "MqttLink", "Publisher", "Received", "Topics", "Will",
           "connect_timeout_s", "format_value", "make_tls_context", "read_password_file", "v5_probe_s", "will_delay_s"]

# The submodule of each name above.
_LAZY = {name: f"{__name__}.{module}" for module, names in {
    "compat": ("LIBRARY",),
    "backoff": ("Backoff", "connect_timeout_s"),
    "link": ("MqttLink", "Received", "Will", "make_tls_context", "read_password_file", "v5_probe_s"),
    "publisher": ("OFFLINE", "ONLINE", "Publisher", "Topics", "format_value", "will_delay_s"),
}.items() for name in names}

__getattr__ = _lazy(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
