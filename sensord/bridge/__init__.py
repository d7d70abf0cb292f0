"""`sensord bridge`: a server-side consumer of the wire. Subscribes to every node's batches,
status and meta, decodes them (plugin encodings too), writes each reading once to InfluxDB line
protocol, JSON lines and retained per-channel topics. Reads `sensord.encoding` and
`sensord.sensor` types only, never the daemon.

- `config`: the `[bridge]` table (and `[mqtt]`, `[plugins]`) of the bridge's config file.
- `state`: per-node sequence and per-channel time state in SQLite (exactly once, time order).
- `outputs`: line protocol, JSON lines, per-channel topics; the line sinks.
- `runner`: `Bridge.handle()` for one message, `run_bridge()` for the MQTT loop.
"""

from .config import DEFAULT_BRIDGE_PATH, BridgeConfig, BridgeFile, parse_bridge_config
from .state import Admitted, DedupeState, StateError

__all__ = ["DEFAULT_BRIDGE_PATH", "Admitted", "BridgeConfig", "BridgeFile", "DedupeState", "StateError",
           "parse_bridge_config"]
