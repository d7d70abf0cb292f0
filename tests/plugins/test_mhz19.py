"""The `mhz19` driver: the commands and checksum of the MH-Z19B manual, and the whole driver on a
fake serial port with an MH-Z19B model (ABC off, detection range, bad checksum, no answer)."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_port

import sensord_plugins.mhz19 as mhz19
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.models.mhz19 import MHZ19Model
from sensord_plugins.mhz19 import MHZ19, MHZ19Config, checksum, co2_ppm, command, frame_problem

# The manual's example: read command, and its answer for 544 ppm.
READ = bytes.fromhex("ff 01 86 00 00 00 00 00 79")
ANSWER = bytes.fromhex("ff 86 02 20 00 00 00 00 58")


def test_the_manuals_examples() -> None:
    assert command(0x86) == READ
    assert frame_problem(ANSWER) is None and co2_ppm(ANSWER) == 544
    assert MHZ19Model().answer(0x86, (544).to_bytes(2, "big")) == ANSWER
    assert command(0x79, b"\xa0") == bytes.fromhex("ff 01 79 a0 00 00 00 00 e6")  # ABC on
    assert command(0x79) == bytes.fromhex("ff 01 79 00 00 00 00 00 86")  # ABC off
    assert command(0x99, bytes.fromhex("00 00 00 07 d0")) == bytes.fromhex("ff 01 99 00 00 00 07 d0 8f")
    assert checksum(ANSWER) == 0x58
    assert frame_problem(ANSWER[:8] + b"\x59") == "checksum 0x59, expected 0x58"


def test_read(clock: FakeClock) -> None:
    model = MHZ19Model(co2_ppm=1234)
    sensor, port = on_port(MHZ19, model, clock, name="living_room")
    sensor.open()
    assert port.written == READ  # open reads once: nothing else is changed unasked
    assert model.abc and model.range_ppm == 5000
    (reading,) = sensor.read()
    assert (reading.quantity, reading.value, reading.unit) == ("carbon_dioxide", 1234, "ppm")
    assert sensor.channels()[0].quantity == "carbon_dioxide"  # as scd4x names it


def test_abc_off_and_the_range_at_open(clock: FakeClock) -> None:
    model = MHZ19Model(co2_ppm=2600)
    sensor, port = on_port(MHZ19, model, clock, name="greenhouse", abc=False, range_ppm=2000)
    sensor.open()
    assert not model.abc and model.range_ppm == 2000
    assert port.written.startswith(bytes.fromhex("ff 01 79 00 00 00 00 00 86 ff 01 99 00 00 00 07 d0 8f"))
    assert sensor.read()[0].value == 2000  # the sensor clips at its range


def test_a_bad_checksum_is_an_error(clock: FakeClock) -> None:
    model = MHZ19Model()
    sensor, _ = on_port(MHZ19, model, clock, name="living_room")
    sensor.open()
    model.corrupt_next()
    with pytest.raises(SensorError, match=r'sensor "living_room" \(mhz19 on /dev/serial0\): bad frame '
                                          r"\(checksum 0x58, expected 0x57\)"):
        sensor.read()
    assert sensor.read()[0].value == 544


def test_no_sensor_fails_at_open(clock: FakeClock) -> None:
    sensor, port = on_port(MHZ19, None, clock, name="living_room")
    with pytest.raises(SensorError, match=r"no data for 1 s: is the sensor powered"):
        sensor.open()
    assert not port.is_open  # given back


def test_a_missing_port_names_the_sensor_and_the_uart_recipe(clock: FakeClock) -> None:
    sensor, _ = on_port(MHZ19, MHZ19Model(), clock, name="living_room", path="/dev/serial0")
    object.__setattr__(sensor.config, "port", "/dev/ttyAMA0")
    with pytest.raises(SensorError, match=r'sensor "living_room" \(mhz19 on /dev/ttyAMA0\): cannot open serial '
                                          r"port /dev/ttyAMA0: no such device: enable the UART \(enable_uart=1"):
        sensor.open()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.range_ppm"):
        build_options(MHZ19Config, {"range_ppm": 3000}, "sensor[0]", "x.toml")


def test_the_docstring_example_parses() -> None:
    (spec,) = example_config(mhz19, MHZ19).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("living_room", "mhz19", 60)
    assert spec.options == MHZ19Config(abc=False, range_ppm=5000)
