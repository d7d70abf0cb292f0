"""sensord: a sensor-node daemon. This module is the public plugin API.

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

from typing import Any

from .errors import ConfigError, DecodeError, EncodeError, PluginError, ReadTimeout, SensordError, SensorError
from .hookspecs import hookimpl
from .i2c import I2CConfig, I2CSensor
from .sensor import Channel, Reading, Sample, Sensor, SensorConfig, field_range

__version__ = "0.1.0"


def decode(payload: bytes) -> Any:
    """Decode one batch payload in any sensord encoding (told apart by its first bytes).

    Returns a `Batch` with `node`, `seq` and `samples` (the readings: `sensor`, `quantity`,
    `value`, `unit`, `ts`); raises `DecodeError` (a `SensordError` and `ValueError`) with one
    clear line for anything that is not a whole, valid batch."""
    from .encoding import decode as _decode

    return _decode(payload)

__all__ = [
    "Channel",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "I2CConfig",
    "I2CSensor",
    "PluginError",
    "ReadTimeout",
    "Reading",
    "Sample",
    "Sensor",
    "SensorConfig",
    "SensorError",
    "SensordError",
    "__version__",
    "decode",
    "field_range",
    "hookimpl",
]
