"""The `scd30` driver against the interface description and a fake SCD30."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from driver_kit import example_config

from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.i2c import command_bytes, words_with_crc
from sensord.testing.i2c import FakeI2CBus, RegisterMapDevice
from sensord.testing.models.scd30 import EXAMPLE_WORDS, SCD30Model, float_words
from sensord_plugins import scd30 as plugin
from sensord_plugins.scd30 import SCD30, SCD30Config, decode_float, firmware_version, measurement


class Rig:
    """A driver on a fake bus; its sleeps move the model's fake time and are recorded."""

    def __init__(self, model: SCD30Model, **options: Any) -> None:
        self.model = model
        self.bus = FakeI2CBus([model])
        self.sleeps: list[float] = []
        hardware = Hardware(i2c_factory=lambda n: self.bus, sleep=self.sleep)
        self.sensor = SCD30(SCD30Config(**options), name="bedroom", hardware=hardware)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.model.advance(seconds)


def values(rig: Rig) -> dict[str, float]:
    return {r.quantity: r.value for r in rig.sensor.read()}


# -- interface description values and pure functions -----------------------------------------

def test_read_measurement_example_of_section_1_4_5() -> None:
    answer = bytes.fromhex("43dbcb 8c2e8f 41d970 e7fff5 4243bf 3a1b74")
    words = words_with_crc(answer, "measurement")
    assert tuple(words) == EXAMPLE_WORDS
    co2, temperature, humidity = measurement(words)
    assert co2 == pytest.approx(439.09, abs=0.01)
    assert temperature == pytest.approx(27.24, abs=0.01)
    assert humidity == pytest.approx(48.81, abs=0.01)


def test_command_examples_of_section_1_4() -> None:
    assert command_bytes(0x0010, 0) == [0x00, 0x10, 0x00, 0x00, 0x81]  # start, no pressure compensation
    assert command_bytes(0x4600, 2) == [0x46, 0x00, 0x00, 0x02, 0xE3]  # interval 2 s
    assert command_bytes(0x0104) == [0x01, 0x04]


def test_floats_round_trip() -> None:
    assert decode_float(*float_words(1234.5)) == 1234.5
    assert decode_float(0x0000, 0x0000) == 0.0
    assert firmware_version(0x0342) == "3.66"


# -- the driver on the fake module ------------------------------------------------------------

def test_open_then_read_the_example() -> None:
    rig = Rig(SCD30Model())
    rig.sensor.open()
    assert rig.model.commands == ["read_firmware_version", "measurement_interval", "start_continuous_measurement"]
    assert rig.sensor.firmware == "3.66"
    assert rig.model.interval_writes == 0  # already 2 s: the module's memory is left alone
    got = rig.sensor.read()
    assert [(r.quantity, r.value, r.unit) for r in got] == [("carbon_dioxide", 439.1, "ppm"),
                                                            ("temperature", 27.24, "°C"), ("humidity", 48.81, "%")]
    assert [(c.quantity, c.unit) for c in rig.sensor.channels()] == [("carbon_dioxide", "ppm"), ("temperature", "°C"),
                                                                      ("humidity", "%")]
    assert 0.003 in rig.sleeps  # between each read command and its answer


def test_interval_and_pressure_are_set() -> None:
    rig = Rig(SCD30Model(), measurement_interval_s=30, pressure_hpa=950)
    rig.sensor.open()
    assert rig.model.commands == ["read_firmware_version", "measurement_interval", "set_measurement_interval",
                                  "start_continuous_measurement"]
    assert (rig.model.measurement_interval_s, rig.model.pressure_mbar, rig.model.interval_writes) == (30, 950, 1)
    rig.model.co2_ppm = 1000.0
    assert values(rig)["carbon_dioxide"] == 1000.0
    assert rig.model.now == pytest.approx(30, abs=0.2)  # waited for the first sample
    Rig.__init__(rig, rig.model, measurement_interval_s=30, pressure_hpa=950)  # a restart of sensord
    rig.sensor.open()
    assert rig.model.interval_writes == 1


def test_each_read_waits_for_a_new_sample() -> None:
    rig = Rig(SCD30Model(), measurement_interval_s=5)
    rig.sensor.open()
    values(rig)
    rig.model.co2_ppm = 700.0
    assert values(rig)["carbon_dioxide"] == 700.0
    assert rig.model.now == pytest.approx(10, abs=0.2)


def test_no_new_sample_is_an_error() -> None:
    rig = Rig(SCD30Model())
    rig.sensor.open()
    rig.model.measuring = False  # e.g. a brown-out the module did not survive measuring
    with pytest.raises(SensorError, match=r'^sensor "bedroom" \(scd30 @ 0x61 on bus 1\): no new measurement after '
                                          r"waiting 3 s \(one comes every 2 s\)$"):
        rig.sensor.read()


