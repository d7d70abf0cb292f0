"""Plugin loading: built-ins, entry points from a dist made in the test, drop-ins, blocking, errors."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from sensord.errors import ConfigError, PluginError
from sensord.hookspecs import PROJECT, hookimpl, hookspec
from sensord.plugins import builtin_plugins, call_per_plugin, collect_device_models, get_plugin_manager

ROOT = Path(__file__).resolve().parents[1]

THERMO = '''
from dataclasses import dataclass
import sensord

class Thermo(sensord.Sensor):
    type_name = "{type_name}"

    @dataclass(frozen=True)
    class Config(sensord.SensorConfig):
        address: int = 0x48

    def read(self):
        return [sensord.Reading("temperature", 21.5, "°C")]

@sensord.hookimpl
def sensord_register_sensors():
    return [Thermo]
'''


def make_dist(site: Path, dist: str, version: str, module: str, code: str, ep_name: str) -> None:
    """An installed distribution, as pip leaves it: a module plus a .dist-info with entry points."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"  # as pip names it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[sensord]\n{ep_name} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name in [m for m in sys.modules if m.startswith(("sensord_thermo", "sensord_broken", "sensord_dropin"))]:
        del sys.modules[name]


def test_builtins_only() -> None:
    host = get_plugin_manager(entry_points=False)
    assert [p.name for p in host.loaded] == [m.rsplit(".", 1)[1] for m in builtin_plugins()]
    assert {"sim", "system", "bme280", "bmp280", "sht3x", "scd4x"} <= set(host.sensor_types)
    assert host.sensor_plugin["sim"] == "sim" and host.sensor_plugin["bmp280"] == "bme280"
    assert host.failed == []


def test_every_module_in_plugins_is_loaded_and_nothing_else_lists_them() -> None:
    """Run against the built copy too (debian/rules): the package carries every driver in plugins/."""
    in_tree = sorted(p.stem for p in (ROOT / "plugins").glob("*.py") if not p.name.startswith("_"))
    host = get_plugin_manager(entry_points=False)
    assert [(p.name, p.source, p.origin) for p in host.loaded] == [
        (name, "builtin", f"sensord_plugins.{name}") for name in in_tree]


