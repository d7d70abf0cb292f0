"""The `sgp40` driver against the datasheet and a fake SGP40, with and without Sensirion's gas
index algorithm (`sensirion-gas-index-algorithm`, which the test extra installs)."""

from __future__ import annotations

import errno
import importlib.metadata
import sys
from typing import Any

import pytest
from driver_kit import example_config

from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.i2c import command_bytes, read_bytes, words_with_crc
from sensord.testing.i2c import FakeI2CBus, RegisterMapDevice
from sensord.testing.models.sgp40 import SGP40Model
from sensord_plugins import sgp40 as plugin
from sensord_plugins.sgp40 import (
    SGP40,
    SGP40Config,
    humidity_ticks,
    serial_number,
    temperature_ticks,
    voc_algorithm_class,
)


class Rig:
    """A driver on a fake bus; its sleeps move the model's fake time and are recorded."""

    def __init__(self, model: SGP40Model, **options: Any) -> None:
        self.model = model
        self.bus = FakeI2CBus([model])
        self.sleeps: list[float] = []
        hardware = Hardware(i2c_factory=lambda n: self.bus, sleep=self.sleep)
        self.sensor = SGP40(SGP40Config(**options), name="living_voc", hardware=hardware)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.model.advance(seconds)


def values(rig: Rig) -> dict[str, float]:
    return {r.quantity: r.value for r in rig.sensor.read()}


@pytest.fixture
def no_voc_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sensirion's package as if not installed: a None in sys.modules makes its import fail."""
    for name in ("sensirion_gas_index_algorithm", "sensirion_gas_index_algorithm.voc_algorithm"):
        monkeypatch.setitem(sys.modules, name, None)


# -- datasheet values and pure functions ------------------------------------------------------

def test_measure_raw_without_compensation_of_table_9() -> None:
    assert command_bytes(0x260F, 0x8000, 0x6666) == [0x26, 0x0F, 0x80, 0x00, 0xA2, 0x66, 0x66, 0x93]


@pytest.mark.parametrize(("humidity", "temperature", "rh_ticks", "t_ticks", "rh_crc", "t_crc"), [
    (50, 25, 0x8000, 0x6666, 0xA2, 0x93),  # the defaults
    (0, -45, 0x0000, 0x0000, 0x81, 0x81),  # the minimum
    (100, 130, 0xFFFF, 0xFFFF, 0xAC, 0xAC),  # the maximum
])
def test_conversion_into_ticks_of_table_10(humidity: float, temperature: float, rh_ticks: int, t_ticks: int,
                                           rh_crc: int, t_crc: int) -> None:
    assert (humidity_ticks(humidity), temperature_ticks(temperature)) == (rh_ticks, t_ticks)
    assert command_bytes(0x260F, rh_ticks, t_ticks)[2:] == [rh_ticks >> 8, rh_ticks & 0xFF, rh_crc,
                                                            t_ticks >> 8, t_ticks & 0xFF, t_crc]


def test_self_test_answer_of_table_13() -> None:
    assert words_with_crc(bytes([0xD4, 0x00, command_bytes(0, 0xD400)[4]]), "self-test") == [0xD400]


def test_serial_number() -> None:
    assert serial_number([0x0000, 0x0123, 0x4567]) == 0x0000_0123_4567
    assert serial_number([0xFFFF, 0x0000, 0x0001]) == 0xFFFF_0000_0001


# -- the driver on the fake sensor: raw signal -----------------------------------------------

def test_open_then_read_raw_without_compensation(no_voc_package: None) -> None:
    rig = Rig(SGP40Model(sraw=29817))
    rig.sensor.open()
    assert rig.model.commands == ["get_serial_number", "self_test"]
    assert rig.sensor.serial_number == 0x0000_0123_4567
    assert rig.sleeps == [0.001, 0.32]
    assert rig.sensor.read()[0].quantity == "voc_raw"
    assert values(rig) == {"voc_raw": 29817}
    assert (rig.model.humidity_ticks, rig.model.temperature_ticks) == (0x8000, 0x6666)  # compensation off
    assert rig.sleeps[-1] == 0.030
    assert rig.model.heater_on
    assert [(c.quantity, c.unit) for c in rig.sensor.channels()] == [("voc_raw", "")]


def test_fixed_humidity_and_temperature_compensate(no_voc_package: None) -> None:
    rig = Rig(SGP40Model(), humidity_pct=45.0, temperature_c=21.0)
    rig.sensor.open()
    values(rig)
    assert rig.model.humidity_ticks == round(45 * 65535 / 100) == 0x7333
    assert rig.model.temperature_ticks == round(66 * 65535 / 175) == 0x608C


