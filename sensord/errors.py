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


class DecodeError(SensordError, ValueError):
    """A payload is not a valid sensord batch. The message is one line: what, where, expected vs found."""


class EncodeError(SensordError, ValueError):
    """A batch cannot be represented in the chosen encoding (a value of the wrong type, a bad name)."""


class BufferStorageError(SensordError, OSError):
    """The offline buffer's SQLite file cannot be opened, moved aside or read (see sensord.buffer)."""


class BufferUnwritable(BufferStorageError, PermissionError):
    """The buffer file or its directory cannot be written (read-only file system, owner, mode):
    retrying will not help. The message names the cause and the fix; `sensord run` exits 73."""


class BrokerError(SensordError, ConnectionError):
    """Talking to the MQTT broker failed. The message is one line naming the broker (host:port).

    The daemon retries every BrokerError with backoff. `transient` is False when retrying alone
    will not help (a wrong password, an untrusted certificate): log those at ERROR, as they
    need someone to change the configuration or the broker. `no_route` is True when the
    kernel had no way to the broker (network or host unreachable, network down): the node's own
    link is down, and no packet went out."""

    transient: bool = True
    no_route: bool = False


class BrokerUnreachable(BrokerError):
    """No MQTT broker answered: connection refused, unknown host, network down, or the broker
    closed the connection before accepting it."""


class BrokerDisconnected(BrokerError):
    """The connection to the broker was lost (or closed by the broker) while in use."""


class BrokerTimeout(BrokerError, TimeoutError):
    """The broker did not answer in time (CONNACK, PUBACK, SUBACK)."""


class BrokerAuthError(BrokerError, PermissionError):
    """The broker refused the user name or password, or does not authorize this client."""

    transient = False


class BrokerRefused(BrokerError):
    """The broker acknowledged a message with an MQTT 5 failure reason code (PUBACK, §3.4.2.1):
    it did not take the message, so the sender keeps it. `code` is that reason code. Not
    transient when only a change on the broker or in the config helps (not authorized, topic
    name or payload format invalid); transient otherwise (quota exceeded, server busy)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.transient = code not in (0x87, 0x90, 0x99)


class BrokerTlsError(BrokerError):
    """The TLS handshake failed, typically because the broker's certificate is not trusted."""

    transient = False