def test_a_new_driver_module_is_all_a_new_built_in_sensor_needs(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sensord_plugins

    (tmp_path / "zz_thermo.py").write_text(THERMO.format(type_name="zz_thermo") + textwrap.dedent('''
        from sensord.testing import RegisterMapDevice

        class ThermoModel(RegisterMapDevice):
            DEFAULT_ADDRESS = 0x18

        @sensord.hookimpl
        def sensord_register_device_models():
            return [ThermoModel]
        '''))
    (tmp_path / "_helpers.py").write_text("raise AssertionError('a private module is not a plugin')\n")
    monkeypatch.setattr(sensord_plugins, "__path__", [*sensord_plugins.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "sensord_plugins.zz_thermo", raising=False)
    try:
        assert builtin_plugins()[-1] == "sensord_plugins.zz_thermo"
        host = get_plugin_manager(entry_points=False)
        assert host.sensor_plugin["zz_thermo"] == "zz_thermo"
        assert [p.source for p in host.loaded if p.name == "zz_thermo"] == ["builtin"]
        models = collect_device_models(host)
        assert models[-1].__name__ == "ThermoModel" and host.device_model_plugin[models[-1]] == "zz_thermo"
    finally:
        sys.modules.pop("sensord_plugins.zz_thermo", None)


def test_entry_point_plugin(site: Path) -> None:
    make_dist(site, "sensord-thermo", "1.2", "sensord_thermo", THERMO.format(type_name="thermo"), "thermo")
    host = get_plugin_manager()
    info = {p.name: p for p in host.loaded}["thermo"]
    assert (info.source, info.version, info.origin) == ("entry point", "1.2", "sensord-thermo 1.2")
    assert host.sensor_plugin["thermo"] == "thermo"
    assert host.sensor_types["thermo"].Config().address == 0x48  # type: ignore[attr-defined]


def test_broken_plugin_is_named_and_others_load(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_dist(site, "sensord-broken", "0.3", "sensord_broken", "import no_such_module\n", "broken")
    make_dist(site, "sensord-thermo", "1.2", "sensord_thermo", THERMO.format(type_name="thermo"), "thermo")
    host = get_plugin_manager()
    assert [(f.name, f.origin, f.error) for f in host.failed] == [
        ("broken", "sensord-broken 0.3", "ModuleNotFoundError: No module named 'no_such_module'")]
    assert {"sim", "system", "thermo"} <= set(host.sensor_types)
    assert 'cannot load plugin "broken" (sensord-broken 0.3): ModuleNotFoundError' in caplog.text
    assert host.failure_hint() == " (plugins that failed to load: broken)"


def test_drop_in_file(tmp_path: Path) -> None:
    dropins = tmp_path / "plugins.d"
    dropins.mkdir()
    (dropins / "cellar.py").write_text(THERMO.format(type_name="cellar"))
    (dropins / "notes.txt").write_text("not a plugin")
    host = get_plugin_manager(dirs=[str(dropins), str(tmp_path / "missing")], entry_points=False)
    assert [(p.name, p.source) for p in host.loaded][-1] == ("cellar", "drop-in")
    assert host.sensor_plugin["cellar"] == "cellar"


def test_broken_drop_in(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("raise RuntimeError('wiring not done')\n")
    host = get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert [(f.name, f.error) for f in host.failed] == [("bad", "RuntimeError: wiring not done")]
    assert "sensord_dropin_bad" not in sys.modules


def test_disabled_plugins_are_not_loaded(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_dist(site, "sensord-thermo", "1.2", "sensord_thermo", THERMO.format(type_name="thermo"), "thermo")
    host = get_plugin_manager(disabled=["system", "thermo", "nosuch"],
                              builtins=("sensord_plugins.sim", "sensord_plugins.system"))
    assert set(host.sensor_types) == {"sim"}
    assert "sensord_thermo" not in sys.modules  # blocked before import
    assert "no plugin of that name exists" in caplog.text and "'nosuch'" in caplog.text


def test_misspelled_hook_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text("import sensord\n\n@sensord.hookimpl\n"
                                      "def sensord_register_sensor():\n    return []\n")
    with pytest.raises(PluginError) as info:
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert str(info.value) == ('plugin "typo": unknown hook "sensord_register_sensor", '
                               'did you mean "sensord_register_sensors"?')


def test_duplicate_type_names_both_plugins(tmp_path: Path) -> None:
    (tmp_path / "again.py").write_text(THERMO.format(type_name="sim"))
    with pytest.raises(PluginError) as info:
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert str(info.value) == 'plugin "again": sensor type "sim" is already registered by plugin "sim"'


@pytest.mark.parametrize("sensor_types", [None, ["sim"], ["mcp9808"]])
def test_a_plugin_named_as_a_built_in_is_refused_whether_or_not_the_built_in_was_deferred(
        tmp_path: Path, sensor_types: list[str] | None) -> None:
    # The example plugin used to be an MCP9808 driver named "mcp9808"; the type is built in now.
    (tmp_path / "mcp9808.py").write_text(THERMO.format(type_name="mcp9808"))
    host = get_plugin_manager(dirs=[str(tmp_path)], entry_points=False, sensor_types=sensor_types)
    (failed,) = host.failed
    assert (failed.name, failed.source) == ("mcp9808", "drop-in")
    assert failed.error == ("a built-in plugin has that name (rename this one, or remove it if sensord now "
                            "drives its chip itself)")
    host.load_deferred()
    assert host.sensor_plugin["mcp9808"] == "mcp9808" and host.sensor_types["mcp9808"].__module__ == \
        "sensord_plugins.mcp9808"


def test_the_generated_table_of_built_in_types_is_up_to_date(tmp_path: Path) -> None:
    """plugins/_index.py is a cache of what importing every built-in module registers; when this
    fails, regenerate it with `make plugin-index`."""
    from sensord.plugins import write_builtin_index

    assert write_builtin_index(tmp_path / "_index.py") == (ROOT / "plugins" / "_index.py").read_text()


def test_a_config_imports_only_the_built_in_drivers_it_names() -> None:
    host = get_plugin_manager(entry_points=False, sensor_types=["sim", "bmp280"])
    assert [p.name for p in host.loaded] == ["bme280", "sim"]
    assert set(host.sensor_types) == {"sim", "bme280", "bmp280"}
    assert "sensord_plugins.sht3x" in host.deferred
    host.load_deferred()
    assert host.deferred == () and set(host.sensor_types) == set(get_plugin_manager(entry_points=False).sensor_types)
    assert host.sensor_plugin["sht3x"] == "sht3x" and host.sensor_plugin["sim"] == "sim"


def test_an_unknown_type_loads_the_rest_for_its_message(tmp_path: Path) -> None:
    from sensord import startup

    cfg = tmp_path / "node.toml"
    cfg.write_text('[plugins]\ndirs = []\n[[sensor]]\nname = "a"\ntype = "sht3"\ninterval_s = 1\n')
    with pytest.raises(ConfigError, match=r'unknown sensor type "sht3", did you mean "sht3x"\?; known types: '
                                          r"ads1115, aht20, .*, tmp102"):
        startup.load(str(cfg), entry_points=False)


def test_a_stale_table_costs_time_never_a_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sensord_plugins._index as index

    # A module the table does not know is imported; one that registers other types than the
    # table says makes every deferred module load.
    monkeypatch.setattr(index, "SENSOR_TYPES", {k: v for k, v in index.SENSOR_TYPES.items() if k != "lm75"})
    host = get_plugin_manager(entry_points=False, sensor_types=["sim"])
    assert [p.name for p in host.loaded] == ["lm75", "sim"]
    monkeypatch.setattr(index, "SENSOR_TYPES", {**index.SENSOR_TYPES, "sim": ("sim", "gone")})
    host = get_plugin_manager(entry_points=False, sensor_types=["sim"])
    assert host.deferred == () and len(host.loaded) == len(builtin_plugins())


def test_a_plugin_type_that_clashes_with_a_deferred_built_in_fails_as_before(tmp_path: Path) -> None:
    (tmp_path / "again.py").write_text(THERMO.format(type_name="bmp280"))
    with pytest.raises(PluginError) as info:
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False, sensor_types=["sim"])
    assert str(info.value) == 'plugin "again": sensor type "bmp280" is already registered by plugin "bme280"'


def test_fake_node_models_come_from_every_built_in_driver_also_when_some_were_deferred() -> None:
    lazy = get_plugin_manager(entry_points=False, sensor_types=["sim"])
    full = get_plugin_manager(entry_points=False)
    assert collect_device_models(lazy) == collect_device_models(full)


@pytest.mark.parametrize(("body", "message"), [
    ("return [int]", 'plugin "odd": sensord_register_sensors returned <class \'int\'>, '
                     "expected a Sensor subclass"),
    ("return 3", 'plugin "odd": sensord_register_sensors must return a list of Sensor classes, returned int'),
    ("raise KeyError('x')", "plugin \"odd\": sensord_register_sensors raised KeyError: 'x'"),
    ("pass", 'plugin "odd": sensord_register_sensors must return a list of Sensor classes, returned NoneType'),
])
def test_invalid_registrations_name_the_plugin(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "odd.py").write_text(f"import sensord\n\n@sensord.hookimpl\n"
                                     f"def sensord_register_sensors():\n    {body}\n")
    with pytest.raises(PluginError) as info:
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)
    assert str(info.value) == message


def test_bad_type_name(tmp_path: Path) -> None:
    (tmp_path / "caps.py").write_text(THERMO.format(type_name="Thermo"))
    with pytest.raises(PluginError, match=r'plugin "caps": Thermo.type_name must match'):
        get_plugin_manager(dirs=[str(tmp_path)], entry_points=False)


# -- adding a hook parameter is compatible (STYLE.md §3) -----------------------------------------

def namespace(name: str, **functions: Callable[..., Any]) -> types.ModuleType:
    """A plugin or spec module made in the test (modules, as pluggy 1.0 needs hashable plugins)."""
    module = types.ModuleType(name)
    for attr, function in functions.items():
        setattr(module, attr, function)
    return module


def manager_whose_spec_gained_a_parameter() -> pluggy.PluginManager:
    """A manager as a later sensord would build it: `sensord_register_sensors(node_id)`."""

    @hookspec
    def sensord_register_sensors(node_id: str) -> list[str]:  # type: ignore[empty-body]
        ...

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(namespace("later_specs", sensord_register_sensors=sensord_register_sensors))
    return pm


def test_a_plugin_written_before_a_hook_gained_a_parameter_keeps_working() -> None:
    @hookimpl
    def old() -> list[str]:  # written against today's spec: no parameter
        return ["old"]

    @hookimpl
    def new(node_id: str) -> list[str]:
        return [f"new on {node_id}"]

    pm = manager_whose_spec_gained_a_parameter()
    pm.register(namespace("old_plugin", sensord_register_sensors=old), name="old_plugin")
    pm.register(namespace("new_plugin", sensord_register_sensors=new), name="new_plugin")
    pm.check_pending()
    results = call_per_plugin(pm, "sensord_register_sensors", returns=list, expected="a list",
                              hook_args={"node_id": "attic"})
    assert list(results) == [("old_plugin", ["old"]), ("new_plugin", ["new on attic"])]  # load order


def test_errors_of_a_hook_with_parameters_still_name_the_plugin() -> None:
    @hookimpl
    def fine(node_id: str) -> list[str]:
        return [node_id]

    @hookimpl
    def broken(node_id: str) -> list[str]:
        raise KeyError(node_id)

    pm = manager_whose_spec_gained_a_parameter()
    pm.register(namespace("fine", sensord_register_sensors=fine), name="fine")
    pm.register(namespace("broken", sensord_register_sensors=broken), name="broken")
    results = call_per_plugin(pm, "sensord_register_sensors", returns=list, expected="a list",
                              hook_args={"node_id": "attic"})
    assert next(results) == ("fine", ["attic"])
    with pytest.raises(PluginError) as info:
        next(results)
    assert str(info.value) == "plugin \"broken\": sensord_register_sensors raised KeyError: 'attic'"
