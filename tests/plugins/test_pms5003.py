"""The `pms5003` driver: the frame and command layout of the data manual, and the whole driver on
a fake serial port with a PMS5003 model (active and passive mode, a stream joined mid-frame,
bad check codes, partial frames, an unplugged sensor)."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_port

import sensord_plugins.pms5003 as pms5003
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.models.pms5003 import PMS5003Model
from sensord_plugins.pms5003 import PMS5003, PMS5003Config, command, decode, frame_problem

MASS = [("pm1", 8, "µg/m³"), ("pm2_5", 12, "µg/m³"), ("pm10", 15, "µg/m³")]


def values(sensor: PMS5003) -> list[tuple[str, object, str]]:
    return [(r.quantity, r.value, r.unit) for r in sensor.read()]


# -- pure functions -----------------------------------------------------------------------------


def test_commands_are_the_data_manuals() -> None:
    # Appendix I: read in passive mode, passive mode, active mode.
    assert command(0xE2) == bytes.fromhex("42 4d e2 00 00 01 71")
    assert command(0xE1, 0) == bytes.fromhex("42 4d e1 00 00 01 70")
    assert command(0xE1, 1) == bytes.fromhex("42 4d e1 00 01 01 71")


def test_a_frame_decodes_and_its_check_code_and_length_are_checked() -> None:
    frame = PMS5003Model(pm1=5, pm2_5=35, pm10=512).frame()
    assert len(frame) == 32 and frame[:4] == bytes.fromhex("42 4d 00 1c")
    assert frame_problem(frame) is None
    assert decode(frame)[3:6] == [5, 35, 512]  # data 4 to 6: atmospheric environment
    bad = frame[:30] + bytes([frame[30], frame[31] ^ 1])
    assert frame_problem(bad) == f"check code 0x{bad[30] << 8 | bad[31]:04x}, expected 0x{sum(frame[:30]):04x}"
    short = frame[:3] + b"\x14" + frame[4:]
    assert frame_problem(short) == "frame length 20, expected 28"


# -- the driver on a fake PMS5003 ------------------------------------------------------------------


def test_active_mode_takes_the_next_frame_of_the_stream(clock: FakeClock) -> None:
    sensor, port = on_port(PMS5003, PMS5003Model(), clock, name="balcony")
    sensor.open()
    assert port.written == command(0xE1, 1)  # active mode set at open, as configured
    assert values(sensor) == MASS
    assert clock.now == pytest.approx(2.3)  # waited for the next frame (2.3 s in stable air)
    clock.advance(60)  # 26 frames queued meanwhile: dropped, the next one read
    assert values(sensor) == MASS
    assert clock.now == pytest.approx(64.4)  # frames at 2.3 s steps: 62.1 came before


def test_particle_counts_when_asked(clock: FakeClock) -> None:
    sensor, _ = on_port(PMS5003, PMS5003Model(counts=(1000, 300, 60, 8, 2, 1)), clock, name="b",
                        particle_counts=True)
    sensor.open()
    assert [c.quantity for c in sensor.channels()][3:] == list(pms5003.COUNT_QUANTITIES)
    assert [v for _, v, _ in values(sensor)][3:] == [1000, 300, 60, 8, 2, 1]


def test_passive_mode_sends_the_read_command(clock: FakeClock) -> None:
    model = PMS5003Model(pm2_5=77)
    sensor, port = on_port(PMS5003, model, clock, name="balcony", mode="passive")
    sensor.open()
    assert model.passive
    start = clock.now
    assert values(sensor)[1] == ("pm2_5", 77, "µg/m³")
    assert port.written.endswith(command(0xE2))
    assert clock.now - start < 0.1  # the answer, not the stream


def test_a_stream_joined_mid_frame_is_resynchronised(clock: FakeClock) -> None:
    model = PMS5003Model()
    sensor, port = on_port(PMS5003, model, clock, name="balcony")
    sensor.open()
    port.inject(model.frame()[13:])  # the tail of a frame, arriving after the input was dropped...
    model.truncate_next()  # ...then half a frame, then whole ones
    port.reset_input_buffer = lambda: None  # type: ignore[method-assign]  # keep the garbage
    assert values(sensor) == MASS


def test_one_bad_check_code_is_skipped_two_are_an_error(clock: FakeClock) -> None:
    model = PMS5003Model()
    sensor, _ = on_port(PMS5003, model, clock, name="balcony")
    sensor.open()
    model.corrupt_next()
    assert values(sensor) == MASS
    model.corrupt_next(2)
    with pytest.raises(SensorError, match=r'sensor "balcony" \(pms5003 on /dev/serial0\): bad frame '
                                          r"\(check code 0x[0-9a-f]{4}, expected 0x[0-9a-f]{4}\) 2 times"):
        sensor.read()


def test_a_partial_frame_then_silence_is_an_error(clock: FakeClock) -> None:
    model = PMS5003Model()
    sensor, port = on_port(PMS5003, model, clock, name="balcony", mode="passive")
    sensor.open()
    model.truncate_next()
    with pytest.raises(SensorError, match="incomplete frame: 16 of 32 bytes, then nothing for 3 s"):
        sensor.read()
    assert values(sensor) == MASS  # the next read is whole again


def test_an_unplugged_sensor_times_out_and_comes_back(clock: FakeClock) -> None:
    sensor, port = on_port(PMS5003, PMS5003Model(), clock, name="balcony")
    sensor.open()
    port.unplug()
    with pytest.raises(SensorError, match=r"no data for 3 s: is the sensor powered \(5 V\) and its TX wired "
                                          r"to the Pi's RX \(GPIO15, pin 10\)\?"):
        sensor.read()
    port.plug()
    assert values(sensor) == MASS


def test_a_pulled_usb_adapter_is_an_io_error(clock: FakeClock) -> None:
    sensor, port = on_port(PMS5003, PMS5003Model(), clock, name="balcony", path="/dev/ttyUSB0")
    sensor.open()
    port.pull()
    with pytest.raises(SensorError, match=r"\(pms5003 on /dev/ttyUSB0\): I/O error: .*device disconnected"):
        sensor.read()


def test_garbage_without_a_header_is_a_wrong_device_or_baud_rate(clock: FakeClock) -> None:
    sensor, port = on_port(PMS5003, None, clock, name="balcony")
    sensor.open()
    port.inject(bytes(range(0x50, 0xFF)) * 3)
    port.reset_input_buffer = lambda: None  # type: ignore[method-assign]
    with pytest.raises(SensorError, match=r"no frame header 42 4d in \d+ bytes: wrong device or baud rate"):
        sensor.read()


def test_close_gives_the_port_back(clock: FakeClock) -> None:
    sensor, port = on_port(PMS5003, PMS5003Model(), clock, name="balcony")
    sensor.open()
    sensor.close()
    assert not port.is_open
    sensor.open()  # and it can be opened again
    assert values(sensor) == MASS


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.mode"):
        build_options(PMS5003Config, {"mode": "sleepy"}, "sensor[0]", "x.toml")
    with pytest.raises(ConfigError, match="port"):
        build_options(PMS5003Config, {"port": "ttyUSB0"}, "sensor[0]", "x.toml")


def test_the_docstring_example_parses() -> None:
    (spec,) = example_config(pms5003, PMS5003).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("balcony", "pms5003", 60)
    assert spec.options == PMS5003Config(particle_counts=True)