def test_self_test_can_be_skipped(no_voc_package: None) -> None:
    rig = Rig(SGP40Model(), self_test=False)
    rig.sensor.open()
    assert rig.model.commands == ["get_serial_number"]


@pytest.mark.parametrize(("result", "verdict"), [(0x4B00, "one or more tests failed"), (0x1234, "an unknown result")])
def test_failed_self_test_fails_open(result: int, verdict: str) -> None:
    rig = Rig(SGP40Model(self_test_result=result))
    with pytest.raises(SensorError, match=rf'^sensor "living_voc" \(sgp40 @ 0x59 on bus 1\): self-test answered '
                                          rf"0x{result:04x} \({verdict}\), expected 0xd400: hotplate or sensing "
                                          r"layer damaged$"):
        rig.sensor.open()


def test_bad_crc_is_an_error(no_voc_package: None) -> None:
    rig = Rig(SGP40Model())
    rig.sensor.open()
    rig.model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r"\(sgp40 @ 0x59 on bus 1\): raw signal: CRC mismatch in word 0"):
        rig.sensor.read()
    assert values(rig) == {"voc_raw": 30000}


def test_bad_crc_in_the_serial_number_fails_open() -> None:
    rig = Rig(SGP40Model())
    rig.model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r"serial number: CRC mismatch in word 0"):
        rig.sensor.open()


def test_without_the_wait_the_sensor_nacks() -> None:
    model = SGP40Model(sraw=31000)
    bus = FakeI2CBus([model])
    bus.write_i2c_block_data(0x59, 0x26, command_bytes(0x260F, 0x8000, 0x6666)[1:])
    with pytest.raises(OSError) as info:
        read_bytes(bus, 0x59, 3)  # within the 30 ms
    assert info.value.errno == errno.EREMOTEIO
    model.advance(0.030)
    assert words_with_crc(read_bytes(bus, 0x59, 3), "raw signal") == [31000]  # the answer waited


def test_a_nack_is_retried_and_persistent_nacks_name_the_chip(no_voc_package: None) -> None:
    rig = Rig(SGP40Model())
    rig.sensor.open()
    rig.bus.fail_next(0x59)
    assert values(rig) == {"voc_raw": 30000}
    rig.bus.fail_next(0x59, count=3)
    with pytest.raises(SensorError, match=r'^sensor "living_voc" \(sgp40 @ 0x59 on bus 1\): no answer \(NACK\)'):
        rig.sensor.read()


def test_no_sensor_fails_open() -> None:
    rig = Rig(SGP40Model(address=0x58))
    with pytest.raises(SensorError, match=r"sgp40 @ 0x59 on bus 1\): no answer \(NACK\)"):
        rig.sensor.open()


def test_close_switches_the_hotplate_off(no_voc_package: None) -> None:
    rig = Rig(SGP40Model())
    rig.sensor.open()
    values(rig)
    rig.sensor.close()
    assert not rig.model.heater_on
    assert rig.model.commands[-1] == "heater_off"


# -- the VOC index ----------------------------------------------------------------------------

def test_without_the_package_there_is_no_voc_index(no_voc_package: None) -> None:
    assert voc_algorithm_class() is None
    rig = Rig(SGP40Model())
    rig.sensor.open()
    assert all(set(values(rig)) == {"voc_raw"} for _ in range(60))


def test_voc_index_true_without_the_package_fails_open(no_voc_package: None) -> None:
    rig = Rig(SGP40Model(), voc_index=True)
    assert [c.quantity for c in rig.sensor.channels()] == ["voc_raw", "voc_index"]
    with pytest.raises(SensorError, match=r"\): voc_index = true needs Sensirion's gas index algorithm: pip install "
                                          r"'sensord\[voc\]' \(the package sensirion-gas-index-algorithm\), or set "
                                          r"voc_index = false for the raw signal only$"):
        rig.sensor.open()


def test_the_real_package_is_installed_and_bsd_licensed() -> None:
    """The test extra installs it; failing here, rather than skipping, says the environment lacks it."""
    assert voc_algorithm_class() is not None, "pip install -e '.[test]' installs sensirion-gas-index-algorithm"
    meta = importlib.metadata.metadata("sensirion-gas-index-algorithm")
    assert meta["License"] == "BSD" or "License :: OSI Approved :: BSD License" in meta.get_all("Classifier", [])


