"""OpenSSL only for a node that uses it: `ssl` and `hashlib` imported on first use.

asyncio, paho (with `urllib.request`, which it imports) and aiomqtt import `ssl` and `hashlib`
when they are imported. Both load OpenSSL's libcrypto and initialise it: 4.7 MiB of the daemon's
31 MiB peak RSS (libcrypto's pages alone are 3.4 MiB), for a node that speaks plain MQTT to a
broker on its own network and hashes nothing with OpenSSL. `defer_openssl()`, called by
`sensord run` when the config has no `[mqtt.tls]` and before anything has imported asyncio:

- imports asyncio while `sys.modules["ssl"]` is None, the way asyncio is imported on a Python
  built without ssl (its modules catch the ImportError and keep `ssl = None`). sensord never uses
  asyncio's own TLS (`loop.create_connection(ssl=...)`, `start_tls`): paho wraps its socket
  itself and aiomqtt hands asyncio only the file descriptor. In this process asyncio's TLS says
  "stdlib ssl module not available"; a plugin reads synchronously and does not use it;
- then puts a `Deferred` module in `sys.modules` for `ssl` and `hashlib`: `import ssl` and
  `import hashlib` bind it, and the real module is imported the first time an attribute is
  read (`ssl.create_default_context`, `hashlib.sha1`), after which the stand-in holds the real
  module's attributes. A reload that turns TLS on, or a plugin that hashes, imports them then.
- paho looks up `ssl.SSLWantReadError` in an `except` clause after every failed socket call
  (EAGAIN, a reset), and sensord's link classifies errors with `ssl.SSLError`: those exception
  classes answer, until ssl is imported, with a class of which nothing is an instance. That is
  exact: no object can be an instance of a class that `_ssl` has not created yet. Importing a
  module to learn that an exception is not one of its own would bring OpenSSL back at the
  first dropped connection.

What is left of the trade: `ssl` or `hashlib` attributes set by somebody else after the real
module was imported are not copied to the stand-in, and `importlib.reload` of them is not
supported. Neither is done by sensord or the libraries it uses.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

__all__ = ["SSL_EXCEPTIONS", "Deferred", "NotImportedError", "defer_openssl", "sha256"]

# The exception classes of `ssl` (Python 3.11-3.13), answered before it is imported.
SSL_EXCEPTIONS = frozenset({"SSLError", "SSLZeroReturnError", "SSLWantReadError", "SSLWantWriteError",
                            "SSLSyscallError", "SSLEOFError", "SSLCertVerificationError", "CertificateError"})


class NotImportedError(Exception):
    """Stands for an exception class of a module not imported yet: nothing is an instance of it,
    so `except` and `isinstance` with it match nothing, as with the class it stands for."""


class Deferred(types.ModuleType):
    """A module in `sys.modules` whose real module is imported when an attribute is first read.

    `absent` names attributes (exception classes) answered with `NotImportedError` until then."""

    def __init__(self, name: str, *, absent: frozenset[str] = frozenset()) -> None:
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        super().__init__(name)
        # __spec__ is what the import statement reads of a module in sys.modules (whether it is
        # still initialising); having it here keeps `import ssl` from importing the real one.
        self.__spec__ = spec
        self.__loader__ = spec.loader
        self.__package__ = spec.parent
        if spec.has_location and spec.origin:
            self.__file__ = spec.origin
        vars(self).update(_absent=absent, _lock=threading.Lock(), _real=None)

    @property
    def imported(self) -> bool:
        """Whether the real module has been imported."""
        return vars(self)["_real"] is not None

    def __getattr__(self, attr: str) -> Any:
        # Called only for what the stand-in does not hold: before the import, everything but
        # the bookkeeping above; after it, what the real module lacks too (an AttributeError).
        own = vars(self)
        if own["_real"] is None:
            if attr in own["_absent"]:
                return NotImportedError
            if attr.startswith("__") and attr.endswith("__") and attr != "__all__":
                # Introspection (copy, pickle, typing, pytest's assertion rewriter) asking for
                # an optional dunder is not a use of the module.
                raise AttributeError(attr)
            self.load()
        return getattr(own["_real"], attr)

    def load(self) -> types.ModuleType:
        """Import the real module (once, whichever thread asks first) and take its attributes."""
        own = vars(self)
        with own["_lock"]:
            if own["_real"] is None:
                name = self.__name__
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                try:
                    real = importlib.import_module(name)
                except BaseException:
                    sys.modules.setdefault(name, self)
                    raise
                own.update({k: v for k, v in vars(real).items() if k not in ("_absent", "_lock", "_real")})
                own["_real"] = real
        return own["_real"]  # type: ignore[no-any-return]


def defer_openssl() -> bool:
    """Import asyncio without `ssl`, and leave `ssl` and `hashlib` to their first use (see the
    module docstring). False, and nothing changed, when asyncio or ssl is imported already."""
    if any(name in sys.modules for name in ("ssl", "asyncio", "_ssl")):
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
    sys.modules["ssl"] = Deferred("ssl", absent=SSL_EXCEPTIONS)
    if "hashlib" not in sys.modules and "_hashlib" not in sys.modules:
        sys.modules["hashlib"] = Deferred("hashlib")
    return True


def sha256(data: bytes) -> bytes:
    """The SHA-256 digest of `data`, from Python's own implementation where it has one (`_sha2`
    from 3.12, `_sha256` in 3.11), so that hashing an id does not load OpenSSL; the digest is the
    same whichever computes it."""
    for name in ("_sha2", "_sha256", "hashlib"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.sha256(data).digest()  # type: ignore[no-any-return]
    raise ImportError("no SHA-256 implementation")  # pragma: no cover
