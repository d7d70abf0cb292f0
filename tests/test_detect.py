"""`sensord.detect`: scanning like i2cdetect, identifying chips, printing `[[sensor]]` blocks."""

from __future__ import annotations

import errno
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from sensord import I2CConfig, I2CSensor, Reading, field_range
from sensord.config import parse_config
from sensord.detect import (
    BUSY_NOTE,
    Found,
    identify,
    scan,
    sensor_block,
    suggest_name,
    toml_block,
)
from sensord.testing import EREMOTEIO, FakeI2CBus, I2CDeviceModel, RegisterMapDevice

# -- two tiny chips and their drivers ---------------------------------------------------------


class ThermoChip(RegisterMapDevice):
    """Chip id 0xA1 in register 0x0F."""

    def __init__(self, chip_id: int = 0xA1) -> None:
        super().__init__(registers={0x0F: chip_id}, read_only=[0x0F])


class HygroChip(I2CDeviceModel):
    """A command chip: answers the 2-byte id command 0x36 0x82 with 0x5A; NACKs anything else."""

    def __init__(self) -> None:
        super().__init__()
        self.command = b""

    def write_raw(self, data: bytes) -> None:
        if data != b"\x36\x82":
            raise self.nack(f"unknown command {data.hex()}")
        self.command = data

    def read_raw(self, length: int) -> bytes:
        if not self.command:
            raise self.nack("no command")
        return bytes([0x5A] * length)


class Untouchable(I2CDeviceModel):
    """Fails the test if anything but the address phase reaches it."""

    def read_raw(self, length: int) -> bytes:
        raise AssertionError("a quick write reached the chip")

    def write_raw(self, data: bytes) -> None:
        raise AssertionError("a quick write reached the chip")


@dataclass(frozen=True)
class ThermoConfig(I2CConfig):
    address: int = field_range(0x48, ge=0x48, le=0x49)


class FakeThermo(I2CSensor):
    type_name = "fakethermo"
    Config = ThermoConfig
    i2c_addresses = (0x48, 0x49)

    def read(self) -> list[Reading]:
        return []

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = lambda _s: None) -> dict[str, Any] | None:
        if bus.read_byte_data(address, 0x0F) != 0xA1:
            return None
        return {"type": cls.type_name, "address": address}


@dataclass(frozen=True)
class HygroConfig(I2CConfig):
    address: int = field_range(0x44, ge=0x44, le=0x45)
    heater: bool = False
    label: str = ""
    offsets: list[float] = field_range([0.0, 0.0])


class FakeHygro(I2CSensor):
    type_name = "fakehygro"
    Config = HygroConfig
    i2c_addresses = (0x44, 0x45, 0x48)
    waits: ClassVar[list[float]] = []

    def read(self) -> list[Reading]:
        return []

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = lambda _s: None) -> dict[str, Any] | None:
        bus.write_byte_data(address, 0x36, 0x82)  # NACKed by other chips: OSError
        sleep(0.001)
        cls.waits.append(0.001)
        if bus.read_byte(address) != 0x5A:
            return None
        return {"type": cls.type_name, "address": address, "heater": True, "label": 'shed "north"',
                "offsets": [0.5, -1.25]}


TYPES = {"fakethermo": FakeThermo, "fakehygro": FakeHygro}


def no_sleep(_s: float) -> None:
    pass


# -- FakeI2CBus.write_quick --------------------------------------------------------------------


def test_write_quick_acks_a_present_chip_without_reaching_it() -> None:
    bus = FakeI2CBus({0x48: Untouchable()})
    bus.write_quick(0x48)
    assert bus.log[-1].op == "write_quick" and bus.log[-1].error is None and bus.log[-1].data == b""
    assert bus.writes(0x48) == [b""]  # an address byte and nothing else


