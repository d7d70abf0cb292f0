"""The `mcp3008` and `mcp3208` drivers: input names and the datasheets' transfer function, the
SPI frame of Figure 6-1 / 5-1 bit by bit on the fake chip, and the whole driver through
gpiozero's MCP3008 / MCP3208 classes and software SPI on mock pins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from driver_kit import example_config
from gpiozero.pins.mock import MockFactory

import sensord_plugins.mcp3008 as mcp3008
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.testing.models.mcp3008 import CE, MISO, MOSI, SCLK, MCP3008Model, MCP3208Model
from sensord_plugins.mcp3008 import MCP3008, MCP3208, MCP3008Config, input_code, quantity_name, volts

Models = list[MCP3008Model | MCP3208Model]


@pytest.fixture
def models() -> Iterator[Models]:
    made: Models = []
    yield made
    for model in made:
        model.close()


def opened(cls: type[MCP3008], factory: MockFactory, **options: object) -> MCP3008:
    sensor = cls(cls.Config(**options), name="soil", hardware=Hardware(pin_factory=factory))
    sensor.open()
    return sensor


@pytest.fixture
def sensors() -> Iterator[list[MCP3008]]:
    """Drivers to close after the test: gpiozero keeps a shared SPI interface per set of pins."""
    made: list[MCP3008] = []
    yield made
    for sensor in made:
        sensor.close()


def values(sensor: MCP3008) -> dict[str, float]:
    readings = sensor.read()
    assert {r.unit for r in readings} == {"V"}
    return {r.quantity: float(r.value) for r in readings}


def clock_frame(factory: MockFactory, din: str, *, chip_select: int = 0) -> str:
    """Clock `din` ("0"/"1" per bit) into the chip on CE`chip_select` in SPI mode 0, as a master
    does by hand, and return what DOUT gave at each rising edge."""
    clock, mosi, miso, select = (factory.pin(n) for n in (SCLK, MOSI, MISO, CE[chip_select]))
    for pin in (clock, mosi, *(factory.pin(n) for n in CE.values())):
        pin.function = "output"  # the mock SPI pins react to what an output sets
    for number in CE.values():
        factory.pin(number).state = True  # both chip selects idle high, as the master keeps them
    select.state = False
    out = []
    for bit in din:
        mosi.state = bit == "1"
        clock.state = True
        out.append("1" if miso.state else "0")
        clock.state = False
    select.state = True
    return "".join(out)


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "code"), [
    ("ch0", (True, 0)), ("ch7", (True, 7)), ("ch0-ch1", (False, 0b000)), ("ch1-ch0", (False, 0b001)),
    ("ch2-ch3", (False, 0b010)), ("ch3-ch2", (False, 0b011)), ("ch6-ch7", (False, 0b110)),
    ("ch7-ch6", (False, 0b111)), ("ch0-ch2", None), ("ch1-ch2", None), ("ch0-ch0", None), ("ch8", None),
    ("a0", None), ("ch0-", None),
])
def test_input_codes_follow_table_5_2(name: str, code: tuple[bool, int] | None) -> None:
    assert input_code(name) == code


def test_quantity_names() -> None:
    assert quantity_name("ch0") == "voltage_ch0" and quantity_name("ch1-ch0") == "voltage_ch1_ch0"


@pytest.mark.parametrize(("code", "bits", "vref", "expected"), [
    (0, 10, 3.3, 0.0), (512, 10, 3.3, 1.65), (1023, 10, 3.3, 3.2967773), (1023, 10, 5.0, 4.9951172),
    (2048, 12, 3.3, 1.65), (4095, 12, 4.096, 4.095), (1, 12, 4.096, 0.001),
])
def test_equation_4_2(code: int, bits: int, vref: float, expected: float) -> None:
    assert volts(code, bits=bits, vref_v=vref) == pytest.approx(expected)


# -- the SPI frame, bit by bit (Figure 6-1, Figure 5-1) ----------------------------------------


def test_mcp3008_frame(mock_pin_factory: MockFactory, models: Models) -> None:
    models.append(MCP3008Model(mock_pin_factory, volts=[0.0, 0.0, 0.0, 0.0, 0.0, 2.0625]))  # 640 = 0b1010000000
    # Leading zeros, start, SGL=1, D2..D0 = 101, then 1 sample clock, the null bit, B9..B0, B1..B9.
    dout = clock_frame(mock_pin_factory, "00" + "1" + "1101" + "0" * 21)
    assert dout[7] == "0"  # the sample clock: DOUT not yet driven
    assert dout[8] == "0"  # the null bit
    assert dout[9:19] == "1010000000"  # B9..B0
    assert dout[19:28] == "000000101"  # B1..B9, LSB first
    assert models[0].commands == [(True, 5)]


def test_mcp3208_frame(mock_pin_factory: MockFactory, models: Models) -> None:
    models.append(MCP3208Model(mock_pin_factory, chip_select=1, volts=[3.0, 0.3], vref_v=3.3))
    # Differential CH0-CH1: 2.7 V -> floor(4096 × 2.7 / 3.3) = 3351 = 0b110100010111.
    dout = clock_frame(mock_pin_factory, "1" + "0000" + "0" * 14, chip_select=1)
    assert dout[6:] == "0" + "110100010111"
    assert models[0].commands == [(False, 0)]


def test_frame_on_the_other_chip_select_is_ignored(mock_pin_factory: MockFactory, models: Models) -> None:
    models.append(MCP3008Model(mock_pin_factory, volts=[3.3] * 8))
    assert clock_frame(mock_pin_factory, "11000" + "0" * 12, chip_select=1) == "0" * 17
    assert models[0].conversions == 0


def test_raising_cs_aborts_the_frame(mock_pin_factory: MockFactory, models: Models) -> None:
    models.append(MCP3008Model(mock_pin_factory, volts=[3.3] * 8))
    clock_frame(mock_pin_factory, "11")  # start and SGL, then CS goes high
    assert clock_frame(mock_pin_factory, "0000")  == "0000"  # a new frame waits for a start bit
    assert models[0].conversions == 0


def test_pseudo_differential_below_zero_is_code_0(mock_pin_factory: MockFactory, models: Models) -> None:
    model = MCP3008Model(mock_pin_factory, volts=[1.0, 2.0])
    models.append(model)
    assert model.code(False, 0b000) == 0  # CH0 - CH1 = -1 V
    assert model.code(False, 0b001) == int(1024 * 1.0 / 3.3)  # CH1 - CH0
    assert model.code(True, 0) == 310 and model.code(True, 7) == 0


# -- the driver through gpiozero ---------------------------------------------------------------


def test_single_ended_inputs(mock_pin_factory: MockFactory, models: Models, sensors: list[MCP3008]) -> None:
    models.append(MCP3008Model(mock_pin_factory, volts=[0.0, 1.0, 1.65, 3.29]))
    sensors.append(sensor := opened(MCP3008, mock_pin_factory, channels=["ch0", "ch1", "ch2", "ch3"]))
    lsb = 3.3 / 1024
    assert values(sensor) == {"voltage_ch0": 0.0, "voltage_ch1": pytest.approx(1.0, abs=lsb),
                              "voltage_ch2": pytest.approx(1.65), "voltage_ch3": pytest.approx(3.29, abs=lsb)}
    assert models[0].commands == [(True, 0), (True, 1), (True, 2), (True, 3)]


def test_differential_pairs(mock_pin_factory: MockFactory, models: Models, sensors: list[MCP3008]) -> None:
    models.append(MCP3208Model(mock_pin_factory, volts=[1.0, 2.5, 0.0, 0.0, 0.0, 0.0, 3.0, 1.0], vref_v=4.096))
    sensors.append(sensor := opened(MCP3208, mock_pin_factory, channels=["ch0-ch1", "ch1-ch0", "ch6-ch7"],
                                    vref_v=4.096))
    assert values(sensor) == {"voltage_ch0_ch1": 0.0, "voltage_ch1_ch0": pytest.approx(1.5, abs=0.001),
                              "voltage_ch6_ch7": pytest.approx(2.0, abs=0.001)}
    assert models[0].commands == [(False, 0b000), (False, 0b001), (False, 0b110)]


def test_vref_sets_the_scale(mock_pin_factory: MockFactory, models: Models, sensors: list[MCP3008]) -> None:
    models.append(MCP3008Model(mock_pin_factory, volts=[2.5], vref_v=5.0))
    sensors.append(sensor := opened(MCP3008, mock_pin_factory, vref_v=5.0))
    assert values(sensor) == {"voltage_ch0": pytest.approx(2.5)}
    (channel,) = sensor.channels()
    assert (channel.quantity, channel.unit, channel.resolution) == ("voltage_ch0", "V", pytest.approx(5.0 / 1024))


def test_two_chips_on_ce0_and_ce1(mock_pin_factory: MockFactory, models: Models, sensors: list[MCP3008]) -> None:
    models.append(MCP3008Model(mock_pin_factory, chip_select=0, volts=[1.0]))
    models.append(MCP3208Model(mock_pin_factory, chip_select=1, volts=[2.0]))
    sensors.append(low := opened(MCP3008, mock_pin_factory, chip_select=0))
    sensors.append(high := opened(MCP3208, mock_pin_factory, chip_select=1))
    assert values(low) == {"voltage_ch0": pytest.approx(1.0, abs=3.3 / 1024)}
    assert values(high) == {"voltage_ch0": pytest.approx(2.0, abs=3.3 / 4096)}
    assert (models[0].conversions, models[1].conversions) == (1, 1)


def test_values_follow_the_inputs(mock_pin_factory: MockFactory, models: Models, sensors: list[MCP3008]) -> None:
    model = MCP3208Model(mock_pin_factory, volts=[0.5])
    models.append(model)
    sensors.append(sensor := opened(MCP3208, mock_pin_factory))
    assert values(sensor)["voltage_ch0"] == pytest.approx(0.5, abs=0.001)
    model.volts[0] = 3.0
    assert values(sensor)["voltage_ch0"] == pytest.approx(3.0, abs=0.001)


def test_dout_stuck_high_is_an_error(mock_pin_factory: MockFactory, models: Models,
                                     sensors: list[MCP3008]) -> None:
    models.append(MCP3008Model(mock_pin_factory, stuck_high=True))
    sensors.append(sensor := opened(MCP3008, mock_pin_factory, channels=["ch3"]))
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "soil" (mcp3008 on SPI0 CE0): ch3: DOUT high in the null bit before the '
                                  'result: no MCP3008 answering (is DOUT wired to MISO, GPIO9, and CS to CE0?)')


def test_no_chip_reads_zero(mock_pin_factory: MockFactory, sensors: list[MCP3008]) -> None:
    # GPIO9's pull-down: an unplugged chip cannot be told from a grounded input.
    sensors.append(sensor := opened(MCP3008, mock_pin_factory))
    assert values(sensor) == {"voltage_ch0": 0.0}


def test_close_releases_the_pins(mock_pin_factory: MockFactory, models: Models) -> None:
    models.append(MCP3008Model(mock_pin_factory, volts=[1.5]))
    sensor = opened(MCP3008, mock_pin_factory)
    sensor.close()
    with pytest.raises(SensorError, match=r'^sensor "soil" \(mcp3008 on SPI0 CE0\): read before open$'):
        sensor.read()
    again = opened(MCP3008, mock_pin_factory)
    try:
        assert values(again)["voltage_ch0"] == pytest.approx(1.5, abs=3.3 / 1024)
    finally:
        again.close()


def test_the_global_pin_factory_is_left_as_it_was(mock_pin_factory: MockFactory, models: Models,
                                                  sensors: list[MCP3008]) -> None:
    from gpiozero import Device

    before = Device.pin_factory
    models.append(MCP3008Model(mock_pin_factory))
    sensors.append(opened(MCP3008, mock_pin_factory))
    assert Device.pin_factory is before


# -- config and registration -----------------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(MCP3008Config, {}, "sensor[0]", "f.toml")
    assert (cfg.channels, cfg.vref_v, cfg.chip_select) == (["ch0"], 3.3, 0)


@pytest.mark.parametrize(("table", "message"), [
    ({"channels": []}, "f.toml: sensor[0].channels: expected at least one input, found []"),
    ({"channels": ["ch0-ch2"]}, 'f.toml: sensor[0].channels: expected "ch0" to "ch7" or a pair "ch0-ch1", "ch1-ch0", '
                                '"ch2-ch3", ... "ch7-ch6", found "ch0-ch2"'),
    ({"channels": ["ch1", "ch1"]}, 'f.toml: sensor[0].channels: expected each input once, found "ch1" more than once'),
    ({"chip_select": 2}, "f.toml: sensor[0].chip_select: expected one of 0, 1, found 2"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(MCP3008Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_vref_range() -> None:
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.vref_v"):
        build_options(MCP3008Config, {"vref_v": 6.0}, "sensor[0]", "f.toml")
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.vref_v"):
        build_options(MCP3008Config, {"vref_v": 0.1}, "sensor[0]", "f.toml")


def test_docstring_example_parses() -> None:
    (spec,) = example_config(mcp3008, MCP3008, MCP3208).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("soil", "mcp3008", 60)
    assert spec.options == MCP3008Config(channels=["ch0", "ch1", "ch2-ch3"], vref_v=3.3)


def test_hookimpl_registers_both_types() -> None:
    assert mcp3008.sensord_register_sensors() == [MCP3008, MCP3208]
    assert (MCP3008.bits, MCP3208.bits) == (10, 12)
