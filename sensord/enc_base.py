"""Moved to `sensord.encoding` (0.2). docs/wire-format.md named this module for the decode limits,
so the old path keeps working for one release, with a DeprecationWarning."""

from ._compat import moved

__getattr__ = moved(__name__, {
    "MAX_PAYLOAD_BYTES": "sensord.encoding.MAX_PAYLOAD_BYTES",
    "MAX_READINGS": "sensord.encoding.MAX_READINGS",
})