def test_write_quick_nacks_an_empty_address_and_records_it() -> None:
    bus = FakeI2CBus()
    with pytest.raises(OSError) as info:
        bus.write_quick(0x50)
    assert info.value.errno == EREMOTEIO
    assert (bus.log[-1].op, bus.log[-1].addr, bus.log[-1].error) == ("write_quick", 0x50, EREMOTEIO)
    with pytest.raises(ValueError, match="out of range"):
        bus.write_quick(0x78)


def test_write_quick_obeys_fail_next() -> None:
    bus = FakeI2CBus({0x48: Untouchable()})
    bus.fail_next(0x48, errno=errno.EBUSY)
    with pytest.raises(OSError) as info:
        bus.write_quick(0x48)
    assert info.value.errno == errno.EBUSY
    bus.write_quick(0x48)


# -- scan ----------------------------------------------------------------------------------------


def test_scan_finds_chips_like_i2cdetect() -> None:
    bus = FakeI2CBus({0x23: Untouchable(), 0x50: RegisterMapDevice(), 0x77: Untouchable(), 0x03: Untouchable()})
    assert scan(bus) == [0x03, 0x23, 0x50, 0x77]
    ops = {t.addr: t.op for t in bus.log}
    assert len(ops) == 0x77 - 0x03 + 1  # every address probed once
    read_probed = sorted(a for a, op in ops.items() if op == "read_byte")
    assert read_probed == [*range(0x30, 0x38), *range(0x50, 0x60)]  # EEPROMs are never written
    assert all(op == "write_quick" for a, op in ops.items() if a not in read_probed)


def test_scan_range() -> None:
    bus = FakeI2CBus({0x48: Untouchable(), 0x76: Untouchable()})
    assert scan(bus, first=0x40, last=0x4F) == [0x48]
    assert {t.addr for t in bus.log} == set(range(0x40, 0x50))
    with pytest.raises(ValueError, match="scan range"):
        scan(bus, first=0x00)
    with pytest.raises(ValueError, match="scan range"):
        scan(bus, first=0x50, last=0x40)


def test_scan_lists_addresses_held_by_a_kernel_driver() -> None:
    bus = FakeI2CBus()
    bus.fail_next(0x68, errno=errno.EBUSY)  # smbus2 without force: the RTC driver owns 0x68
    bus.fail_next(0x20, errno=errno.ETIMEDOUT)  # any other error: nobody there, as in i2cdetect
    assert scan(bus) == [0x68]


# -- identify ------------------------------------------------------------------------------------


def test_identify_names_known_chips_and_leaves_others_unknown() -> None:
    bus = FakeI2CBus({0x44: HygroChip(), 0x48: ThermoChip(), 0x49: ThermoChip(chip_id=0x00),
                      0x50: RegisterMapDevice()})
    found = identify(bus, scan(bus), [FakeThermo, FakeHygro], sleep=no_sleep)
    assert found == [
        Found(0x44, "fakehygro", {"type": "fakehygro", "address": 0x44, "heater": True,
                                  "label": 'shed "north"', "offsets": [0.5, -1.25]}),
        Found(0x48, "fakethermo", {"type": "fakethermo", "address": 0x48}),  # FakeHygro was NACKed
        Found(0x49, None, candidates=("fakethermo",)),  # the right address, the wrong id
        Found(0x50, None),  # no type uses 0x50
    ]


def test_identify_passes_sleep_to_the_probes() -> None:
    bus = FakeI2CBus({0x45: HygroChip()})
    waits: list[float] = []
    FakeHygro.waits.clear()
    identify(bus, [0x45], [FakeHygro], sleep=waits.append)
    assert waits == FakeHygro.waits == [0.001]


def test_identify_reports_lookalikes() -> None:
    class Clone(FakeThermo):
        type_name = "clone"

        @classmethod
        def identify(cls, bus: Any, address: int, *,
                     sleep: Callable[[float], None] = no_sleep) -> dict[str, Any] | None:
            return {"type": cls.type_name, "address": address}

    bus = FakeI2CBus({0x48: ThermoChip()})
    (found,) = identify(bus, [0x48], [FakeThermo, Clone], sleep=no_sleep)
    assert (found.type_name, found.also) == ("fakethermo", ("clone",))
    assert toml_block(found, "t").startswith("## 0x48 also looks like: clone (check the marking on the chip)\n")


