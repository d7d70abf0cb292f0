"""Bus robustness: one lock per bus, NACK retries, and a stuck sensor isolated from the others."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from sensord import I2CConfig, I2CSensor, Reading, SensorError, field_range
from sensord.config import SensorSpec
from sensord.hardware import Hardware
from sensord.scheduler import Scheduler
from sensord.sensor import Sample
from sensord.testing import FakeI2CBus, RegisterMapDevice


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
