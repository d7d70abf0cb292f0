"""What every built-in driver brings, checked for each module `sensord.plugins.builtin_plugins()`
finds, so that a new driver is held to it without being listed anywhere: a test module of its own
and a TOML example in its docstring that parses with the types it registers."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from driver_kit import example_config

from sensord.plugins import builtin_plugins, get_plugin_manager

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("module_name", builtin_plugins())
def test_driver_has_a_test_module_and_a_docstring_example_that_parses(module_name: str) -> None:
    short = module_name.rsplit(".", 1)[-1]
    assert (TESTS / f"test_{short}.py").is_file(), f"no tests/plugins/test_{short}.py for {module_name}"
    host = get_plugin_manager(entry_points=False, builtins=[module_name])
    types = list(host.sensor_types.values())
    assert types, f"{module_name} registers no sensor type"
    config = example_config(importlib.import_module(module_name), *types)
    assert {s.type for s in config.sensors} <= set(host.sensor_types)
    assert config.sensors