def test_identify_marks_busy_addresses_without_probing_them() -> None:
    bus = FakeI2CBus({0x48: ThermoChip()})
    bus.fail_next(0x48, count=2, errno=errno.EBUSY)  # for scan() and identify()
    (found,) = identify(bus, scan(bus), [FakeThermo], sleep=no_sleep)
    assert found == Found(0x48, None, note=BUSY_NOTE)
    assert toml_block(found, "x") == "# 0x48: in use by a kernel driver (i2cdetect shows UU); sensord cannot use it\n"
    assert not [t for t in bus.log if t.op == "read_byte_data"]


def test_a_bug_in_a_probe_is_not_hidden() -> None:
    class Broken(FakeThermo):
        @classmethod
        def identify(cls, bus: Any, address: int, *,
                     sleep: Callable[[float], None] = no_sleep) -> dict[str, Any] | None:
            raise KeyError("oops")

    with pytest.raises(KeyError):
        identify(FakeI2CBus({0x48: ThermoChip()}), [0x48], [Broken], sleep=no_sleep)


# -- printing ------------------------------------------------------------------------------------


def test_toml_block_is_ready_to_paste() -> None:
    found = Found(0x44, "fakehygro", {"type": "fakehygro", "address": 0x44, "heater": True,
                                      "label": 'shed "north"', "offsets": [0.5, -1.25]})
    block = toml_block(found, suggest_name(found), bus=3)
    assert block == textwrap.dedent('''\
        [[sensor]]
        name = "fakehygro_44"
        type = "fakehygro"
        interval_s = 60
        bus = 3
        address = 0x44
        heater = true
        label = "shed \\"north\\""
        offsets = [0.5, -1.25]
        ''')
    config = parse_config(tomllib.loads(block), "pasted.toml", TYPES)
    (spec,) = config.sensors
    assert spec.options == HygroConfig(bus=3, address=0x44, heater=True, label='shed "north"', offsets=[0.5, -1.25])
    assert spec.interval_s == 60


def test_toml_blocks_for_a_whole_bus_parse_as_one_config() -> None:
    bus = FakeI2CBus({0x44: HygroChip(), 0x49: ThermoChip(), 0x50: RegisterMapDevice(), 0x48: ThermoChip(0)})
    found = identify(bus, scan(bus), TYPES.values(), sleep=no_sleep)
    text = "\n".join(toml_block(f, suggest_name(f)) for f in found)
    assert "# 0x50: unknown chip\n" in text
    assert "# 0x48: unknown chip; sensor types that use this address: fakehygro, fakethermo" in text
    specs = parse_config(tomllib.loads(text), "detected.toml", TYPES).sensors
    assert [(s.name, s.type, s.options.address) for s in specs] == [  # type: ignore[attr-defined]
        ("fakehygro_44", "fakehygro", 0x44), ("fakethermo_49", "fakethermo", 0x49)]


def test_toml_block_without_keys_uses_the_found_address() -> None:
    block = toml_block(Found(0x49, "fakethermo"), "t", interval_s=10)
    assert "address = 0x49\n" in block and "interval_s = 10\n" in block
    assert tomllib.loads(block)["sensor"][0]["address"] == 0x49


def test_sensor_block_for_other_buses() -> None:
    block = sensor_block("boiler", "ds18b20", {"device": "28-00000a1b2c3d", "weird key": 1.5})
    assert tomllib.loads(block) == {"sensor": [{"name": "boiler", "type": "ds18b20", "interval_s": 60,
                                                "device": "28-00000a1b2c3d", "weird key": 1.5}]}
    with pytest.raises(ValueError, match="nan"):
        sensor_block("x", "y", {"k": float("nan")})
    with pytest.raises(TypeError, match="cannot write dict"):
        sensor_block("x", "y", {"k": {}})
