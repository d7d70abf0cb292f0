"""The `tsl2591` driver: the lux equation, register layout, and the whole driver on a fake TSL2591."""

from __future__ import annotations

import pytest
from driver_kit import example_config, on_bus, opened

import sensord_plugins.tsl2591 as tsl2591
from sensord import ConfigError, SensorError
from sensord.config import build_options
from sensord.testing.clock import FakeClock
from sensord.testing.i2c import FakeI2CBus
from sensord.testing.models.tsl2591 import TSL2591Model, encode_counts
from sensord_plugins.tsl2591 import (
    TSL2591,
    TSL2591Config,
    control_byte,
    counts_per_lux,
    illuminance_lux,
    max_count,
    settle_s,
)


def make(bus: FakeI2CBus, clock: FakeClock, **options: object) -> TSL2591:
    return on_bus(TSL2591, bus, clock, name="window", **options)


def rig(chip: TSL2591Model, clock: FakeClock, **options: object) -> tuple[TSL2591, FakeI2CBus]:
    return opened(TSL2591, chip, clock, name="window", **options)


def values(sensor: TSL2591) -> dict[str, float]:
    readings = sensor.read()
    assert [(r.quantity, r.unit) for r in readings] == [("illuminance", "lx"), ("full_spectrum", ""),
                                                        ("infrared", "")]
    return {r.quantity: float(r.value) for r in readings}


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("gain", "integration_ms", "cpl"), [
    ("low", 100, 100 / 408), ("medium", 100, 2500 / 408), ("high", 300, 300 * 428 / 408),
    ("max", 600, 600 * 9876 / 408),
])
def test_counts_per_lux(gain: str, integration_ms: int, cpl: float) -> None:
    assert counts_per_lux(gain, integration_ms) == pytest.approx(cpl)


def test_lux_equation_takes_the_larger_of_the_two_and_never_goes_negative() -> None:
    # CPL 1.0 at "low" and 408 ms is not a setting, so scale by hand: "low", 100 ms is CPL 100/408.
    cpl = 100 / 408
    # Little infrared: Lux1 = (1000 - 1.64 x 200) / CPL wins over Lux2 = (590 - 172) / CPL.
    assert illuminance_lux(1000, 200, gain="low", integration_ms=100) == pytest.approx(672 / cpl)
    # Much infrared: Lux1 = 1000 - 1.64 x 700 < 0, Lux2 = 590 - 602 < 0: 0, not a negative lux.
    assert illuminance_lux(1000, 700, gain="low", integration_ms=100) == 0.0
    # In between Lux2 wins: C1/C0 = 0.55, Lux1 = 98, Lux2 = 117.
    assert illuminance_lux(1000, 550, gain="low", integration_ms=100) == pytest.approx(117 / cpl)
    assert illuminance_lux(0, 0, gain="max", integration_ms=600) == 0.0


def test_gain_and_time_divide_out() -> None:
    base = illuminance_lux(1000, 100, gain="low", integration_ms=100)
    assert illuminance_lux(25000, 2500, gain="medium", integration_ms=100) == pytest.approx(base)
    assert illuminance_lux(6000, 600, gain="low", integration_ms=600) == pytest.approx(base)


@pytest.mark.parametrize(("gain", "integration_ms", "byte"), [
    ("low", 100, 0x00), ("medium", 100, 0x10), ("high", 100, 0x20), ("max", 100, 0x30),
    ("low", 200, 0x01), ("low", 600, 0x05), ("max", 600, 0x35), ("medium", 300, 0x12),
])
def test_control_byte(gain: str, integration_ms: int, byte: int) -> None:
    # AGAIN in bits 5:4, ATIME in bits 2:0, SRESET (bit 7) clear.
    assert control_byte(gain, integration_ms) == byte


def test_max_count_and_settle_time() -> None:
    assert max_count(100) == 36863 and max_count(200) == max_count(600) == 65535
    assert settle_s(100) == pytest.approx(0.110) and settle_s(600) == pytest.approx(0.660)