def test_bad_crc_is_an_error_and_the_next_read_is_fine() -> None:
    rig = Rig(SCD30Model())
    rig.sensor.open()
    rig.model.advance(2)
    rig.model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r"\(scd30 @ 0x61 on bus 1\): data ready status: CRC mismatch in word 0"):
        rig.sensor.read()
    assert values(rig)["carbon_dioxide"] == 439.1


def test_bad_crc_in_the_firmware_version_fails_open() -> None:
    rig = Rig(SCD30Model())
    rig.model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r"firmware version: CRC mismatch in word 0"):
        rig.sensor.open()


def test_not_a_number_is_an_error() -> None:
    rig = Rig(SCD30Model(co2_ppm=float("nan")))
    rig.sensor.open()
    with pytest.raises(SensorError, match=r"measurement not a number \(CO2 nan"):
        rig.sensor.read()


def test_a_nack_is_retried_and_persistent_nacks_name_the_chip() -> None:
    rig = Rig(SCD30Model())
    rig.sensor.open()
    rig.bus.fail_next(0x61)
    assert values(rig)["humidity"] == 48.81
    rig.bus.fail_next(0x61, count=3)
    with pytest.raises(SensorError, match=r'^sensor "bedroom" \(scd30 @ 0x61 on bus 1\): no answer \(NACK\)'):
        rig.sensor.read()


def test_no_module_fails_open() -> None:
    rig = Rig(SCD30Model(address=0x62))
    with pytest.raises(SensorError, match=r"scd30 @ 0x61 on bus 1\): no answer \(NACK\)"):
        rig.sensor.open()


def test_close_stops_measuring() -> None:
    rig = Rig(SCD30Model())
    rig.sensor.open()
    rig.sensor.close()
    assert not rig.model.measuring
    assert rig.model.commands[-1] == "stop_continuous_measurement"


# -- the model keeps the interface description's rules --------------------------------------

def nacks(fn: Any, *args: Any) -> bool:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno == errno.EREMOTEIO
    return False


def test_model_refuses_what_the_module_refuses() -> None:
    model = SCD30Model()
    bus = FakeI2CBus([model])
    assert nacks(bus.write_i2c_block_data, 0x61, 0x46, [0x00, 0x00, 0x01, 0xB0])  # interval 1 s
    assert nacks(bus.write_i2c_block_data, 0x61, 0x46, [0x00, 0x00, 0x02, 0x00])  # bad CRC
    assert nacks(bus.write_i2c_block_data, 0x61, 0x00, [0x10, *command_bytes(0, 500)[2:]])  # 500 mbar
    assert nacks(bus.write_i2c_block_data, 0x61, 0x00, [0x10])  # start without its argument
    assert nacks(bus.write_i2c_block_data, 0x61, 0x12, [0x34])  # unknown command
    assert nacks(bus.read_byte, 0x61)  # a read without a read command
    bus.write_i2c_block_data(0x61, 0x03, [0x00])  # read_measurement with no sample
    assert nacks(bus.read_byte, 0x61)
    assert model.commands == ["read_measurement"]


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"measurement_interval_s": 1}, "f.toml: sensor[0].measurement_interval_s: expected an integer >= 2 and "
                                    "<= 1800, found 1"),
    ({"pressure_hpa": 600}, "f.toml: sensor[0].pressure_hpa: expected an integer >= 700 and <= 1400, found 600"),
    ({"address": 0x62}, "f.toml: sensor[0].address: expected 0x61, found 0x62"),
    ({"pressure": 1000}, 'f.toml: sensor[0].pressure: unknown key, did you mean "pressure_hpa"?'),
])
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(SCD30Config, options, "sensor[0]", "f.toml")
    assert str(info.value) == message


def test_docstring_example_parses() -> None:
    config = example_config(plugin, SCD30)
    options = config.sensors[0].options
    assert isinstance(options, SCD30Config)
    assert (options.measurement_interval_s, options.pressure_hpa, options.address) == (5, None, 0x61)


# -- detect and registration -------------------------------------------------------------

def test_identify() -> None:
    model = SCD30Model(measuring=True)
    assert SCD30.identify(FakeI2CBus([model]), 0x61, sleep=model.advance) == {"type": "scd30", "address": 0x61}
    assert model.commands == ["read_firmware_version"] and model.measuring


def test_identify_rejects_other_chips() -> None:
    assert SCD30.identify(FakeI2CBus(), 0x61, sleep=lambda s: None) is None
    other = RegisterMapDevice(address=0x61, registers={0x00: b"\x12\x34\x56"})
    assert SCD30.identify(FakeI2CBus([other]), 0x61, sleep=lambda s: None) is None


def test_hookimpl_registers_the_driver() -> None:
    assert plugin.sensord_register_sensors() == [SCD30]
    assert SCD30.i2c_addresses == (0x61,)
