"""The `aht20` driver: datasheet conversions, CRC, and the whole driver on a fake AHT20."""

from __future__ import annotations

import pytest
from driver_kit import example_config, opened

import sensord_plugins.aht20 as aht20
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.hardware import Hardware
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus, RegisterMapDevice
from sensord.testing.models.aht20 import AHT20Model
from sensord_plugins.aht20 import (
    AHT20,
    AHT20Config,
    aht20_crc,
    humidity_percent,
    parse_frame,
    temperature_celsius,
)

# A frame read from a real AHT20, published in the elixir-sensors/aht20 wiki: status 0x1c,
# humidity 0x269a7, temperature 0x642e7, CRC 0x76.
REAL_FRAME = bytes([0x1C, 0x26, 0x9A, 0x76, 0x42, 0xE7, 0x76])


def rig(model: AHT20Model, clock: FakeClock) -> tuple[AHT20, FakeI2CBus]:
    return opened(AHT20, model, clock, name="bedroom")


def values(sensor: AHT20) -> dict[str, float]:
    return {r.quantity: float(r.value) for r in sensor.read()}


# -- pure functions ---------------------------------------------------------------------------


def test_crc_is_sensirions_crc8() -> None:
    # Same algorithm as Sensirion's (SHT3x datasheet example: 0xBEEF -> 0x92).
    assert aht20_crc(b"\xbe\xef") == 0x92
    assert aht20_crc(REAL_FRAME[:6]) == REAL_FRAME[6]


def test_parse_real_frame() -> None:
    raw_humidity, raw_temperature = parse_frame(REAL_FRAME)
    assert (raw_humidity, raw_temperature) == (0x269A7, 0x642E7)
    assert humidity_percent(raw_humidity) == pytest.approx(15.0794, abs=1e-4)
    assert temperature_celsius(raw_temperature) == pytest.approx(28.2667, abs=1e-4)


@pytest.mark.parametrize(("raw", "percent"), [(0, 0.0), (1 << 19, 50.0), (1 << 18, 25.0),
                                              ((1 << 20) - 1, 99.9999)])
def test_humidity_conversion(raw: int, percent: float) -> None:
    assert humidity_percent(raw) == pytest.approx(percent, abs=1e-4)


@pytest.mark.parametrize(("raw", "celsius"), [(0, -50.0), (1 << 18, 0.0), (1 << 19, 50.0),
                                              ((1 << 20) - 1, 149.9998)])
def test_temperature_conversion(raw: int, celsius: float) -> None:
    assert temperature_celsius(raw) == pytest.approx(celsius, abs=1e-4)


def test_parse_frame_rejects_bad_crc_and_length() -> None:
    bad = REAL_FRAME[:6] + b"\x00"
    with pytest.raises(ValueError, match=r"^CRC mismatch: got 0x00, expected 0x76 \(frame 1c 26 9a 76 42 e7 00\)$"):
        parse_frame(bad)
    with pytest.raises(ValueError, match="expected 7 bytes, got 6"):
        parse_frame(REAL_FRAME[:6])


# -- the driver on a fake chip ----------------------------------------------------------------


def test_reads_temperature_and_humidity(clock: FakeClock) -> None:
    sensor, bus = rig(AHT20Model(temperature_c=21.5, humidity_pct=40.0, clock=clock.monotonic), clock)
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [("temperature", "°C"), ("humidity", "%")]
    got = {r.quantity: r.value for r in readings}
    assert got["temperature"] == pytest.approx(21.5, abs=200 / 2**20)
    assert got["humidity"] == pytest.approx(40.0, abs=100 / 2**20)
    # On the wire: status read at open, then trigger 0xAC 0x33 0x00, then one 7-byte read.
    assert bus.writes(0x38) == [b"\xac\x33\x00"]
    assert [t.op for t in bus.log] == ["read_byte", "write_i2c_block_data", "i2c_rdwr:read"]
    assert len(bus.log[-1].data) == 7


def test_waits_80_ms_before_reading(clock: FakeClock) -> None:
    sensor, _ = rig(AHT20Model(clock=clock.monotonic, measurement_s=0.08), clock)
    start = clock.now
    sensor.read()
    assert clock.now - start == pytest.approx(0.08)


def test_polls_the_busy_bit_until_the_measurement_ends(clock: FakeClock) -> None:
    model = AHT20Model(temperature_c=-10.0, clock=clock.monotonic, measurement_s=0.105)
    sensor, bus = rig(model, clock)
    assert values(sensor)["temperature"] == pytest.approx(-10.0, abs=1e-3)
    reads = [t for t in bus.log if t.op == "i2c_rdwr:read"]
    assert [t.data[0] & 0x80 for t in reads] == [0x80, 0x80, 0x80, 0x00]  # at 80, 90, 100, 110 ms


def test_still_busy_is_an_error(clock: FakeClock) -> None:
    sensor, _ = rig(AHT20Model(clock=clock.monotonic, measurement_s=1.0), clock)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "bedroom" (aht20 @ 0x38 on bus 1): still busy 130 ms '
                                  'after the measurement command (status 0x98)')


