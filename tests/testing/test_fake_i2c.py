"""Tests of `sensord.testing.i2c`: the fake bus must be as strict as smbus2 on Linux."""

from __future__ import annotations

import doctest
import errno
import threading

import pytest
from smbus2 import i2c_msg

import sensord.testing.i2c
from sensord.testing import EREMOTEIO, FakeI2CBus, I2CDeviceModel, RegisterMapDevice, Transaction


class CommandChip(I2CDeviceModel):
    """Like an SHT3x: a 2-byte command starts a measurement, a raw read of 6 bytes fetches it,
    and a read before any command is NACKed."""

    address = 0x44

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[bytes] = []

    def write_raw(self, data: bytes) -> None:
        if len(data) != 2:
            raise self.nack(f"commands are 2 bytes, got {data.hex()}")
        self.commands.append(data)

    def read_raw(self, length: int) -> bytes:
        if not self.commands:
            raise self.nack("no measurement started")
        return bytes([0x66, 0x66, 0x93, 0x80, 0x00, 0xA2])[:length]


class ResettableChip(RegisterMapDevice):
    """Register map with a soft-reset register (0xE0 <- 0xB6) and a read-only chip id."""

    def __init__(self) -> None:
        super().__init__(address=0x76, registers={0xD0: 0x60}, read_only=[0xD0, 0xE0])
        self.resets = 0

    def on_write(self, register: int, value: int) -> None:
        if register == 0xE0 and value == 0xB6:
            self.resets += 1
            self.regs[0xF4] = 0x00


@pytest.fixture
def chip() -> RegisterMapDevice:
    return RegisterMapDevice(address=0x76, registers={0x88: bytes(range(1, 27)), 0xD0: 0x60})


@pytest.fixture
def bus(chip: RegisterMapDevice) -> FakeI2CBus:
    return FakeI2CBus({0x76: chip})


def test_module_docstring_examples_run() -> None:
    result = doctest.testmod(sensord.testing.i2c)
    assert result.attempted > 0
    assert result.failed == 0


def test_empty_address_nacks_with_eremoteio(bus: FakeI2CBus) -> None:
    with pytest.raises(OSError) as excinfo:
        bus.read_byte_data(0x77, 0xD0)
    assert excinfo.value.errno == EREMOTEIO == 121
    assert "0x77" in str(excinfo.value)
    assert bus.log[-1] == Transaction("read_byte_data", 0x77, 0xD0, b"", EREMOTEIO)


@pytest.mark.parametrize("addr", [0x00, 0x02, 0x78, 0x7F, 0x80, -1])
def test_reserved_or_invalid_address_is_a_value_error(bus: FakeI2CBus, addr: int) -> None:
    with pytest.raises(ValueError, match="address"):
        bus.read_byte(addr)
    assert bus.log == []


