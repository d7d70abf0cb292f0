"""A fake I2C bus for driver tests, and the chip models that sit on it.

`FakeI2CBus` implements the part of `smbus2.SMBus` drivers may use (`sensord.hardware.I2CBus`)
as strictly as smbus2 on Linux, so a driver that passes its tests behaves the same on a Pi.
Mistakes in the calling code raise `ValueError` before anything reaches the bus (an address
outside 0x03..0x77, a register or byte outside 0..255, an SMBus block over 32 bytes, as smbus2
does). What the device does raises `OSError`: a transaction to an empty address, or one hit by
`fail_next()`, raises errno 121 (EREMOTEIO), which is how Linux reports a NACK. SMBus words are
little-endian, low byte first. `bus.log` records every transaction; `bus.writes(addr)` gives the
bytes each write put on the wire, whichever smbus2 method the driver chose.

Writing a chip model: subclass `I2CDeviceModel`. The bus calls `read(register, length)` and
`write(register, data)` for SMBus calls with a register, `read_raw(length)` and `write_raw(data)`
for those without (`read_byte`, `write_byte`, each `i2c_rdwr` message). By default `read()` and
`write()` go through the raw hooks, as on the wire, so a command-based chip (SHT3x: write a
2-byte command, then read 6 bytes) implements only those. A register-based chip (BME280)
subclasses `RegisterMapDevice`, 256 registers with an auto-incrementing pointer, and reacts to
writes in `on_write()` (soft reset, start a conversion). Raise `self.nack(reason)` where the
chip would not acknowledge, e.g. a read while it is converting.

A made-up thermometer: chip id 0xA1 in register 0x00; writing 1 to register 0x01 starts a
conversion, whose result lands big-endian in 0x02..0x03 in hundredths of a degree:

>>> class Thermo(RegisterMapDevice):
...     def __init__(self, celsius: float) -> None:
...         super().__init__(address=0x48, registers={0x00: 0xA1}, read_only=[0x00, 0x02, 0x03])
...         self.celsius = celsius
...     def on_write(self, register: int, value: int) -> None:
...         if register == 0x01 and value == 1:
...             self.poke(0x02, round(self.celsius * 100).to_bytes(2, "big"))
>>> bus = FakeI2CBus([Thermo(21.5)])
>>> bus.read_byte_data(0x48, 0x00)
161
>>> bus.write_byte_data(0x48, 0x01, 1)
>>> int.from_bytes(bytes(bus.read_i2c_block_data(0x48, 0x02, 2)), "big") / 100
21.5
>>> bus.writes(0x48)
[b'\\x01\\x01']
>>> bus.read_byte(0x49)
Traceback (most recent call last):
OSError: [Errno 121] Remote I/O error: no device at 0x49 on fake I2C bus 1

A command-based chip overrides `write_raw()` to remember the command (and NACK unknown ones)
and `read_raw()` to answer it, raising `self.nack("busy")` until the result is ready.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import Any, TypeVar

#: Linux reports a NACK as EREMOTEIO; macOS has no such name, so fall back to Linux's number.
EREMOTEIO: int = getattr(_errno, "EREMOTEIO", 121)
#: i2c_msg flag of a read message (uapi/linux/i2c.h).
I2C_M_RD = 0x0001
#: I2C_SMBUS_BLOCK_MAX: smbus2 refuses longer block transfers with ValueError.
BLOCK_MAX = 32
_RDWR_MAX_MSGS = 42  # I2C_RDWR_IOCTL_MAX_MSGS in drivers/i2c/i2c-dev.c
_RDWR_MAX_LEN = 8192  # i2c-dev refuses longer i2c_rdwr messages
_ADDR_MIN, _ADDR_MAX = 0x03, 0x77  # 0x00-0x02 and 0x78-0x7F are reserved 7-bit addresses

ByteData = bytes | bytearray | Sequence[int]
_Action = Callable[["I2CDeviceModel"], Any]

def _nack(detail: str) -> OSError:
    return OSError(EREMOTEIO, f"Remote I/O error: {detail}")


def _check_range(what: str, value: int, high: int, low: int = 0) -> None:
    if not isinstance(value, int):  # ctypes, under smbus2, refuses floats and strings too
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} {value!r} out of range {low:#x}..{high:#x}")


def _check_addr(addr: int) -> None:
    _check_range("I2C address", addr, _ADDR_MAX, _ADDR_MIN)


def _check_block(length: int) -> None:
    if not 0 <= length <= BLOCK_MAX:  # smbus2 checks the upper bound, the kernel the lower one
        raise ValueError(f"block length {length} out of range 0..{BLOCK_MAX} (I2C_SMBUS_BLOCK_MAX)")


def _data_bytes(data: ByteData) -> bytes:
    try:
        return bytes(data)
    except ValueError:
        raise ValueError(f"data {list(data)!r}: every byte must be in range 0..0xff") from None


class I2CDeviceModel:
    """Base class of a fake chip; see the module docstring for how to write one.

    `address` is where `FakeI2CBus.attach()` puts the chip unless told otherwise. Hooks run under
    the bus lock, one transaction at a time. Raise `self.nack(...)` where the chip would NACK.
    """

    address: int | None = None

    def __init__(self, *, address: int | None = None) -> None:
        if address is not None:
            self.address = address

    def read(self, register: int, length: int) -> ByteData:
        """`length` bytes from `register` (read_byte_data, read_word_data, read_i2c_block_data).
        Default: as on the wire, `write_raw([register])` then `read_raw(length)`."""
        self.write_raw(bytes([register]))
        return self.read_raw(length)

    def write(self, register: int, data: bytes) -> None:
        """Bytes written to `register` (write_byte_data, write_word_data, write_i2c_block_data).
        Default: as on the wire, `write_raw(register + data)`."""
        self.write_raw(bytes([register]) + data)

    def read_raw(self, length: int) -> ByteData:
        """`length` bytes read without a register (read_byte, an i2c_rdwr read message)."""
        raise NotImplementedError(f"{type(self).__name__} does not model raw reads (read_raw)")

    def write_raw(self, data: bytes) -> None:
        """Bytes written without a register (write_byte, an i2c_rdwr write message)."""
        raise NotImplementedError(f"{type(self).__name__} does not model raw writes (write_raw)")

    def nack(self, reason: str) -> OSError:
        """The error to raise from a hook where the real chip would not acknowledge."""
        where = f" at {self.address:#04x}" if self.address is not None else ""
        return _nack(f"{type(self).__name__}{where} NACK: {reason}")


_M = TypeVar("_M", bound=I2CDeviceModel)


class RegisterMapDevice(I2CDeviceModel):
    """A chip with 256 byte-wide registers and an auto-incrementing register pointer.

    `registers` sets initial contents: `{0xD0: 0x60, 0x88: calibration_bytes}`. Writes to a
    register in `read_only` are ignored, as real chips do, but still reach `on_write()`. The
    pointer wraps from 0xFF to 0x00. Chips that take writes as register/value pairs, or that do
    not auto-increment, override `write_raw()`.
    """

    def __init__(self, *, address: int | None = None,
                 registers: Mapping[int, int | ByteData] | None = None,
                 read_only: Iterable[int] = ()) -> None:
        super().__init__(address=address)
        #: The register contents; tests may read and set them directly.
        self.regs = bytearray(256)
        self.read_only = frozenset(read_only)
        #: The register the next raw read or write starts at.
        self.pointer = 0
        for register, value in (registers or {}).items():
            self.poke(register, value)

    def poke(self, register: int, data: int | ByteData) -> None:
        """Set registers from `register` on, bypassing read-only checks and hooks."""
        raw = bytes([data]) if isinstance(data, int) else _data_bytes(data)
        _check_range("register", register, 0xFF)
        _check_range("last register", register + len(raw) - 1, 0xFF)
        self.regs[register:register + len(raw)] = raw

    def peek(self, register: int, length: int = 1) -> bytes:
        """The contents of `length` registers from `register` on, bypassing `on_read()`."""
        return bytes(self.regs[register:register + length])

    def on_read(self, register: int) -> int:
        """The value a read of `register` returns. Override for computed or clear-on-read
        registers."""
        return self.regs[register]

    def on_write(self, register: int, value: int) -> None:
        """Called after each byte written to `register` (stored unless read-only). Override to
        react: soft reset, start a conversion."""

    def read(self, register: int, length: int) -> ByteData:
        self.pointer = register
        return self.read_raw(length)

    def write(self, register: int, data: bytes) -> None:
        self.pointer = register
        self._write_at_pointer(data)

    def read_raw(self, length: int) -> ByteData:
        out = bytearray()
        for _ in range(length):
            out.append(self.on_read(self.pointer))
            self.pointer = (self.pointer + 1) & 0xFF
        return out

    def write_raw(self, data: bytes) -> None:
        # The first byte of a write sets the pointer; a write of only that byte precedes a read.
        if data:
            self.pointer = data[0]
            self._write_at_pointer(data[1:])

    def _write_at_pointer(self, data: bytes) -> None:
        for value in data:
            register = self.pointer
            if register not in self.read_only:
                self.regs[register] = value
            self.pointer = (register + 1) & 0xFF
            self.on_write(register, value)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One recorded transaction, or one message of an `i2c_rdwr` call.

    `op` is the smbus2 method name, or `i2c_rdwr:read` / `i2c_rdwr:write`; `data` holds the
    bytes written or read (SMBus words low byte first); `error` is the errno if it failed.
    """

    op: str
    addr: int
    register: int | None
    data: bytes
    error: int | None = None

    @property
    def is_write(self) -> bool:
        """Whether the transaction wrote to the device."""
        return self.op.startswith("write_") or self.op == "i2c_rdwr:write"

    @property
    def wire(self) -> bytes:
        """The bytes after the address byte on the wire: the register, if any, then the data."""
        prefix = b"" if self.register is None else bytes([self.register])
        return prefix + self.data


