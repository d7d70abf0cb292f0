"""The `sds011` driver: the frames and commands of the specification and control protocol V1.3,
and the whole driver on a fake serial port with an SDS011 model (active and query mode, the
working period, bad check-sums, an unplugged sensor)."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_port

import sensord_plugins.sds011 as sds011
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.models.sds011 import SDS011Model
from sensord_plugins.sds011 import SDS011, SDS011Config, command, decode, frame_problem

# The control protocol's example data frame: PM2.5 0x04D4 = 1236, PM10 0x0A3A = 2618 tenths.
EXAMPLE = bytes.fromhex("aa c0 d4 04 3a 0a a1 60 1d ab")


def values(sensor: SDS011) -> list[tuple[str, object, str]]:
    return [(r.quantity, r.value, r.unit) for r in sensor.read()]


def test_the_protocols_example_frame() -> None:
    assert frame_problem(EXAMPLE) is None
    assert decode(EXAMPLE) == pytest.approx((123.6, 261.8))
    assert SDS011Model().frame() == EXAMPLE
    assert frame_problem(EXAMPLE[:8] + b"\x1e\xab") == "check-sum 0x1e, expected 0x1d"
    assert frame_problem(EXAMPLE[:9] + b"\xaa") == "tail 0xaa, expected 0xab"


def test_commands_are_the_protocols() -> None:
    # Control protocol V1.3: set query mode; query data; set a working period of 1 minute.
    assert command(2, 1, 1) == bytes.fromhex("aa b4 02 01 01 00 00 00 00 00 00 00 00 00 00 ff ff 02 ab")
    assert command(4) == bytes.fromhex("aa b4 04 00 00 00 00 00 00 00 00 00 00 00 00 ff ff 02 ab")
    assert command(8, 1, 1) == bytes.fromhex("aa b4 08 01 01 00 00 00 00 00 00 00 00 00 00 ff ff 08 ab")


def test_active_mode_takes_the_next_frame(clock: FakeClock) -> None:
    model = SDS011Model(pm2_5=4.2, pm10=9.9)
    sensor, port = on_port(SDS011, model, clock, name="street")
    sensor.open()
    assert not model.query_mode and model.work_period_min == 0
    assert values(sensor) == [("pm2_5", 4.2, "µg/m³"), ("pm10", 9.9, "µg/m³")]
    assert [c.resolution for c in sensor.channels()] == [0.1, 0.1]


def test_query_mode_asks_for_each_frame(clock: FakeClock) -> None:
    model = SDS011Model()
    sensor, port = on_port(SDS011, model, clock, name="street", mode="query")
    sensor.open()
    assert model.query_mode
    start = clock.now
    assert values(sensor) == [("pm2_5", 123.6, "µg/m³"), ("pm10", 261.8, "µg/m³")]
    assert port.written.endswith(command(4))
    assert clock.now - start < 0.1


def test_the_working_period_is_set_and_the_frame_since_the_last_read_taken(clock: FakeClock) -> None:
    model = SDS011Model(pm2_5=10.0, pm10=20.0)
    sensor, _ = on_port(SDS011, model, clock, name="street", work_period_min=5)
    sensor.open()
    assert model.work_period_min == 5
    clock.advance(300)  # the sensor woke, measured and sent one frame meanwhile
    assert values(sensor)[0] == ("pm2_5", 10.0, "µg/m³")
    with pytest.raises(SensorError, match=r"no frame since the last read .*work_period_min = 5 one comes every "
                                          r"5 min: set interval_s to 300 or more"):
        sensor.read()


def test_one_bad_check_sum_is_skipped_two_are_an_error(clock: FakeClock) -> None:
    model = SDS011Model()
    sensor, _ = on_port(SDS011, model, clock, name="street")
    sensor.open()
    model.corrupt_next()
    assert values(sensor)[0] == ("pm2_5", 123.6, "µg/m³")
    model.corrupt_next(2)
    with pytest.raises(SensorError, match=r'sensor "street" \(sds011 on /dev/serial0\): bad frame \(check-sum'):
        sensor.read()


def test_an_unplugged_sensor_times_out(clock: FakeClock) -> None:
    sensor, port = on_port(SDS011, SDS011Model(), clock, name="street", mode="query")
    sensor.open()
    port.unplug()
    with pytest.raises(SensorError, match="no data for 2 s"):
        sensor.read()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.work_period_min"):
        build_options(SDS011Config, {"work_period_min": 31}, "sensor[0]", "x.toml")
    with pytest.raises(ConfigError, match='needs mode = "active"'):
        build_options(SDS011Config, {"work_period_min": 5, "mode": "query"}, "sensor[0]", "x.toml")


def test_the_docstring_example_parses() -> None:
    (spec,) = example_config(sds011, SDS011).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("street", "sds011", 60)
    assert spec.options == SDS011Config(mode="query")
