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

from .errors import ConfigError, PluginError, ReadTimeout, SensordError, SensorError
from .hookspecs import hookimpl
from .i2c import I2CConfig, I2CSensor
from .sensor import Channel, Reading, Sensor, SensorConfig, field_range

__version__ = "0.1.0"

__all__ = [
    "Channel",
    "ConfigError",
    "I2CConfig",
    "I2CSensor",
    "PluginError",
    "ReadTimeout",
    "Reading",
    "Sensor",
    "SensorConfig",
    "SensorError",
    "SensordError",
    "__version__",
    "field_range",
    "hookimpl",
]
