"""Module `__getattr__`s: names imported on first use (`lazy`), and old import paths kept working
for one release with a `DeprecationWarning` (`moved`).

A module whose public names moved ends with
``__getattr__ = moved(__name__, {"Old": "sensord.new_module.Old"})``: Python calls the module's
`__getattr__` only for names it does not define, so code importing from the new place never
pays for it, and `from old_module import Old` still works, with a warning that says where to.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

#: The release in which the old paths go away.
REMOVED_IN = "0.3"


def lazy(namespace: dict[str, Any], names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` (PEP 562) that imports each name in `names` (name → the module that
    defines it) on first use and keeps it in `namespace`, the module's globals, so the next access
    does not come here: a package re-exports names of heavy modules without importing them."""
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        source = names.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    return __getattr__


def moved(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that resolves each name in `names` (old name → "package.module.New")
    from its new home, warning once per import site."""

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, new_name = target.rpartition(".")
        warnings.warn(f"{module}.{name} moved to {target}; the old path goes away in sensord {REMOVED_IN}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