@pytest.mark.parametrize(("register", "value"), [(256, 0), (-1, 0), (0xF4, 256), (0xF4, -1)])
def test_register_and_value_out_of_range(bus: FakeI2CBus, register: int, value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        bus.write_byte_data(0x76, register, value)
    assert bus.writes(0x76) == []


def test_word_out_of_range_and_block_bytes_out_of_range(bus: FakeI2CBus) -> None:
    with pytest.raises(ValueError):
        bus.write_word_data(0x76, 0xF4, 0x10000)
    with pytest.raises(ValueError, match="0..0xff"):
        bus.write_i2c_block_data(0x76, 0xF4, [1, 300])
    assert bus.writes(0x76) == []


def test_blocks_longer_than_32_bytes_raise_like_smbus2(bus: FakeI2CBus) -> None:
    assert len(bus.read_i2c_block_data(0x76, 0x80, 32)) == 32
    with pytest.raises(ValueError, match="32"):
        bus.read_i2c_block_data(0x76, 0x80, 33)
    with pytest.raises(ValueError, match="32"):
        bus.write_i2c_block_data(0x76, 0x80, [0] * 33)


def test_block_read_auto_increments(bus: FakeI2CBus, chip: RegisterMapDevice) -> None:
    assert bus.read_i2c_block_data(0x76, 0x88, 4) == [1, 2, 3, 4]
    # The pointer now stands after the block: a raw read continues from there.
    assert chip.pointer == 0x8C
    assert bus.read_byte(0x76) == 5


def test_block_write_auto_increments_and_pointer_wraps(bus: FakeI2CBus, chip: RegisterMapDevice) -> None:
    bus.write_i2c_block_data(0x76, 0xFE, [0xAA, 0xBB, 0xCC])
    assert chip.peek(0xFE, 2) == b"\xaa\xbb"
    assert chip.regs[0x00] == 0xCC


def test_read_only_registers_ignore_writes_but_hooks_see_them() -> None:
    chip = ResettableChip()
    bus = FakeI2CBus([chip])
    bus.write_byte_data(0x76, 0xF4, 0x27)
    bus.write_byte_data(0x76, 0xD0, 0x00)
    bus.write_byte_data(0x76, 0xE0, 0xB6)
    assert bus.read_byte_data(0x76, 0xD0) == 0x60
    assert bus.read_byte_data(0x76, 0xE0) == 0x00
    assert chip.resets == 1
    assert chip.regs[0xF4] == 0x00


def test_word_is_little_endian_like_smbus(bus: FakeI2CBus, chip: RegisterMapDevice) -> None:
    chip.poke(0x10, b"\x34\x12")
    assert bus.read_word_data(0x76, 0x10) == 0x1234
    bus.write_word_data(0x76, 0x20, 0xBEEF)
    assert chip.peek(0x20, 2) == b"\xef\xbe"
    assert bus.writes(0x76) == [b"\x20\xef\xbe"]


def test_writes_are_recorded_as_wire_bytes_whatever_the_method(bus: FakeI2CBus) -> None:
    bus.write_byte_data(0x76, 0xF4, 0x27)
    bus.write_i2c_block_data(0x76, 0xF2, [0x01, 0x02])
    bus.write_byte(0x76, 0xF7)
    bus.i2c_rdwr(i2c_msg.write(0x76, [0xF5, 0xA0]))
    bus.read_byte_data(0x76, 0xD0)  # the register phase of a read is not a write
    assert bus.writes(0x76) == [b"\xf4\x27", b"\xf2\x01\x02", b"\xf7", b"\xf5\xa0"]
    assert bus.writes(0x77) == []
    assert [t.op for t in bus.log] == ["write_byte_data", "write_i2c_block_data", "write_byte",
                                       "i2c_rdwr:write", "read_byte_data"]
    assert bus.log[-1].data == b"\x60"


def test_fail_next_nacks_the_next_transactions_without_reaching_the_chip(
        bus: FakeI2CBus, chip: RegisterMapDevice) -> None:
    bus.fail_next(count=2)
    for _ in range(2):
        with pytest.raises(OSError) as excinfo:
            bus.write_byte_data(0x76, 0xF4, 0x27)
        assert excinfo.value.errno == EREMOTEIO
    assert chip.regs[0xF4] == 0
    bus.write_byte_data(0x76, 0xF4, 0x27)
    assert chip.regs[0xF4] == 0x27
    assert bus.writes(0x76) == [b"\xf4\x27"]
    assert [t.error for t in bus.log] == [EREMOTEIO, EREMOTEIO, None]


def test_fail_next_for_one_address_and_other_errno(bus: FakeI2CBus) -> None:
    bus.attach(RegisterMapDevice(), 0x77)
    bus.fail_next(0x77, errno=errno.EIO)
    assert bus.read_byte_data(0x76, 0xD0) == 0x60  # other address unaffected
    with pytest.raises(OSError) as excinfo:
        bus.read_byte_data(0x77, 0xD0)
    assert excinfo.value.errno == errno.EIO
    assert bus.read_byte_data(0x77, 0xD0) == 0


def test_command_style_chip() -> None:
    sensor = CommandChip()
    bus = FakeI2CBus([sensor])
    with pytest.raises(OSError) as excinfo:
        bus.read_byte(0x44)
    assert excinfo.value.errno == EREMOTEIO
    assert "no measurement" in str(excinfo.value)
    bus.i2c_rdwr(i2c_msg.write(0x44, [0x24, 0x00]))
    result = i2c_msg.read(0x44, 6)
    bus.i2c_rdwr(result)
    assert list(result) == [0x66, 0x66, 0x93, 0x80, 0x00, 0xA2]
    # On the wire, write_byte_data(0x44, 0x24, 0x00) is the same 2-byte command.
    bus.write_byte_data(0x44, 0x24, 0x00)
    assert sensor.commands == [b"\x24\x00", b"\x24\x00"]
    with pytest.raises(OSError, match="2 bytes"):
        bus.write_byte(0x44, 0x24)
    assert bus.writes(0x44) == [b"\x24\x00", b"\x24\x00"]


def test_i2c_rdwr_write_then_read_with_repeated_start(bus: FakeI2CBus, chip: RegisterMapDevice) -> None:
    read = i2c_msg.read(0x76, 3)
    bus.i2c_rdwr(i2c_msg.write(0x76, [0x88]), read)
    assert list(read) == [1, 2, 3]
    assert bytes(read) == b"\x01\x02\x03"
    assert [(t.op, t.data) for t in bus.log] == [("i2c_rdwr:write", b"\x88"),
                                                 ("i2c_rdwr:read", b"\x01\x02\x03")]
    # i2c_rdwr is not limited to SMBus's 32 bytes.
    bus.i2c_rdwr(i2c_msg.write(0x76, [0x00, *range(40)]))
    assert chip.peek(0x00, 40) == bytes(range(40))


def test_i2c_rdwr_with_duck_typed_messages(bus: FakeI2CBus) -> None:
    class Msg:
        def __init__(self, addr: int, flags: int, buf: bytearray) -> None:
            self.addr, self.flags, self.buf, self.len = addr, flags, buf, len(buf)

    read = Msg(0x76, 0x0001, bytearray(2))
    bus.i2c_rdwr(Msg(0x76, 0, bytearray([0xD0])), read)
    assert read.buf == bytearray([0x60, 0x00])


def test_i2c_rdwr_nack_aborts_the_rest(bus: FakeI2CBus) -> None:
    read = i2c_msg.read(0x76, 1)
    with pytest.raises(OSError):
        bus.i2c_rdwr(i2c_msg.write(0x76, [0xD0]), i2c_msg.write(0x50, [0x00]), read)
    assert list(read) == [0]
    assert [t.error for t in bus.log] == [None, EREMOTEIO]


def test_fail_next_counts_an_i2c_rdwr_call_once(bus: FakeI2CBus) -> None:
    bus.fail_next(0x76)
    with pytest.raises(OSError):
        bus.i2c_rdwr(i2c_msg.write(0x76, [0xD0]), i2c_msg.read(0x76, 1))
    read = i2c_msg.read(0x76, 1)
    bus.i2c_rdwr(i2c_msg.write(0x76, [0xD0]), read)
    assert list(read) == [0x60]


def test_i2c_rdwr_message_count_is_checked(bus: FakeI2CBus) -> None:
    with pytest.raises(ValueError, match="messages"):
        bus.i2c_rdwr()
    with pytest.raises(ValueError, match="messages"):
        bus.i2c_rdwr(*[i2c_msg.read(0x76, 1) for _ in range(43)])


def test_operations_after_close_raise(bus: FakeI2CBus) -> None:
    assert not bus.closed
    bus.close()
    bus.close()  # idempotent, like smbus2
    assert bus.closed
    with pytest.raises(ValueError, match="closed"):
        bus.read_byte_data(0x76, 0xD0)
    with pytest.raises(ValueError, match="closed"):
        bus.i2c_rdwr(i2c_msg.read(0x76, 1))


def test_attach_detach_and_address_conflicts() -> None:
    bus = FakeI2CBus()
    chip = bus.attach(RegisterMapDevice(address=0x76))
    assert bus.devices == {0x76: chip}
    with pytest.raises(ValueError, match="already"):
        bus.attach(RegisterMapDevice(), 0x76)
    with pytest.raises(ValueError, match="no address"):
        bus.attach(RegisterMapDevice())
    assert bus.detach(0x76) is chip
    with pytest.raises(OSError):
        bus.read_byte(0x76)


def test_model_without_raw_hooks_and_bad_replies_fail_loudly() -> None:
    class Short(I2CDeviceModel):
        def read(self, register: int, length: int) -> bytes:
            return b"\x00"

    bus = FakeI2CBus({0x10: Short(), 0x11: I2CDeviceModel()})
    with pytest.raises(ValueError, match="1 bytes for a 2-byte read"):
        bus.read_word_data(0x10, 0x00)
    with pytest.raises(NotImplementedError, match="read_raw"):
        bus.read_byte(0x11)


def test_transactions_are_serialised_across_threads(bus: FakeI2CBus) -> None:
    def hammer(register: int) -> None:
        for _ in range(200):
            bus.write_byte_data(0x76, register, 0x01)

    threads = [threading.Thread(target=hammer, args=(r,)) for r in (0x10, 0x20, 0x30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(bus.writes(0x76)) == 600
    assert all(len(wire) == 2 for wire in bus.writes(0x76))


def test_fake_i2c_bus_fixture_is_fresh_and_closed_afterwards(fake_i2c_bus: FakeI2CBus) -> None:
    assert isinstance(fake_i2c_bus, FakeI2CBus)
    assert fake_i2c_bus.devices == {}
    assert fake_i2c_bus.log == []
    assert not fake_i2c_bus.closed


def test_i2c_rdwr_refuses_a_read_only_buffer(bus: FakeI2CBus) -> None:
    class Msg:
        addr, flags, len, buf = 0x76, 0x0001, 1, b"\x00"

    with pytest.raises(TypeError):
        bus.i2c_rdwr(Msg())
    assert Msg.buf == b"\x00"


def test_non_integer_arguments_and_bad_fail_count(bus: FakeI2CBus) -> None:
    with pytest.raises(TypeError, match="int"):
        bus.read_byte_data(0x76, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count"):
        bus.fail_next(count=0)
    assert bus.read_byte_data(0x76, 0xD0) == 0x60