class FakeI2CBus:
    """An in-memory `smbus2.SMBus` with chip models attached by address.

    `FakeI2CBus({0x76: Bme280Model()})`, `FakeI2CBus([model])` (at `model.address`) or
    `bus.attach(model)`. `force` arguments are accepted and ignored, as with a single user.
    """

    def __init__(self, devices: Mapping[int, I2CDeviceModel] | Iterable[I2CDeviceModel] | None = None,
                 *, number: int = 1) -> None:
        self.number = number
        #: Every transaction so far, oldest first; tests may clear it.
        self.log: list[Transaction] = []
        self._devices: dict[int, I2CDeviceModel] = {}
        self._failures: list[list[Any]] = []  # [addr or None, remaining count, errno]
        self._closed = False
        self._lock = threading.RLock()
        if isinstance(devices, Mapping):
            for addr, model in devices.items():
                self.attach(model, addr)
        else:
            for model in devices or ():
                self.attach(model)

    # -- set-up and inspection --------------------------------------------------------------

    def attach(self, model: _M, addr: int | None = None) -> _M:
        """Put `model` at `addr` (default `model.address`) and return it."""
        addr = model.address if addr is None else addr
        if addr is None:
            raise ValueError(f"{type(model).__name__} has no address: pass attach(model, addr)")
        _check_addr(addr)
        with self._lock:
            if addr in self._devices:
                raise ValueError(f"address {addr:#04x} already has {type(self._devices[addr]).__name__}")
            self._devices[addr] = model
        return model

    def detach(self, addr: int) -> I2CDeviceModel:
        """Remove and return the chip at `addr` (it is unplugged: further transactions NACK)."""
        with self._lock:
            return self._devices.pop(addr)

    @property
    def devices(self) -> dict[int, I2CDeviceModel]:
        """A copy of the attached chips by address."""
        with self._lock:
            return dict(self._devices)

    def fail_next(self, addr: int | None = None, count: int = 1, errno: int = EREMOTEIO) -> None:
        """Make the next `count` transactions to `addr` (or to any address) fail with
        `OSError(errno)`, a NACK by default, without reaching the chip. An `i2c_rdwr` call counts
        as one transaction."""
        if addr is not None:
            _check_addr(addr)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._failures.append([addr, count, errno])

    def writes(self, addr: int) -> list[bytes]:
        """The bytes each successful write to `addr` put on the wire, register first
        (`write_byte_data(a, 0xF4, 0x27)` gives `b"\\xf4\\x27"`), oldest first. The register
        phase of a read is not a write."""
        with self._lock:
            return [t.wire for t in self.log if t.addr == addr and t.is_write and t.error is None]

    @property
    def closed(self) -> bool:
        """Whether `close()` was called; every transaction after it raises `ValueError`."""
        return self._closed

    def close(self) -> None:
        """Close the bus; closing twice is fine, as with smbus2."""
        with self._lock:
            self._closed = True

    # -- smbus2.SMBus ------------------------------------------------------------------------

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        """SMBus quick command: the address byte alone, as `i2cdetect` probes. Acknowledged by
        any attached chip, without reaching its model; NACK (errno 121) where none is."""
        self._smbus("write_quick", i2c_addr, None, b"", lambda m: None)

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        """Read one byte without a register."""
        return self._smbus("read_byte", i2c_addr, None, b"", lambda m: m.read_raw(1), 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        """Write one byte without a register."""
        _check_range("value", value, 0xFF)
        self._smbus("write_byte", i2c_addr, None, bytes([value]), lambda m: m.write_raw(bytes([value])))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read the byte at `register`."""
        return self._smbus("read_byte_data", i2c_addr, register, b"", lambda m: m.read(register, 1), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """Write one byte to `register`."""
        _check_range("value", value, 0xFF)
        data = bytes([value])
        self._smbus("write_byte_data", i2c_addr, register, data, lambda m: m.write(register, data))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read a 16-bit word at `register`; SMBus sends the low byte first."""
        data = self._smbus("read_word_data", i2c_addr, register, b"", lambda m: m.read(register, 2), 2)
        return int.from_bytes(data, "little")

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """Write a 16-bit word to `register`, low byte first."""
        _check_range("word", value, 0xFFFF)
        data = value.to_bytes(2, "little")
        self._smbus("write_word_data", i2c_addr, register, data, lambda m: m.write(register, data))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        """Read `length` (at most 32) bytes from `register` on."""
        _check_block(length)
        data = self._smbus("read_i2c_block_data", i2c_addr, register, b"",
                           lambda m: m.read(register, length), length)
        return list(data)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: ByteData,
                             force: bool | None = None) -> None:
        """Write up to 32 bytes from `register` on."""
        _check_block(len(data))
        raw = _data_bytes(data)
        self._smbus("write_i2c_block_data", i2c_addr, register, raw, lambda m: m.write(register, raw))

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Run `smbus2.i2c_msg` read and write messages as one combined transaction.

        Messages are duck-typed (`addr`, `flags`, `len`, `buf`); read results are written into
        `buf` so `list(msg)` gives them, as with smbus2. A NACK aborts the remaining messages.
        """
        if not 1 <= len(i2c_msgs) <= _RDWR_MAX_MSGS:
            raise ValueError(f"i2c_rdwr takes 1..{_RDWR_MAX_MSGS} messages, got {len(i2c_msgs)}")
        for msg in i2c_msgs:
            _check_addr(msg.addr)
            _check_range("i2c_msg length", msg.len, _RDWR_MAX_LEN)
        with self._lock:
            self._begin("i2c_rdwr", [msg.addr for msg in i2c_msgs], None)
            for msg in i2c_msgs:
                if msg.flags & I2C_M_RD:
                    data = self._run("i2c_rdwr:read", msg.addr, None, b"",
                                     methodcaller("read_raw", msg.len), msg.len)
                    _fill(msg, data)
                else:
                    written = bytes(msg.buf[:msg.len])
                    self._run("i2c_rdwr:write", msg.addr, None, written, methodcaller("write_raw", written))

    # -- internals ---------------------------------------------------------------------------

    def _smbus(self, op: str, addr: int, register: int | None, written: bytes,
               action: _Action, read_length: int | None = None) -> bytes:
        _check_addr(addr)
        if register is not None:
            _check_range("register", register, 0xFF)
        with self._lock:
            self._begin(op, [addr], register)
            return self._run(op, addr, register, written, action, read_length)

    def _begin(self, op: str, addrs: list[int], register: int | None) -> None:
        """Refuse a transaction on a closed bus, or fail it as `fail_next()` asked."""
        if self._closed:
            # Like I/O on a closed file: a bug in the caller, not a bus error to retry.
            raise ValueError(f"I2C operation on closed fake I2C bus {self.number}")
        for failure in self._failures:
            want, _, errno = failure
            if want is None or want in addrs:
                failure[1] -= 1
                if failure[1] <= 0:
                    self._failures.remove(failure)
                addr = addrs[0] if want is None else want
                self.log.append(Transaction(op, addr, register, b"", errno))
                raise OSError(errno, f"{os.strerror(errno)}: injected by fail_next() at {addr:#04x}")

    def _run(self, op: str, addr: int, register: int | None, written: bytes,
             action: _Action, read_length: int | None = None) -> bytes:
        """Run one transaction on the chip at `addr` and record it."""
        model = self._devices.get(addr)
        try:
            if model is None:
                raise _nack(f"no device at {addr:#04x} on fake I2C bus {self.number}")
            result = action(model)
        except OSError as exc:
            self.log.append(Transaction(op, addr, register, written, exc.errno))
            raise
        data = written if read_length is None else _reply(model, result, read_length)
        self.log.append(Transaction(op, addr, register, data))
        return data


def _reply(model: I2CDeviceModel, result: ByteData, length: int) -> bytes:
    """Check a model's answer to a read: a model bug should fail loudly, not look like data."""
    try:
        data = bytes(result)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{type(model).__name__} returned {result!r}, not bytes 0..0xff") from exc
    if len(data) != length:
        raise ValueError(f"{type(model).__name__} returned {len(data)} bytes for a {length}-byte read")
    return data


def _fill(msg: Any, data: bytes) -> None:
    """Write read results into an i2c_msg's buffer, so `list(msg)` and `bytes(msg)` see them."""
    buf = msg.buf
    if isinstance(buf, list):
        buf[:len(data)] = list(data)
    elif isinstance(buf, ctypes._Pointer):  # smbus2's i2c_msg: POINTER(c_char) to `len` bytes
        ctypes.memmove(buf, data, len(data))
    else:  # a writable buffer (bytearray, ctypes array); read-only ones raise TypeError
        memoryview(buf).cast("B")[:len(data)] = data