def test_range_checks() -> None:
    with pytest.raises(ValueError, match=r"^gain 'huge': expected one of low, medium, high, max$"):
        counts_per_lux("huge", 100)
    with pytest.raises(ValueError, match=r"^integration time 150 ms: expected one of 100, 200, 300, 400, 500, 600$"):
        max_count(150)


# -- the driver on a fake chip ----------------------------------------------------------------


@pytest.mark.parametrize(("light", "ir_ratio"), [(0.0, 0.25), (3.5, 0.1), (250.0, 0.25), (800.0, 0.5),
                                                 (2000.0, 0.3)])
def test_reads_illuminance(clock: FakeClock, light: float, ir_ratio: float) -> None:
    sensor, _ = rig(TSL2591Model(lux=light, ir_ratio=ir_ratio, clock=clock.monotonic), clock)
    got = values(sensor)
    # The counts are whole numbers: within a count or two of CH0 of the exact value.
    assert got["illuminance"] == pytest.approx(light, abs=2 / counts_per_lux("medium", 100))
    assert got["infrared"] == pytest.approx(got["full_spectrum"] * ir_ratio, abs=1)


def test_open_configures_powers_on_and_waits_one_integration_time(clock: FakeClock) -> None:
    model = TSL2591Model(lux=40.0, clock=clock.monotonic)
    sensor, bus = rig(model, clock, gain="high", integration_ms=400)
    # CONTROL (command 0xA1): high gain, 400 ms; then ENABLE (0xA0): PON | AEN.
    assert bus.writes(0x29) == [b"\xa1\x23", b"\xa0\x03"]
    assert model.enabled and (model.gain, model.integration_ms) == (428.0, 400)
    assert clock.now == pytest.approx(0.440)
    assert values(sensor)["illuminance"] == pytest.approx(40.0, abs=0.01)
    # The status (0xB3) is read before the data, which come in one block from C0DATAL (0xB4).
    assert [(t.op, t.register) for t in bus.log[-2:]] == [("read_byte_data", 0xB3), ("read_i2c_block_data", 0xB4)]


def test_without_the_wait_avalid_is_still_clear(clock: FakeClock) -> None:
    model = TSL2591Model(lux=100.0, clock=clock.monotonic)
    model.write(0xA1, b"\x10")
    model.write(0xA0, b"\x03")
    assert model.read(0xB3, 1) == b"\x00" and model.read(0xB4, 4) == bytes(4)
    clock.advance(0.1)
    assert model.read(0xB3, 1) == b"\x01" and model.read(0xB4, 4) != bytes(4)


def test_a_late_cycle_is_waited_for_once(clock: FakeClock) -> None:
    model = TSL2591Model(lux=100.0, clock=clock.monotonic)
    sensor, _ = rig(model, clock)
    model.write(0xA0, b"\x00")  # powered down and up again behind the driver's back: a new first cycle
    model.write(0xA0, b"\x03")
    before = clock.now
    assert values(sensor)["illuminance"] == pytest.approx(100.0, abs=0.5)
    assert clock.now - before == pytest.approx(0.110)


def test_avalid_never_set_is_an_error(clock: FakeClock) -> None:
    model = TSL2591Model(clock=clock.monotonic)
    model.stuck_invalid = True
    sensor = make(FakeI2CBus([model]), clock)
    sensor.open()
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value) == ('sensor "window" (tsl2591 @ 0x29 on bus 1): no valid result: STATUS 0x00 has '
                                  'AVALID clear one integration time (100 ms) after it was due (did the chip '
                                  'reset or power down?)')


def test_byte_order_is_low_byte_first(clock: FakeClock) -> None:
    model = TSL2591Model()
    model.ch0, model.ch1 = 0x0201, 0x0043
    sensor, bus = rig(model, clock)
    got = values(sensor)
    assert (got["full_spectrum"], got["infrared"]) == (0x0201, 0x0043)
    assert bus.log[-1].data == b"\x01\x02\x43\x00"


