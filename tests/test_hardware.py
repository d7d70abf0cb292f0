"""Bus robustness: one lock per bus, NACK retries, and a stuck sensor isolated from the others."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sensord import I2CConfig, I2CSensor, Reading, SensorError, field_range
from sensord.config import SensorSpec
from sensord.hardware import Hardware, SerialPort
from sensord.scheduler import Scheduler
from sensord.sensor import Sample
from sensord.testing import FakeI2CBus, FakeSerialPorts, RegisterMapDevice


@dataclass(frozen=True)
class ChipConfig(I2CConfig):
    address: int = field_range(0x10, ge=0x10, le=0x11)


class Chip(I2CSensor):
    """Reads register 0 of a register-map chip; `hang` makes the read block inside the transaction."""

    type_name = "chip"
    Config = ChipConfig
    hang: threading.Event | None = None

    def read(self) -> list[Reading]:
        def transaction(bus: object) -> int:
            if self.hang is not None:
                self.hang.wait(10)
            return self.bus.read_byte_data(self.address, 0)

        return [Reading("value", self.transfer(transaction), "")]


def make(bus: FakeI2CBus, address: int, hardware: Hardware) -> Chip:
    return Chip(ChipConfig(address=address), name=f"c{address:x}", hardware=hardware)


@pytest.fixture
def hardware() -> Hardware:
    bus = FakeI2CBus({0x10: RegisterMapDevice(registers={0: 7}), 0x11: RegisterMapDevice(registers={0: 9})})
    return Hardware(i2c_factory=lambda n: bus, sleep=lambda s: None, bus_lock_timeout_s=0.1)


def test_nack_is_retried_then_reported(hardware: Hardware) -> None:
    chip = make(hardware.i2c(1).bus, 0x10, hardware)  # type: ignore[arg-type]
    hardware.i2c(1).bus.fail_next(addr=0x10, count=2)
    assert chip.read() == [Reading("value", 7, "")]
    hardware.i2c(1).bus.fail_next(addr=0x10, count=3)
    with pytest.raises(SensorError) as info:
        chip.read()
    assert str(info.value) == ('sensor "c10" (chip @ 0x10 on bus 1): no answer (NACK): is it wired, powered, '
                               "at this address?")


def test_stuck_sensor_makes_the_others_fail_fast_not_hang(hardware: Hardware) -> None:
    stuck, other = make(None, 0x10, hardware), make(None, 0x11, hardware)  # type: ignore[arg-type]
    stuck.hang = threading.Event()
    worker = threading.Thread(target=stuck.read)
    worker.start()
    try:
        threading.Event().wait(0.05)  # the stuck read now holds the bus
        with pytest.raises(SensorError, match=r"I2C bus 1 busy: another sensor has held it for more than 0.1 s"):
            other.read()
    finally:
        stuck.hang.set()
        worker.join()
    assert other.read() == [Reading("value", 9, "")]  # the bus is free again


def test_stuck_sensor_does_not_stop_the_others_cadence(hardware: Hardware) -> None:
    stuck, other = make(None, 0x10, hardware), make(None, 0x11, hardware)  # type: ignore[arg-type]
    stuck.hang = threading.Event()
    specs = [SensorSpec(index=i, name=s.name, type="chip", interval_s=0.05, options=s.config, timeout_s=0.3)
             for i, s in enumerate((stuck, other))]
    samples: list[Sample] = []
    sched = Scheduler(list(zip(specs, (stuck, other), strict=True)), sink=samples.extend)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(1.0)
        stuck.hang.set()  # the chip lets go of the bus
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    # While the stuck chip held the bus, the other reported "busy" (not a hang); afterwards it reads again.
    assert "busy" in sched.stats["c11"].last_error or sched.stats["c11"].failed_total > 0
    late = [s for s in samples if s.sensor == "c11"]
    assert late and late[-1].value == 9


def test_nack_on_one_sensor_leaves_the_others_on_the_bus_unaffected(hardware: Hardware) -> None:
    bus = hardware.i2c(1).bus
    first, second = make(None, 0x10, hardware), make(None, 0x11, hardware)  # type: ignore[arg-type]
    bus.fail_next(addr=0x10, count=10)  # the chip at 0x10 stops answering
    with pytest.raises(SensorError, match="no answer"):
        first.read()
    assert second.read() == [Reading("value", 9, "")]
    assert [t.addr for t in bus.log if t.error is None][-1] == 0x11


# -- serial ports -----------------------------------------------------------------------------------


def _refusing(code: int) -> Callable[[str, int, float], SerialPort]:
    def open_port(path: str, baudrate: int, timeout_s: float) -> SerialPort:
        raise OSError(code, f"could not open port {path}: [Errno {code}] {os.strerror(code)}")

    return open_port


@pytest.mark.parametrize(("code", "hint"), [
    (errno.ENOENT, r"no such device: enable the UART \(enable_uart=1 in /boot/firmware/config.txt, serial console "
                   r"off"),
    (errno.EACCES, r"permission denied: the user running sensord must be in the group owning the port, dialout"),
    (errno.EAGAIN, r"in use by another program \(a serial console, getty, ModemManager\?\)"),
    (errno.EIO, r"could not open port /dev/serial0: \[Errno 5\] Input/output error"),
])
def test_a_serial_port_that_cannot_be_opened_names_sensor_port_and_fix(code: int, hint: str) -> None:
    hardware = Hardware(serial_factory=_refusing(code))
    with pytest.raises(SensorError, match=rf'^sensor "co2" \(mhz19\): cannot open serial port /dev/serial0: {hint}'):
        hardware.serial("/dev/serial0", baudrate=9600, timeout_s=1.0, owner='sensor "co2" (mhz19)')


def test_without_pyserial_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)  # import serial: ImportError
    with pytest.raises(SensorError, match=r"pyserial is not installed \(Debian: apt install python3-serial"):
        Hardware().serial("/dev/serial0", baudrate=9600, timeout_s=1.0, owner="s")


def test_a_serial_port_has_one_owner_until_released() -> None:
    ports = FakeSerialPorts()
    ports.attach("/dev/serial0", None)
    hardware = Hardware(serial_factory=ports.open)
    port = hardware.serial("/dev/serial0", baudrate=9600, timeout_s=1.0, owner='sensor "a" (pms5003)')
    with pytest.raises(SensorError, match=r'sensor "b" \(mhz19\): serial port /dev/serial0 is already used by '
                                          r'sensor "a" \(pms5003\)'):
        hardware.serial("/dev/serial0", baudrate=9600, timeout_s=1.0, owner='sensor "b" (mhz19)')
    hardware.release_serial("/dev/serial0")
    assert not port.is_open  # type: ignore[attr-defined]
    hardware.serial("/dev/serial0", baudrate=9600, timeout_s=1.0, owner='sensor "b" (mhz19)')
    hardware.close()
    assert not port.is_open  # type: ignore[attr-defined]


def test_the_default_factory_opens_a_real_tty_with_pyserial() -> None:
    """pyserial on a pseudo-terminal: 9600 8N1, the timeout, exclusive access, bytes both ways."""
    pytest.importorskip("serial")
    controller, device = os.openpty()
    path = os.ttyname(device)
    hardware = Hardware()
    try:
        port = hardware.serial(path, baudrate=9600, timeout_s=0.05, owner="s")
        assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (9600, 8, "N", 1)  # type: ignore[attr-defined]
        os.write(controller, b"\x42\x4d")
        assert port.read(2) == b"\x42\x4d"
        assert port.read(1) == b""  # the timeout, not a hang
        port.write(b"\xff\x01")
        assert os.read(controller, 2) == b"\xff\x01"
        with pytest.raises(SensorError, match="in use by another program"):
            Hardware().serial(path, baudrate=9600, timeout_s=0.05, owner="t")  # the exclusive lock
    finally:
        hardware.close()
        os.close(controller)
        os.close(device)