def test_new_values_show_up(clock: FakeClock) -> None:
    model = AHT20Model(clock=clock.monotonic)
    sensor, _ = rig(model, clock)
    model.temperature_c, model.humidity_pct = 30.25, 75.5
    got = values(sensor)
    assert got["temperature"] == pytest.approx(30.25, abs=1e-3)
    assert got["humidity"] == pytest.approx(75.5, abs=1e-3)


def test_uncalibrated_chip_gets_the_init_command(clock: FakeClock) -> None:
    model = AHT20Model(calibrated=False)
    sensor, bus = rig(model, clock)
    assert model.calibrated and model.inits == 1
    assert bus.writes(0x38) == [b"\xbe\x08\x00"]
    assert values(sensor)["humidity"] == pytest.approx(50.0, abs=1e-3)


def test_calibrated_chip_gets_no_init_command(clock: FakeClock) -> None:
    model = AHT20Model()
    rig(model, clock)
    assert model.inits == 0


def test_calibration_that_does_not_load_is_an_error(clock: FakeClock) -> None:
    class Broken(AHT20Model):
        def write_raw(self, data: bytes) -> None:
            super().write_raw(data)
            self.calibrated = False

    with pytest.raises(SensorError) as excinfo:
        rig(Broken(calibrated=False), clock)
    assert str(excinfo.value) == ('sensor "bedroom" (aht20 @ 0x38 on bus 1): status 0x10: calibration '
                                  'bit 3 still clear after the init command 0xbe 0x08 0x00')


def test_bad_crc_is_an_error_and_the_next_read_recovers(clock: FakeClock) -> None:
    model = AHT20Model(clock=clock.monotonic)
    sensor, _ = rig(model, clock)
    model.corrupt_crc_next()
    with pytest.raises(SensorError, match=r'^sensor "bedroom" \(aht20 @ 0x38 on bus 1\): measurement: '
                                          r"CRC mismatch: got 0x[0-9a-f]{2}, expected 0x[0-9a-f]{2} \(frame "):
        sensor.read()
    assert values(sensor)["temperature"] == pytest.approx(21.0, abs=1e-3)


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(AHT20Model(), clock)
    bus.fail_next(0x38)
    assert values(sensor)["humidity"] == pytest.approx(50.0, abs=1e-3)
    assert [t.error for t in bus.log].count(121) == 1






def test_channels_declare_units_and_resolution() -> None:
    sensor = AHT20(AHT20Config(), name="bedroom", hardware=Hardware())
    assert [(c.quantity, c.unit) for c in sensor.channels()] == [("temperature", "°C"), ("humidity", "%")]
    assert [c.resolution for c in sensor.channels()] == [pytest.approx(1.9073e-4, rel=1e-3),
                                                         pytest.approx(9.537e-5, rel=1e-3)]


# -- config, detection, registration -----------------------------------------------------------


def test_defaults_and_fixed_address() -> None:
    cfg = build_options(AHT20Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address) == (1, 0x38)
    with pytest.raises(ConfigError) as excinfo:
        build_options(AHT20Config, {"address": 0x39}, "sensor[0]", "f.toml")
    assert str(excinfo.value) == "f.toml: sensor[0].address: expected 0x38, found 0x39"


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r'^f\.toml: sensor\[0\]\.adress: unknown key, did you mean "address"\?$'):
        build_options(AHT20Config, {"adress": 0x38}, "sensor[0]", "f.toml")


def test_docstring_example_parses() -> None:
    config = example_config(aht20, AHT20)
    (spec,) = config.sensors
    assert (spec.name, spec.type, spec.interval_s) == ("bedroom", "aht20", 30)
    assert spec.options == AHT20Config()


def test_identify_a_calibrated_idle_chip() -> None:
    bus = FakeI2CBus([AHT20Model()])
    assert AHT20.identify(bus, 0x38) == {"type": "aht20", "address": 0x38}
    assert bus.writes(0x38) == []  # detection changes nothing


def test_identify_rejects_other_chips() -> None:
    assert AHT20.identify(FakeI2CBus(), 0x38) is None  # nothing there
    other = RegisterMapDevice(address=0x38, registers={0x00: 0x00})
    assert AHT20.identify(FakeI2CBus([other]), 0x38) is None  # status without CAL
    pcf = RegisterMapDevice(address=0x38, registers={0x00: 0xFF})  # e.g. a PCF8574A, all inputs high
    assert AHT20.identify(FakeI2CBus([pcf]), 0x38) is None
    assert AHT20.identify(FakeI2CBus([AHT20Model(address=0x39)]), 0x39) is None


def test_hookimpl_registers_the_sensor() -> None:
    assert aht20.sensord_register_sensors() == [AHT20]
    assert AHT20.i2c_addresses == (0x38,)
    assert AHT20Model.DEFAULT_ADDRESS == aht20.DEFAULT_ADDRESS