@pytest.mark.parametrize(("integration_ms", "ch0", "ch1"), [(100, 36863, 9000), (200, 65535, 9000),
                                                            (600, 20000, 65535)])
def test_saturation_is_an_error(clock: FakeClock, integration_ms: int, ch0: int, ch1: int) -> None:
    model = TSL2591Model()
    model.ch0, model.ch1 = ch0, ch1
    sensor, _ = rig(model, clock, gain="max", integration_ms=integration_ms)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    limit = 36863 if integration_ms == 100 else 65535
    assert str(excinfo.value) == (f'sensor "window" (tsl2591 @ 0x29 on bus 1): saturated: full spectrum {ch0}, '
                                  f'infrared {ch1} counts, the most at {integration_ms} ms is {limit} (use a '
                                  f"lower gain than 'max' or a shorter integration_ms)")


def test_one_count_below_saturation_reads(clock: FakeClock) -> None:
    model = TSL2591Model()
    model.ch0, model.ch1 = 36862, 100
    sensor, _ = rig(model, clock, gain="low")
    assert values(sensor)["illuminance"] == pytest.approx(illuminance_lux(36862, 100, gain="low",
                                                                          integration_ms=100))


def test_bright_light_saturates_the_model(clock: FakeClock) -> None:
    sensor, _ = rig(TSL2591Model(lux=100000.0), clock, gain="medium")
    with pytest.raises(SensorError, match="saturated"):
        sensor.read()


def test_wrong_device_id(clock: FakeClock) -> None:
    bus = FakeI2CBus([TSL2591Model(device_id=0x51)])
    with pytest.raises(SensorError) as excinfo:
        make(bus, clock).open()
    assert str(excinfo.value) == ('sensor "window" (tsl2591 @ 0x29 on bus 1): ID register 0x51, expected 0x50 '
                                  '(is this a TSL2591?)')
    assert bus.writes(0x29) == []  # nothing configured on a chip that is not ours


def test_one_nack_is_retried(clock: FakeClock) -> None:
    sensor, bus = rig(TSL2591Model(lux=320.0), clock)
    bus.fail_next(0x29)
    assert values(sensor)["illuminance"] == pytest.approx(320.0, abs=0.5)
    assert [t.error for t in bus.log].count(121) == 1


def test_unplugged_after_open_is_an_error(clock: FakeClock) -> None:
    sensor, bus = rig(TSL2591Model(), clock)
    bus.detach(0x29)
    with pytest.raises(SensorError) as excinfo:
        sensor.read()
    assert str(excinfo.value).startswith('sensor "window" (tsl2591 @ 0x29 on bus 1): no answer (NACK)')


def test_no_chip(clock: FakeClock) -> None:
    with pytest.raises(SensorError) as excinfo:
        make(FakeI2CBus(), clock).open()
    assert str(excinfo.value).startswith('sensor "window" (tsl2591 @ 0x29 on bus 1): no answer (NACK)')


def test_close_powers_down_and_tolerates_a_missing_chip(clock: FakeClock) -> None:
    model = TSL2591Model()
    sensor, bus = rig(model, clock)
    sensor.close()
    assert bus.writes(0x29)[-1] == b"\xa0\x00" and not model.enabled
    bus.detach(0x29)
    sensor.close()  # no error
    make(FakeI2CBus(), clock).close()  # never opened: nothing to do


def test_channels(clock: FakeClock) -> None:
    channels = make(FakeI2CBus(), clock, gain="low", integration_ms=100).channels()
    assert [(c.quantity, c.unit) for c in channels] == [("illuminance", "lx"), ("full_spectrum", ""),
                                                        ("infrared", "")]
    assert channels[0].resolution == pytest.approx(4.08)
    assert channels[1].resolution == channels[2].resolution == 1.0


# -- the model --------------------------------------------------------------------------------


