"""The `scd4x` driver against the datasheet and a fake SCD4x."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from driver_kit import example_config

from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.i2c import command_bytes, crc8, words_with_crc
from sensord.testing.i2c import FakeI2CBus, RegisterMapDevice
from sensord.testing.models.scd4x import SCD4xModel
from sensord_plugins import scd4x as plugin
from sensord_plugins.scd4x import (
    SCD4x,
    SCD4xConfig,
    data_ready,
    humidity_pct,
    serial_number,
    temperature_c,
    temperature_offset_word,
)


class Rig:
    """A driver on a fake bus; its sleeps move the model's fake time and are recorded."""

    def __init__(self, model: SCD4xModel, **options: Any) -> None:
        self.model = model
        self.bus = FakeI2CBus([model])
        self.sleeps: list[float] = []
        hardware = Hardware(i2c_factory=lambda n: self.bus, sleep=self.sleep)
        self.sensor = SCD4x(SCD4xConfig(**options), name="office", hardware=hardware)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.model.advance(seconds)


def values(rig: Rig) -> dict[str, float]:
    return {r.quantity: r.value for r in rig.sensor.read()}


# -- datasheet values and pure functions ------------------------------------------------------

def test_crc_example_of_section_3_11() -> None:
    assert crc8(b"\xbe\xef") == 0x92


def test_read_measurement_example_of_section_3_5_2() -> None:
    answer = bytes.fromhex("01f433 6667a2 5eb93c")
    co2, t_raw, rh_raw = words_with_crc(answer, "measurement")
    assert co2 == 500
    assert temperature_c(t_raw) == pytest.approx(25.0, abs=0.01)
    assert humidity_pct(rh_raw) == pytest.approx(37.0, abs=0.01)


def test_conversion_end_points() -> None:
    assert temperature_c(0) == -45.0
    assert temperature_c(0xFFFF) == pytest.approx(130.0)
    assert humidity_pct(0xFFFF) == pytest.approx(100.0)


def test_write_examples_of_section_3_6() -> None:
    assert temperature_offset_word(5.4) == 0x07E6
    assert command_bytes(0x241D, temperature_offset_word(5.4)) == [0x24, 0x1D, 0x07, 0xE6, 0x48]
    assert command_bytes(0x2427, 1950) == [0x24, 0x27, 0x07, 0x9E, 0x09]
    assert command_bytes(0x21B1) == [0x21, 0xB1]


def test_serial_number_example_of_section_3_9_2() -> None:
    words = words_with_crc(bytes.fromhex("f89631 9f07c2 3bbe89"), "serial number")
    assert serial_number(words) == 0xF8969F073BBE == 273325796834238


def test_data_ready_looks_at_the_low_11_bits() -> None:
    assert data_ready(0x8006)
    assert data_ready(0x0001)
    assert not data_ready(0x8000)
    assert not data_ready(0xF800)


# -- the driver on the fake sensor -----------------------------------------------------------

def test_open_then_read() -> None:
    rig = Rig(SCD4xModel(co2_ppm=812, temperature_c=23.4, humidity_pct=51.2))
    rig.sensor.open()
    assert rig.model.commands == ["stop_periodic_measurement", "get_serial_number", "start_periodic_measurement"]
    assert rig.sensor.serial_number == 0xF8969F073BBE
    assert rig.sleeps[0] == 0.5  # after the stop (§3.5.3)
    got = values(rig)  # the first sample comes 5 s after the start
    assert got == {"carbon_dioxide": 812, "temperature": pytest.approx(23.4, abs=0.003),
                   "humidity": pytest.approx(51.2, abs=0.002)}
    assert [r.unit for r in rig.sensor.read()] == ["ppm", "°C", "%"]
    assert [c.quantity for c in rig.sensor.channels()] == ["carbon_dioxide", "temperature", "humidity"]
    assert rig.sensor.channels()[1].resolution == pytest.approx(0.00267, rel=1e-3)


def test_each_read_returns_a_new_sample() -> None:
    rig = Rig(SCD4xModel(co2_ppm=600))
    rig.sensor.open()
    assert values(rig)["carbon_dioxide"] == 600
    rig.model.co2_ppm = 650
    assert values(rig)["carbon_dioxide"] == 650
    assert rig.model.now == pytest.approx(0.5 + 10.0, abs=0.3)  # waited for the second sample


def test_a_waiting_sample_is_read_without_waiting() -> None:
    rig = Rig(SCD4xModel())
    rig.sensor.open()
    rig.model.advance(60)
    rig.sleeps.clear()
    values(rig)
    assert rig.sleeps == [0.001, 0.001]  # only the execution times of the two read commands


def test_a_sensor_left_measuring_is_stopped_first() -> None:
    rig = Rig(SCD4xModel(measuring=True), altitude_m=1950, temperature_offset_c=5.4)
    rig.sensor.open()
    assert rig.model.commands == ["stop_periodic_measurement", "get_serial_number", "set_temperature_offset",
                                  "set_sensor_altitude", "start_periodic_measurement"]
    assert rig.model.altitude_m == 1950
    assert rig.model.temperature_offset_c == pytest.approx(5.4, abs=0.003)
    assert values(rig)["carbon_dioxide"] == 415


def test_no_new_sample_is_an_error() -> None:
    rig = Rig(SCD4xModel(period_s=60))
    rig.sensor.open()
    with pytest.raises(SensorError, match=r'^sensor "office" \(scd4x @ 0x62 on bus 1\): no new measurement after '
                                          r"waiting 5.5 s \(one comes every 5 s in periodic mode\)$"):
        rig.sensor.read()


