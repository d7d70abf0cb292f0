"""The `bh1750` driver: datasheet conversions, modes and MTreg, and the whole driver on a fake
BH1750."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.bh1750 as bh1750
from sensord import ConfigError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.bh1750 import BH1750Model
from sensord_plugins.bh1750 import BH1750, BH1750Config, illuminance_lux, measurement_time_s, mtreg_opcodes


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> BH1750:
    return on_bus(BH1750, bus, clock, name="window", **options)


def rig(chip: BH1750Model, clock: FakeClock, **options: object) -> tuple[BH1750, FakeI2CBus]:
    return opened(BH1750, chip, clock, name="window", **options)


def lux(sensor: BH1750) -> float:
    (reading,) = sensor.read()
    assert (reading.quantity, reading.unit) == ("illuminance", "lx")
    return float(reading.value)


# -- pure functions ---------------------------------------------------------------------------


def test_datasheet_example() -> None:
    # "Measurement sequence example": high byte 1000_0011, low byte 1001_0000 -> 28067 lx.
    assert illuminance_lux(0b1000_0011_1001_0000) == pytest.approx(28067, abs=0.5)


def test_mode_and_mtreg_scale_the_count() -> None:
    assert illuminance_lux(120) == pytest.approx(100.0)
    assert illuminance_lux(120, mode="low") == pytest.approx(100.0)
    assert illuminance_lux(120, mode="high2") == pytest.approx(50.0)
    assert illuminance_lux(120, mtreg=138) == pytest.approx(50.0)  # twice the sensitivity
    assert illuminance_lux(0xFFFF, mtreg=31) == pytest.approx(121557, abs=0.5)  # the widest range


def test_measurement_time_scales_with_mtreg() -> None:
    assert measurement_time_s("high", 69) == pytest.approx(0.180)
    assert measurement_time_s("high2", 254) == pytest.approx(0.180 * 254 / 69)
    assert measurement_time_s("low", 31) == pytest.approx(0.024 * 31 / 69)


@pytest.mark.parametrize(("mtreg", "opcodes"), [(69, (0x42, 0x65)), (31, (0x40, 0x7F)), (254, (0x47, 0x7E))])
def test_mtreg_opcodes(mtreg: int, opcodes: tuple[int, int]) -> None:
    assert mtreg_opcodes(mtreg) == opcodes


def test_mtreg_opcodes_range() -> None:
    with pytest.raises(ValueError, match="mtreg 30 out of range 31..254"):
        mtreg_opcodes(30)


# -- the driver on a fake chip ----------------------------------------------------------------


def test_reads_illuminance(clock: FakeClock) -> None:
    sensor, bus = rig(BH1750Model(lux=321.0, clock=clock.monotonic), clock)
    assert lux(sensor) == pytest.approx(321.0, abs=1 / 1.2)
    # Power down at open; then power on, one-time high-resolution, and a two-byte read.
    assert bus.writes(0x23) == [b"\x00", b"\x01", b"\x20"]
    assert [len(t.data) for t in bus.log if t.op == "i2c_rdwr:read"] == [2]


def test_byte_order_is_high_byte_first(clock: FakeClock) -> None:
    sensor, bus = rig(BH1750Model(lux=0x0102 / 1.2), clock)
    assert lux(sensor) == pytest.approx(0x0102 / 1.2)
    assert bus.log[-1].data == b"\x01\x02"


def test_waits_the_maximum_measurement_time(clock: FakeClock) -> None:
    model = BH1750Model(lux=500.0, clock=clock.monotonic)
    sensor, _ = rig(model, clock)
    start = clock.now
    # The model keeps its old data (0) until its 120 ms measurement ends: a driver that read
    # too early would see 0 lx.
    assert lux(sensor) == pytest.approx(500.0, abs=1)
    assert clock.now - start == pytest.approx(0.180)
    assert not model.powered  # a one-time measurement powers the chip down


@pytest.mark.parametrize(("mode", "opcode"), [("high", 0x20), ("high2", 0x21), ("low", 0x23)])
def test_modes(clock: FakeClock, mode: str, opcode: int) -> None:
    model = BH1750Model(lux=1000.0, clock=clock.monotonic)
    sensor, bus = rig(model, clock, mode=mode)
    assert lux(sensor) == pytest.approx(1000.0, abs=1)
    assert bus.writes(0x23)[-1] == bytes([opcode])
    assert model.measurements == [(mode, True, 69)]


def test_mtreg_is_sent_before_every_measurement(clock: FakeClock) -> None:
    model = BH1750Model(lux=10.0, clock=clock.monotonic)
    sensor, bus = rig(model, clock, mtreg=254, mode="high2")
    start = clock.now
    assert lux(sensor) == pytest.approx(10.0, abs=0.2)
    assert clock.now - start == pytest.approx(0.180 * 254 / 69)
    model.mtreg = 69  # a brown-out
    assert lux(sensor) == pytest.approx(10.0, abs=0.2)
    assert bus.writes(0x23)[-4:] == [b"\x01", b"\x47", b"\x7e", b"\x21"]
    assert [m[2] for m in model.measurements] == [254, 254]


def test_saturation_reports_the_top_of_the_range(clock: FakeClock) -> None:
    sensor, _ = rig(BH1750Model(lux=100_000.0), clock)
    assert lux(sensor) == pytest.approx(0xFFFF / 1.2)


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(BH1750Model(lux=42.0), clock)
    bus.fail_next(0x23)
    assert lux(sensor) == pytest.approx(42.0, abs=1)
    assert [t.error for t in bus.log].count(121) == 1






def test_high_address(clock: FakeClock) -> None:
    sensor, bus = rig(BH1750Model(address=0x5C, lux=7.0), clock, address=0x5C)
    assert lux(sensor) == pytest.approx(7.0, abs=1)
    assert sensor.describe() == 'sensor "window" (bh1750 @ 0x5c on bus 1)'


@pytest.mark.parametrize(("options", "resolution"), [({}, 1 / 1.2), ({"mode": "high2"}, 0.5 / 1.2),
                                                     ({"mode": "low"}, 4 / 1.2),
                                                     ({"mtreg": 138}, 0.5 / 1.2)])
def test_channel_resolution(clock: FakeClock, options: dict[str, object], resolution: float) -> None:
    (channel,) = make(FakeI2CBus(), clock, **options).channels()
    assert (channel.quantity, channel.unit) == ("illuminance", "lx")
    assert channel.resolution == pytest.approx(resolution)


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(BH1750Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.mode, cfg.mtreg) == (1, 0x23, "high", 69)


@pytest.mark.parametrize(("table", "message"), [
    ({"mtreg": 30}, "f.toml: sensor[0].mtreg: expected an integer >= 31 and <= 254, found 30"),
    ({"mtreg": 255}, "f.toml: sensor[0].mtreg: expected an integer >= 31 and <= 254, found 255"),
    ({"mode": "medium"}, 'f.toml: sensor[0].mode: expected one of "high", "high2", "low", found "medium"'),
    ({"address": 0x30}, "f.toml: sensor[0].address: expected 0x23 (ADDR low) or 0x5c (ADDR high), found 0x30"),
    ({"address": 0x77}, "f.toml: sensor[0].address: expected an address from 0x23 to 0x5c, found 0x77"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(BH1750Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(bh1750, BH1750).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("window", "bh1750", 60)
    assert spec.options == BH1750Config(address=0x23)


def test_identify_is_never_sure() -> None:
    bus = FakeI2CBus([BH1750Model()])
    assert BH1750.identify(bus, 0x23) is None
    assert bus.log == []  # not even a read


def test_hookimpl_registers_the_sensor() -> None:
    assert bh1750.sensord_register_sensors() == [BH1750]
    assert BH1750.i2c_addresses == (0x23, 0x5C) and BH1750Model.DEFAULT_ADDRESS == 0x23
