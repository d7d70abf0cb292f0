"""The exception hierarchy: one base, each subclass also inheriting the matching builtin."""

from __future__ import annotations


class SensordError(Exception):
    """Base of every error sensord raises on purpose."""


class ConfigError(SensordError, ValueError):
    """The configuration is invalid. The message is one line naming file, key path, expected and found."""


class PluginError(SensordError, RuntimeError):
    """A plugin could not be loaded or returned something invalid. The message names the plugin."""


class SensorError(SensordError, OSError):
    """A sensor could not be opened or read (wrong chip id, bad CRC, NACK, out of range)."""


class ReadTimeout(SensorError, TimeoutError):
    """A sensor's read() did not return within its timeout_s."""