def test_model_starts_powered_down_and_ignores_read_only_writes() -> None:
    model = TSL2591Model(lux=500.0)
    assert not model.enabled
    assert model.read(0xB4, 4) == bytes(4)
    model.write(0xB2, b"\x00")
    assert model.read(0xB2, 1) == b"\x50"
    assert model.read(0xB1, 2) == b"\x00\x50"  # PID then ID: the pointer auto-increments


def test_model_soft_reset() -> None:
    model = TSL2591Model()
    model.write(0xA0, b"\x03")
    model.write(0xA1, b"\x80")
    assert model.resets == 1 and not model.enabled and model.read(0xA1, 1) == b"\x00"


@pytest.mark.parametrize(("command", "data", "reason"), [
    (0x12, b"", "0x12 is not a command byte"),
    (0x80, b"\x00", "reserved transaction"),
    (0xA2, b"\x00", "register 0x02 does not exist"),
    (0xA1, b"\x06", "CONTROL 0x06: undefined ATIME code"),
    (0xE6, b"\x01", "a special function command takes no data"),
    (0xE1, b"", "reserved transaction or special function"),
])
def test_model_nacks_driver_bugs(command: int, data: bytes, reason: str) -> None:
    with pytest.raises(OSError, match=reason):
        TSL2591Model().write(command, data)


def test_model_reads_past_the_map_nack_and_special_functions_are_accepted() -> None:
    model = TSL2591Model()
    with pytest.raises(OSError, match="read past the register map at 0x18"):
        model.read(0xB6, 4)
    model.write(0xE7, b"")  # clear ALS and no-persist interrupts


def test_encode_counts_inverts_the_driver() -> None:
    ch0, ch1 = encode_counts(250.0, 0.25, gain=25.0, integration_ms=100)
    assert illuminance_lux(ch0, ch1, gain="medium", integration_ms=100) == pytest.approx(250.0, abs=0.2)
    assert encode_counts(1e9, 0.25, integration_ms=100) == (36863, 36863)
    assert encode_counts(1e9, 0.25, integration_ms=200) == (65535, 65535)


# -- config, detection, registration -----------------------------------------------------------


def test_config_defaults() -> None:
    cfg = build_options(TSL2591Config, {}, "sensor[0]", "f.toml")
    assert (cfg.bus, cfg.address, cfg.gain, cfg.integration_ms) == (1, 0x29, "medium", 100)


@pytest.mark.parametrize(("table", "message"), [
    ({"address": 0x39}, "f.toml: sensor[0].address: expected 0x29, found 0x39"),
    ({"gain": "med"}, 'f.toml: sensor[0].gain: expected one of "low", "medium", "high", "max", found "med"'),
    ({"integration_ms": 150}, "f.toml: sensor[0].integration_ms: expected one of 100, 200, 300, 400, 500, 600, "
                              "found 150"),
])
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_options(TSL2591Config, table, "sensor[0]", "f.toml")
    assert str(excinfo.value) == message


def test_docstring_example_parses() -> None:
    (spec,) = example_config(tsl2591, TSL2591).sensors
    assert (spec.name, spec.type, spec.interval_s) == ("window", "tsl2591", 30)
    assert spec.options == TSL2591Config(gain="medium", integration_ms=100)


def test_identify_by_the_id_register() -> None:
    bus = FakeI2CBus([TSL2591Model()])
    assert TSL2591.identify(bus, 0x29) == {"type": "tsl2591", "address": 0x29}
    assert bus.writes(0x29) == [] and bus.log[-1].register == 0xB2  # one byte read, nothing written
    assert TSL2591.identify(FakeI2CBus([TSL2591Model(device_id=0x00)]), 0x29) is None
    assert TSL2591.identify(FakeI2CBus(), 0x29) is None
    assert TSL2591.identify(bus, 0x39) is None


def test_hookimpl_registers_the_sensor() -> None:
    assert tsl2591.sensord_register_sensors() == [TSL2591]
    assert tsl2591.sensord_register_device_models() == [TSL2591Model]
    assert TSL2591.i2c_addresses == (0x29,) and TSL2591Model.DEFAULT_ADDRESS == 0x29