def test_ready_after_polls() -> None:
    rig = Rig(SCD4xModel(period_s=1e9, ready_after_polls=3, co2_ppm=1234))
    rig.sensor.open()
    assert values(rig)["carbon_dioxide"] == 1234
    assert rig.sleeps.count(0.25) == 3


def test_bad_crc_is_an_error() -> None:
    rig = Rig(SCD4xModel())
    rig.sensor.open()
    rig.model.advance(5)
    rig.model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r"scd4x @ 0x62 on bus 1\): data ready status: CRC mismatch in word 0 "
                                          r"\(got 0x"):
        rig.sensor.read()
    assert values(rig)["carbon_dioxide"] == 415  # the next read is fine


def test_bad_crc_in_the_serial_number_fails_open() -> None:
    rig = Rig(SCD4xModel())
    rig.model.advance(0)
    rig.model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r"serial number: CRC mismatch in word 0"):
        rig.sensor.open()


def test_a_nack_is_retried() -> None:
    rig = Rig(SCD4xModel())
    rig.sensor.open()
    rig.model.advance(5)
    rig.bus.fail_next(0x62)
    assert values(rig)["carbon_dioxide"] == 415


def test_persistent_nacks_name_the_chip() -> None:
    rig = Rig(SCD4xModel())
    rig.sensor.open()
    rig.bus.fail_next(0x62, count=3)
    with pytest.raises(SensorError, match=r'^sensor "office" \(scd4x @ 0x62 on bus 1\): no answer \(NACK\)'):
        rig.sensor.read()


def test_no_sensor_fails_open() -> None:
    rig = Rig(SCD4xModel(address=0x61))
    with pytest.raises(SensorError, match=r"scd4x @ 0x62 on bus 1\): no answer \(NACK\)"):
        rig.sensor.open()


def test_close_stops_measuring() -> None:
    rig = Rig(SCD4xModel())
    rig.sensor.open()
    rig.sensor.close()
    assert not rig.model.measuring
    assert rig.model.commands[-1] == "stop_periodic_measurement"


# -- the model keeps the datasheet's rules -------------------------------------------------

def nacks(fn: Any, *args: Any) -> bool:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno == errno.EREMOTEIO
    return False


def test_model_refuses_commands_as_the_sensor_does() -> None:
    model = SCD4xModel()
    bus = FakeI2CBus([model])
    bus.write_i2c_block_data(0x62, 0x21, [0xB1])  # start_periodic_measurement
    assert nacks(bus.write_i2c_block_data, 0x62, 0x36, [0x82])  # get_serial_number while measuring
    assert nacks(bus.write_i2c_block_data, 0x62, 0x24, [0x27, 0x07, 0x9E, 0x09])  # set_sensor_altitude
    bus.write_i2c_block_data(0x62, 0x3F, [0x86])  # stop
    assert nacks(bus.write_i2c_block_data, 0x62, 0x36, [0x82])  # within 500 ms of the stop
    model.advance(0.5)
    assert nacks(bus.write_i2c_block_data, 0x62, 0x24, [0x27, 0x07, 0x9E, 0x00])  # bad CRC
    assert nacks(bus.write_i2c_block_data, 0x62, 0x12, [0x34])  # unknown command
    bus.write_i2c_block_data(0x62, 0xEC, [0x05])  # read_measurement, with no sample
    model.advance(0.001)
    assert nacks(bus.read_byte, 0x62)
    assert model.commands == ["start_periodic_measurement", "stop_periodic_measurement", "read_measurement"]


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"altitude_m": 4000}, "f.toml: sensor[0].altitude_m: expected an integer >= 0 and <= 3000, found 4000"),
    ({"altitude_m": 1.5}, "f.toml: sensor[0].altitude_m: expected an integer >= 0 and <= 3000, found 1.5"),
    ({"temperature_offset_c": -1}, "f.toml: sensor[0].temperature_offset_c: expected a number >= 0 and <= 20, "
                                   "found -1"),
    ({"address": 0x61}, "f.toml: sensor[0].address: expected 0x62, found 0x61"),
    ({"altitude": 100}, 'f.toml: sensor[0].altitude: unknown key, did you mean "altitude_m"?'),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(SCD4xConfig, options, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_docstring_example_parses() -> None:
    config = example_config(plugin, SCD4x)
    options = config.sensors[0].options
    assert isinstance(options, SCD4xConfig)
    assert (options.altitude_m, options.temperature_offset_c, options.address) == (520, None, 0x62)


# -- detect and registration -------------------------------------------------------------

def test_identify_idle_and_measuring() -> None:
    idle = SCD4xModel()
    assert SCD4x.identify(FakeI2CBus([idle]), 0x62, sleep=idle.advance) == {"type": "scd4x", "address": 0x62}
    assert idle.commands == ["get_serial_number"]
    measuring = SCD4xModel(measuring=True)
    assert SCD4x.identify(FakeI2CBus([measuring]), 0x62, sleep=measuring.advance) == {"type": "scd4x",
                                                                                      "address": 0x62}
    assert measuring.commands == ["get_data_ready_status"] and measuring.measuring


def test_identify_rejects_other_chips() -> None:
    assert SCD4x.identify(FakeI2CBus(), 0x62, sleep=lambda s: None) is None
    other = RegisterMapDevice(address=0x62, registers={0x82: b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11"})
    assert SCD4x.identify(FakeI2CBus([other]), 0x62, sleep=lambda s: None) is None


def test_hookimpl_registers_the_driver() -> None:
    assert plugin.sensord_register_sensors() == [SCD4x]
    assert SCD4x.i2c_addresses == (0x62,)