def test_voc_index_from_the_real_algorithm() -> None:
    # Clean air for the learning phase, then a VOC event: SRAW falls as the resistance drops.
    rig = Rig(SGP40Model(sraw=[30000] * 100 + [26000] * 5))
    rig.sensor.open()
    assert [c.quantity for c in rig.sensor.channels()] == ["voc_raw", "voc_index"]
    got = [values(rig) for _ in range(105)]
    assert all(set(g) == {"voc_raw"} for g in got[:45])  # the algorithm's first 45 samples give no index
    assert all(1 <= g["voc_index"] <= 500 for g in got[60:])
    assert got[104]["voc_index"] > got[99]["voc_index"] + 50  # and a drop in SRAW raises the index
    assert isinstance(got[104]["voc_index"], int)


def test_voc_index_false_leaves_the_algorithm_out() -> None:
    rig = Rig(SGP40Model(), voc_index=False)
    rig.sensor.open()
    assert [c.quantity for c in rig.sensor.channels()] == ["voc_raw"]
    assert all(set(values(rig)) == {"voc_raw"} for _ in range(60))


def test_voc_sampling_interval_reaches_the_algorithm() -> None:
    rig = Rig(SGP40Model(), voc_sampling_s=10.0)
    rig.sensor.open()
    assert rig.sensor._voc.get_sampling_interval() == 10.0
    got = [values(rig) for _ in range(10)]
    assert "voc_index" in got[-1]  # at 10 s per sample the 45 s without index are 5 samples


# -- the model keeps the datasheet's rules -------------------------------------------------

def nacks(fn: Any, *args: Any) -> bool:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno == errno.EREMOTEIO
    return False


def test_model_refuses_what_the_sensor_refuses() -> None:
    model = SGP40Model()
    bus = FakeI2CBus([model])
    assert nacks(bus.write_i2c_block_data, 0x59, 0x26, [0x0F])  # measure_raw without its words
    assert nacks(bus.write_i2c_block_data, 0x59, 0x26, [0x0F, 0x80, 0x00, 0xA2, 0x66, 0x66, 0x00])  # bad CRC
    assert nacks(bus.write_i2c_block_data, 0x59, 0x12, [0x34])  # unknown command
    assert bus.read_byte(0x59) == 0xFF  # nothing to answer: acknowledged, the bus reads high
    bus.write_i2c_block_data(0x59, 0x28, [0x0E])  # self-test: 320 ms busy
    model.advance(0.25)
    assert nacks(bus.read_byte, 0x59)
    assert nacks(bus.write_i2c_block_data, 0x59, 0x36, [0x15])
    model.advance(0.07)
    assert words_with_crc(read_bytes(bus, 0x59, 3), "self-test") == [0xD400]
    assert model.commands == ["self_test"]


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"humidity_pct": 45}, "f.toml: sensor[0].temperature_c: needed too, the humidity compensation takes both "
                           "humidity_pct and temperature_c"),
    ({"temperature_c": 21}, "f.toml: sensor[0].humidity_pct: needed too, the humidity compensation takes both "
                            "humidity_pct and temperature_c"),
    ({"humidity_pct": 101, "temperature_c": 21}, "f.toml: sensor[0].humidity_pct: expected a number >= 0 and "
                                                 "<= 100, found 101"),
    ({"voc_sampling_s": 60}, "f.toml: sensor[0].voc_sampling_s: expected a number >= 1 and <= 10, found 60"),
    ({"address": 0x58}, "f.toml: sensor[0].address: expected 0x59, found 0x58"),
    ({"humidity": 40}, 'f.toml: sensor[0].humidity: unknown key, did you mean "humidity_pct"?'),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(SGP40Config, options, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_docstring_example_parses() -> None:
    config = example_config(plugin, SGP40)
    options = config.sensors[0].options
    assert isinstance(options, SGP40Config)
    assert (options.humidity_pct, options.voc_index, options.voc_sampling_s, options.self_test) == \
        (None, None, 1.0, True)


# -- detect and registration -------------------------------------------------------------

def test_identify() -> None:
    model = SGP40Model()
    assert SGP40.identify(FakeI2CBus([model]), 0x59, sleep=model.advance) == {"type": "sgp40", "address": 0x59}
    assert model.commands == ["get_serial_number"] and not model.heater_on


def test_identify_rejects_other_chips() -> None:
    assert SGP40.identify(FakeI2CBus(), 0x59, sleep=lambda s: None) is None
    other = RegisterMapDevice(address=0x59, registers={0x82: b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11"})
    assert SGP40.identify(FakeI2CBus([other]), 0x59, sleep=lambda s: None) is None


def test_hookimpl_registers_the_driver() -> None:
    assert plugin.sensord_register_sensors() == [SGP40]
    assert SGP40.i2c_addresses == (0x59,)
