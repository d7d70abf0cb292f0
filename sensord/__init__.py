"""sensord: a sensor-node daemon. This module is the public plugin API: every name a plugin
author uses imports from here (`__all__`, listed in docs/plugins.md, "The plugin API"); the
names stay stable across minor releases, and a moved one keeps working for a release with a
`DeprecationWarning`. The filter, encoding and I2C names are imported on first use, so that
`import sensord` (and a server's `sensord.decode`) does not load the daemon's stages.

A plugin module provides sensor types::

    from dataclasses import dataclass
    import sensord

    class Thermo(sensord.Sensor):
        type_name = "thermo"

        @dataclass(frozen=True)
        class Config(sensord.SensorConfig):
            address: int = 0x48

        def read(self) -> list[sensord.Reading]:
            return [sensord.Reading("temperature", 21.5, "°C")]

    @sensord.hookimpl
    def sensord_register_sensors():
        return [Thermo]
"""

from typing import TYPE_CHECKING, Any

from ._compat import lazy as _lazy
from .errors import ConfigError, DecodeError, EncodeError, PluginError, ReadTimeout, SensordError, SensorError
from .hardware import NACK_ERRNOS, Hardware, I2CBus, LockedBus
from .hookspecs import hookimpl
from .sensor import Channel, Reading, Sample, Sensor, SensorConfig, Value, field_range

if TYPE_CHECKING:
    from .encoding import ENCODINGS, Batch, BatchData, ChannelInfo, Encoding
    from .filters import Filter, FilterFactory, filter_error, filter_options, is_number
    from .i2c import I2CConfig, I2CSensor, crc8, read_bytes, signed, swap16, words_with_crc

__version__ = "0.1.0"

# Names of the plugin API that live in heavier modules: imported when first asked for.
_LAZY = {
    "Filter": "sensord.filters",
    "FilterFactory": "sensord.filters",
    "filter_error": "sensord.filters",
    "filter_options": "sensord.filters",
    "is_number": "sensord.filters",
    "ENCODINGS": "sensord.encoding",
    "Batch": "sensord.encoding",
    "BatchData": "sensord.encoding",
    "ChannelInfo": "sensord.encoding",
    "Encoding": "sensord.encoding",
    # The I2C helpers: a config without an I2C sensor (`sensord check` on `sim` ones) needs none.
    "I2CConfig": "sensord.i2c",
    "I2CSensor": "sensord.i2c",
    "crc8": "sensord.i2c",
    "read_bytes": "sensord.i2c",
    "signed": "sensord.i2c",
    "swap16": "sensord.i2c",
    "words_with_crc": "sensord.i2c",
}


__getattr__ = _lazy(globals(), _LAZY)


def decode(payload: bytes) -> Any:
    """Decode one batch payload in any sensord encoding (told apart by its first bytes).

    Returns a `Batch` with `node`, `seq` and `samples` (the readings: `sensor`, `quantity`,
    `value`, `unit`, `ts`); raises `DecodeError` (a `SensordError` and `ValueError`) with one
    clear line for anything that is not a whole, valid batch."""
    from .encoding import decode as _decode

    return _decode(payload)


__all__ = [
    "ENCODINGS",
    "Batch",
    "BatchData",
    "Channel",
    "ChannelInfo",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "Encoding",
    "Filter",
    "FilterFactory",
    "Hardware",
    "I2CBus",
    "I2CConfig",
    "I2CSensor",
    "LockedBus",
    "NACK_ERRNOS",
    "PluginError",
    "ReadTimeout",
    "Reading",
    "Sample",
    "Sensor",
    "SensorConfig",
    "SensorError",
    "SensordError",
    "Value",
    "__version__",
    "crc8",
    "decode",
    "field_range",
    "filter_error",
    "filter_options",
    "hookimpl",
    "is_number",
    "read_bytes",
    "signed",
    "swap16",
    "words_with_crc",
]
