"""`run_sensor` and the `sensor_harness` fixture: real drivers through scheduler, filters and
encoder on virtual time, without MQTT."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass

import pytest

import sensord.testing
from sensord import Channel, Reading, Sensor, SensorConfig
from sensord.errors import ConfigError
from sensord.hardware import Hardware
from sensord.testing import FakeClock, FakeI2CBus, HarnessResult, MockPins, harness, run_sensor
from sensord.testing.harness import run_sensor as harness_run_sensor
from sensord.testing.models.sht import SHT3xModel
from sensord.testing.pytest_plugin import SensorHarness
from sensord_plugins.digital_input import DigitalInput
from sensord_plugins.sht3x import SHT3x
from sensord_plugins.sim import SimSensor

COUNTER = {"signal": "counter"}


@dataclass(frozen=True)
class NoOptions(SensorConfig):
    pass


class Flaky(Sensor):
    """Reads 0, 1, 2, ...; the reads numbered in `failing` raise (the first numbered 0)."""

    type_name = "flaky"
    Config = NoOptions

    def __init__(self, failing: set[int], error: Exception) -> None:
        super().__init__(NoOptions(), name="flaky", hardware=Hardware(sleep=time.sleep))
        self.failing, self.error, self.calls = failing, error, 0
        self.closed = False

    def channels(self) -> list[Channel]:
        return [Channel("level", "cm", 1.0)]

    def read(self) -> list[Reading]:
        n, self.calls = self.calls, self.calls + 1
        if n in self.failing:
            raise self.error
        self.hardware.sleep(5.0)  # a slow conversion: must cost virtual time only
        return [Reading("level", n, "cm")]

    def close(self) -> None:
        self.closed = True


def test_sim_counter_through_a_delta_filter() -> None:
    started = time.perf_counter()
    result = run_sensor(SimSensor, COUNTER, reads=100, filters=[{"delta": 5}])
    # 100 s of virtual time; the bound leaves room for a loaded CI machine (typically 0.05 s).
    assert time.perf_counter() - started < 10.0
    assert isinstance(result, HarnessResult)
    assert result.values("value", "raw") == list(range(100))
    assert result.times("value", "raw") == [float(k) for k in range(100)]  # the 1 s grid
    assert {s.sensor for s in result.raw} == {"dut"}
    assert result.values("value") == list(range(0, 100, 5))  # a step of exactly 5 passes
    assert result.times("value") == [float(k) for k in range(0, 100, 5)]
    assert (result.reads, result.failures, result.errors) == (100, 0, [])
    assert result.payload.startswith(b"\xd9\xd5\xb1")  # compact
    assert result.decoded == result.filtered and result.lossless
    assert result.channels == {"value": Channel("value", "", 1.0, "total")}  # a counter is a running total


def test_sht3x_through_the_fixture_with_a_temperature_change(
        fake_i2c_bus: FakeI2CBus, fake_clock: FakeClock, sensor_harness: SensorHarness) -> None:
    # The model reads the harness's virtual clock, so it sees the driver's 15 ms waits.
    chip = fake_i2c_bus.attach(SHT3xModel(temperature_c=21.0, humidity_pct=40.0, clock=fake_clock.monotonic))

    def warm_up() -> None:
        chip.temperature_c = 25.0

    result = sensor_harness(SHT3x, {"address": 0x44, "repeatability": "high"}, interval_s=30, reads=10,
                            channel_filters={"temperature": [{"delta": 0.2}]}, at={150: warm_up})
    assert result.failures == 0 and result.reads == 10
    assert result.values("temperature", "raw") == [pytest.approx(21.0, abs=0.01)] * 5 + \
        [pytest.approx(25.0, abs=0.01)] * 5
    assert result.values("temperature") == [pytest.approx(21.0, abs=0.01), pytest.approx(25.0, abs=0.01)]
    assert result.times("temperature") == [0.0, 150.0]
    assert result.values("humidity") == [pytest.approx(40.0, abs=0.01)] * 10  # no filter on humidity
    assert result.quantities == ["temperature", "humidity"]
    assert result.lossless and result.values("temperature", "decoded") == result.values("temperature")
    assert result.channels["temperature"].resolution == 0.01
    assert chip.commands.count(0x2400) == 10  # one high-repeatability measurement per read
    assert fake_clock.monotonic() == pytest.approx(1000.0 + 270 + 0.015)  # the last read's waits


def test_driver_errors_are_counted_and_backed_off_in_virtual_time() -> None:
    flaky = Flaky({1, 2, 3}, ZeroDivisionError("division by zero"))
    started = time.perf_counter()
    result = run_sensor(flaky, interval_s=10, reads=8)
    # The driver's hardware.sleep(5) did not sleep: eight reads would take 40 s if it did.
    assert time.perf_counter() - started < 10.0
    assert result.failures == 3 and result.reads == 5
    assert result.errors == ["ZeroDivisionError: division by zero"] * 3
    # Backoff: retried after 10, 20, 40 s, then back on the 10 s grid.
    assert result.failed_at == [10.0, 20.0, 40.0]
    assert result.times("level") == [0.0, 80.0, 90.0, 100.0, 110.0]
    assert result.values("level") == [0, 4, 5, 6, 7]
    assert flaky.closed  # close() has run when run_sensor returns


def test_pushes_between_polls_are_stamped_in_virtual_time(mock_pins: MockPins,
                                                          sensor_harness: SensorHarness) -> None:
    result = sensor_harness(DigitalInput, {"pin": 17, "quantity": "door", "bounce_s": 0.0}, interval_s=60,
                            duration_s=300, at={90: lambda: mock_pins.set_input(17, high=False),
                                                200: lambda: mock_pins.set_input(17, high=True)})
    assert result.reads == 5  # polls at 0, 60, ..., 240; the two edges are pushes
    assert list(zip(result.times("door", "raw"), result.values("door", "raw"), strict=True)) == [
        (0.0, False), (60.0, False), (90.0, True), (120.0, True), (180.0, True), (200.0, False), (240.0, False)]
    assert result.lossless


def test_a_missing_chip_fails_every_attempt(fake_hardware: Hardware) -> None:
    result = run_sensor(SHT3x, {}, hardware=fake_hardware, interval_s=1, duration_s=60)
    assert result.reads == 0 and result.raw == [] and result.payload == b"" and result.decoded == []
    assert result.failed_at == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    assert result.errors[0] == ('sensor "dut" (sht3x @ 0x44 on bus 1): no answer (NACK): '
                                "is it wired, powered, at this address?")


def test_bad_options_give_the_users_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        run_sensor(SHT3x, {"address": 0x46}, reads=1)
    assert str(info.value) == "<harness>: sensor[0].address: expected an address from 0x44 to 0x45, found 0x46"
    with pytest.raises(ConfigError, match=r'^<harness>: sensor\[0\]\.repeatabilty: unknown key, '
                                          r'did you mean "repeatability"\?$'):
        run_sensor(SHT3x, {"repeatabilty": "low"}, reads=1)
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.interval_s: .*pass interval_s= to run_sensor"):
        run_sensor(SimSensor, {"interval_s": 5}, reads=1)


def test_bad_filters_give_the_users_config_error() -> None:
    with pytest.raises(ConfigError, match=r'^<harness>: sensor\[0\]\.filters\[0\]: unknown filter "delt", '
                                          r'did you mean "delta"\?$'):
        run_sensor(SimSensor, COUNTER, reads=1, filters=[{"delt": 1}])
    with pytest.raises(ConfigError, match=r"^<harness>: sensor\[0\]\.channel_filters\.valu: unknown channel, "
                                          r'did you mean "value"\?'):
        run_sensor(SimSensor, COUNTER, reads=1, channel_filters={"valu": []})


def test_duration_and_actions() -> None:
    seen: list[float] = []
    clock = FakeClock()
    result = run_sensor(SimSensor, COUNTER, clock=clock, interval_s=10, duration_s=60,
                        at={0: lambda: seen.append(clock.monotonic()), 25: lambda: seen.append(clock.monotonic())})
    assert result.times("value") == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]  # [0, 60)
    assert seen == [1000.0, 1025.0]
    assert clock.monotonic() == 1060.0  # ends at the end of the window
    with pytest.raises(ValueError, match="action due at 100 s never ran: the run ended at 20 s"):
        run_sensor(SimSensor, COUNTER, interval_s=10, reads=3, at={100: lambda: None})


def test_other_encodings_round_trip() -> None:
    result = run_sensor(SimSensor, {"signal": "random_walk", "channels": ["t", "rh"]}, reads=20,
                        encoding="senml+json", filters=[{"round": 1}])
    assert result.encoding == "senml+json" and result.payload.startswith(b"[")
    assert result.lossless and len(result.decoded) == 40
    assert result.channels["t"].resolution == 0.1  # after the round filter


def test_a_hung_read_times_out_in_real_time() -> None:
    release, returned = threading.Event(), threading.Event()

    class Hanging(Flaky):
        def read(self) -> list[Reading]:
            if self.calls == 1:  # the read due at 10 s hangs until released
                self.calls += 1
                release.wait(2.0)
                returned.set()
                return []
            return super().read()

    def unhang() -> None:
        release.set()
        returned.wait(2.0)
        time.sleep(0.01)  # lets the worker hand its (ignored) late result to the event loop

    result = run_sensor(Hanging(set(), ValueError()), interval_s=10, reads=3, timeout_s=0.05, at={15: unhang})
    assert result.errors == ['sensor "flaky" (flaky): read did not return within 0.05 s']
    assert result.failed_at == [10.0] and result.values("level") == [0, 2]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="exactly one of reads= or duration_s="):
        run_sensor(SimSensor, COUNTER)
    with pytest.raises(ValueError, match="interval_s: expected a number > 0, found 0"):
        run_sensor(SimSensor, COUNTER, reads=1, interval_s=0)
    with pytest.raises(ValueError, match="unknown encoding 'cbor'"):
        run_sensor(SimSensor, COUNTER, reads=1, encoding="cbor")
    with pytest.raises(TypeError, match="options= is for a sensor class"):
        run_sensor(Flaky(set(), ValueError()), {"x": 1}, reads=1)


def test_the_docstring_example_passes_as_a_plugin_authors_test(pytester: pytest.Pytester) -> None:
    doc = harness.__doc__ or ""
    example = doc.split("`fake_clock`)::\n", 1)[1].split("\nWhat to know", 1)[0]
    assert len(example.strip().splitlines()) <= 10
    pytester.makepyfile(test_author=textwrap.dedent(example))
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_lazy_exports() -> None:
    assert sensord.testing.run_sensor is harness_run_sensor
    code = "import sys, sensord.testing.pytest_plugin; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "sensord.testing.pytest_plugin" in loaded and "sensord.testing.harness" not in loaded
