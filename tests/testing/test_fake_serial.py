"""`sensord.testing.serial`: a fake serial port that times out as pyserial's does, on virtual
time, with frame-level device models and injected faults, and its pytest fixture."""

from __future__ import annotations

import errno
import textwrap

import pytest

from sensord.testing.clock import FakeClock
from sensord.testing.fakenode import fake_node_serial
from sensord.testing.models.mhz19 import MHZ19Model
from sensord.testing.models.pms5003 import PMS5003Model
from sensord.testing.serial import FakeSerialPort, FakeSerialPorts, SerialDeviceModel


class Ticker(SerialDeviceModel):
    """Sends b"tick" every second and echoes what it gets 0.1 s later."""

    def __init__(self) -> None:
        super().__init__()
        self.period_s = 1.0

    def stream_frame(self) -> bytes:
        return b"tick"

    def on_bytes(self, data: bytes, now: float) -> None:
        self.send(data, now, 0.1)


def port_with(model: SerialDeviceModel | None, *, timeout: float | None = 0.5) -> FakeSerialPort:
    return FakeSerialPort(model, clock=FakeClock(start=0.0), timeout=timeout)


def test_reads_wait_on_virtual_time_as_pyserials_timeout_does() -> None:
    port = port_with(Ticker(), timeout=1.5)
    assert port.read(4) == b"tick" and port.clock.now == 1.0  # waited for the frame
    assert port.read(6) == b"tick" and port.clock.now == 2.5  # fewer bytes when the timeout runs out
    port.timeout = 0
    assert port.read(4) == b"" and port.clock.now == 2.5  # non-blocking
    port.clock.advance(1.0)
    assert port.in_waiting == 4
    port.timeout = None
    assert port.read(8) == b"ticktick" and port.clock.now == 4.0  # blocks until all came


def test_a_read_that_would_block_forever_fails_instead_of_hanging() -> None:
    port = port_with(None, timeout=None)
    with pytest.raises(AssertionError, match="would block forever"):
        port.read(1)


def test_writes_reach_the_model_and_its_answers_come_later() -> None:
    port = port_with(Ticker(), timeout=0.5)
    port.clock.advance(0.5)
    assert port.write(b"hello") == 5 and port.written == b"hello"
    assert port.model is not None and port.model.received == b"hello"
    assert port.read(5) == b"hello" and port.clock.now == pytest.approx(0.6)


def test_reset_input_buffer_drops_what_came() -> None:
    port = port_with(Ticker(), timeout=1.5)
    port.clock.advance(3.0)
    port.reset_input_buffer()
    assert port.read(4) == b"tick" and port.clock.now == 4.0


def test_faults_unplug_pull_inject_corrupt_truncate() -> None:
    model = PMS5003Model(period_s=1.0)
    port = port_with(model, timeout=1.5)
    port.inject(b"\x00\x42")
    assert port.read(2) == b"\x00\x42" and port.clock.now == 0.0
    port.unplug()
    assert port.read(32) == b"" and port.clock.now == 1.5  # a silent line: the timeout
    port.plug()
    assert port.read(32) == model.frame()
    model.truncate_next()
    assert port.read(32) == model.frame()[:16]  # half a frame, then the timeout
    model.corrupt_next()
    bad = port.read(32)
    assert bad != model.frame() and bad[:4] == model.frame()[:4]
    port.pull()
    with pytest.raises(OSError, match="device disconnected") as info:
        port.read(1)
    assert info.value.errno == errno.EIO


def test_a_wrong_baud_rate_reads_garbage() -> None:
    ports = FakeSerialPorts(clock=FakeClock(start=0.0))
    ports.attach("/dev/serial0", PMS5003Model())
    port = ports.open("/dev/serial0", 115200, 3.0)
    data = port.read(32)
    assert data and b"\x42\x4d" not in data


def test_ports_open_like_pyserial_fails() -> None:
    ports = FakeSerialPorts()
    ports.attach("/dev/serial0", MHZ19Model())
    ports.deny("/dev/ttyUSB0")
    ports.attach("/dev/ttyUSB0", None)
    with pytest.raises(OSError, match="could not open port /dev/ttyAMA0") as missing:
        ports.open("/dev/ttyAMA0", 9600, 1.0)
    with pytest.raises(OSError) as denied:
        ports.open("/dev/ttyUSB0", 9600, 1.0)
    assert (missing.value.errno, denied.value.errno) == (errno.ENOENT, errno.EACCES)
    port = ports.open("/dev/serial0", 9600, 1.0)
    assert port is ports.ports["/dev/serial0"] and port.timeout == 1.0


def test_the_fake_nodes_ports() -> None:
    ports = fake_node_serial()
    assert {path: type(port.model).__name__ for path, port in ports.ports.items()} == {
        "/dev/ttyUSB0": "PMS5003Model", "/dev/ttyUSB1": "SDS011Model", "/dev/serial0": "MHZ19Model"}
    clocks = [port.clock for port in ports.ports.values()]
    ports.advance(2.0)
    assert len({id(c) for c in clocks}) == 3 and {c.now for c in clocks} == {1002.0}


def test_the_fixture_for_plugin_authors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_author=textwrap.dedent("""
        from sensord.testing.models.mhz19 import MHZ19Model
        from sensord_plugins.mhz19 import MHZ19

        def test_co2(fake_serial_ports, fake_hardware, fake_clock):
            port = fake_serial_ports.attach("/dev/ttyUSB0", MHZ19Model(co2_ppm=800))
            sensor = MHZ19(MHZ19.Config(port="/dev/ttyUSB0"), name="co2", hardware=fake_hardware)
            sensor.open()
            assert sensor.read()[0].value == 800
            assert port.clock is fake_clock
            port.unplug()
            try:
                sensor.read()
            except OSError as exc:
                assert "no data" in str(exc)
            else:
                raise AssertionError("no error")
    """))
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
