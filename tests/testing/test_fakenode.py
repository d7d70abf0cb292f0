"""`sensord.testing.fakenode`: the fake node's bus, built from the chip models every plugin registers
through `sensord_register_device_models`, the built-in drivers included. `tests/test_fake_node.py`
runs it as a user does, through `sensord detect --fake`, `check` and `read --fake`."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from typing import Any

import sensord.testing.models
from sensord.config import parse_config
from sensord.detect import identify, scan, suggest_name, toml_block
from sensord.plugins import collect_device_models, get_plugin_manager
from sensord.testing import FakeI2CBus, I2CDeviceModel, RegisterMapDevice
from sensord.testing.fakenode import SECOND_BUS, SPARE_BUSES, fake_node_bus, fake_node_buses


def built_in_models() -> list[type[Any]]:
    """The chip models the built-in drivers register, in load order."""
    return collect_device_models(get_plugin_manager(entry_points=False))


# -- the built-in drivers' chip models: the same hook, nothing else lists them -------------------

def test_every_chip_model_in_the_kit_is_registered_by_a_built_in_driver() -> None:
    in_kit = set()
    for info in pkgutil.iter_modules(sensord.testing.models.__path__, "sensord.testing.models."):
        module = importlib.import_module(info.name)
        in_kit |= {cls for cls in vars(module).values() if isinstance(cls, type) and issubclass(cls, I2CDeviceModel)
                   and cls.__module__ == module.__name__ and not cls.__name__.startswith("_")}
    host = get_plugin_manager(entry_points=False)
    assert set(collect_device_models(host)) == in_kit
    registered_by = {m.__name__: p for m, p in host.device_model_plugin.items()}
    assert registered_by["LM75Model"] == "lm75" and registered_by["SHT4xModel"] == "sht4x"
    assert registered_by["BMP280Model"] == registered_by["BME280Model"] == "bme280"


def test_start_up_imports_no_chip_model() -> None:
    code = ("import sys; from sensord.plugins import get_plugin_manager; host = get_plugin_manager(); "
            "print(sorted(m for m in sys.modules if m.startswith('sensord.testing')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# -- the fake bus (`fake_node_bus`) ------------------------------------------------------------

def test_fake_bus_places_models_in_order_and_leaves_out_one_with_no_free_address() -> None:
    class ThermoModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x48

    class CloneModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x48

    bus = fake_node_bus([ThermoModel, CloneModel])
    assert {addr: type(model).__name__ for addr, model in bus.devices.items()} == {0x48: "ThermoModel",
                                                                                  0x49: "CloneModel"}
    assert bus.devices[0x49].address == 0x49  # built with address=
    fillers = [type(f"Filler{i}", (RegisterMapDevice,), {"DEFAULT_ADDRESS": 0x03}) for i in range(0x03, 0x78)]
    full = fake_node_bus([*fillers, ThermoModel])
    assert len(full.devices) == 0x78 - 0x03
    assert not any(isinstance(m, ThermoModel) for m in full.devices.values())


def test_a_model_with_addresses_goes_on_the_next_spare_bus() -> None:
    class BoschLikeModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x77
        ADDRESSES = (0x76, 0x77)

    buses = fake_node_buses([BoschLikeModel] * 7)
    assert SPARE_BUSES == (SECOND_BUS, 4) and sorted(buses) == [1, 3, 4]
    assert all(sorted(buses[n].devices) == [0x76, 0x77] and buses[n].number == n for n in (1, 3, 4))  # 7th: left out
    assert buses[4].devices[0x76].address == 0x76  # built with address=


def test_a_model_with_addresses_keeps_to_them_and_goes_to_the_second_bus_when_they_are_taken() -> None:
    class FixedModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x40
        ADDRESSES = (0x40,)

    class OtherFixedModel(FixedModel):
        pass

    class PinsModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x40
        ADDRESSES = (0x40, 0x41)

    class FreeModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x40

    buses = fake_node_buses([FixedModel, FreeModel, PinsModel, OtherFixedModel])
    assert SECOND_BUS == 3 and set(buses) == {1, 3, 4}
    placed = {(n, a): type(m).__name__ for n, bus in buses.items() for a, m in bus.devices.items()}
    # FreeModel takes the next free address (0x41); PinsModel finds both of its own taken on bus 1;
    # OtherFixedModel finds 0x40 taken on buses 1 and 3 and goes on bus 4.
    assert placed == {(1, 0x40): "FixedModel", (1, 0x41): "FreeModel", (3, 0x40): "PinsModel",
                      (4, 0x40): "OtherFixedModel"}
    assert fake_node_bus([FixedModel]).devices.keys() == {0x40}
    assert set(fake_node_buses([FixedModel])) == {1}  # no second bus when nothing needs it


def test_a_model_with_no_free_address_on_any_bus_is_left_out() -> None:
    class FixedModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x40
        ADDRESSES = (0x40,)

    clones = [type(f"Clone{i}", (FixedModel,), {}) for i in range(4)]
    buses = fake_node_buses(clones)
    assert {n: [type(m).__name__ for m in bus.devices.values()] for n, bus in buses.items()} == \
        {1: ["Clone0"], 3: ["Clone1"], 4: ["Clone2"]}


def test_fake_bus_with_the_built_in_models() -> None:
    bus = fake_node_bus(built_in_models())
    assert isinstance(bus, FakeI2CBus)
    assert scan(bus) == sorted(bus.devices)  # every model answers the probe it gets


def test_detect_output_for_the_built_in_models_is_a_valid_config() -> None:
    from sensord.detect import scan
    from sensord.plugins import get_plugin_manager
    types = get_plugin_manager(entry_points=False).sensor_types
    bus = fake_node_bus(built_in_models())
    found = identify(bus, scan(bus), types.values(), sleep=lambda _s: None)
    text = "\n".join(toml_block(f, suggest_name(f)) for f in found)
    specs = parse_config(tomllib.loads(text), "detected.toml", types).sensors
    assert [s.type for s in specs] == [f.type_name for f in found if f.type_name is not None]
    assert {f.address for f in found} == set(bus.devices)


def test_a_model_whose_addresses_are_taken_goes_on_the_second_bus() -> None:
    from sensord.testing.fakenode import SECOND_BUS, fake_node_buses

    class PinnedModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x77
        ADDRESSES = (0x77, 0x76)

    class HolderModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x76

    class OtherHolderModel(RegisterMapDevice):
        DEFAULT_ADDRESS = 0x77

    # 0x77 free on bus 1: it stays there.
    assert set(fake_node_buses([PinnedModel])) == {1}
    # 0x77 taken, 0x76 free: the other address its chip can have, on bus 1.
    assert {a: type(m).__name__ for a, m in fake_node_buses([OtherHolderModel, PinnedModel])[1].devices.items()} \
        == {0x77: "OtherHolderModel", 0x76: "PinnedModel"}
    # Both taken: bus 3, not a wrapped address no config for the chip could name; then its other address there.
    buses = fake_node_buses([HolderModel, OtherHolderModel, PinnedModel, PinnedModel])
    assert sorted(buses) == [1, SECOND_BUS] and SECOND_BUS == 3
    assert sorted(buses[1].devices) == [0x76, 0x77]
    assert {a: type(m).__name__ for a, m in buses[SECOND_BUS].devices.items()} == {0x77: "PinnedModel",
                                                                                   0x76: "PinnedModel"}
    assert buses[SECOND_BUS].number == 3 and buses[SECOND_BUS].devices[0x76].address == 0x76


def test_the_built_in_bosch_models_share_three_buses() -> None:
    from sensord.testing.fakenode import fake_node_buses

    buses = fake_node_buses(built_in_models())
    names = {(n, a): type(m).__name__ for n, bus in buses.items() for a, m in bus.devices.items()}
    assert {k: v for k, v in names.items() if k[1] in (0x76, 0x77)} == {
        (1, 0x76): "BMP280Model", (1, 0x77): "BME280Model", (3, 0x77): "BME680Model", (3, 0x76): "BMP388Model",
        (4, 0x77): "BMP390Model"}
