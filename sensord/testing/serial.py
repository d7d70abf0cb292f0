"""A fake serial port for drivers of UART sensors, at the level of bytes and frames, on virtual time.

`FakeSerialPort` behaves as pyserial's `serial.Serial` does for a driver (`read(size)` honours
`timeout` as pyserial's `timeout=` does, `write`, `reset_input_buffer`, `in_waiting`), with a
`SerialDeviceModel` at the other end of the wire: the model gets the bytes the driver writes
and sends frames back (replies to commands, and frames of its own in a streaming mode) at times
on a `FakeClock`. A read that waits moves that clock, so a test never sleeps.

    clock = FakeClock()
    ports = FakeSerialPorts(clock=clock)
    sensor = ports.attach("/dev/serial0", PMS5003Model(pm2_5=12))
    hardware = Hardware(serial_factory=ports.open, sleep=clock.advance)

Faults: `port.unplug()` (the sensor's wires are off: writes vanish, reads time out), `port.pull()`
(a USB adapter pulled out: reads and writes raise as pyserial does), `port.inject(data)` (bytes
on the line: garbage, a partial frame), the model's `corrupt_next()` (a bad checksum) and
`truncate_next()` (a frame cut short), and `ports.deny(path)` (open fails, EACCES).
`sensord.testing.fakenode.fake_node_serial()` gives the fake node's ports (`--fake`).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, ClassVar

from .clock import FakeClock

if TYPE_CHECKING:
    from sensord.hardware import SerialPort


class SerialDeviceModel:
    """One device at the end of a serial line: what it answers and when it talks on its own.

    Subclasses implement `on_bytes(data, now)` (bytes the host wrote, in any chunks; keep a
    buffer) and call `send(frame, now, delay_s)` for a reply; a device that streams sets
    `period_s` (None: silent) and implements `stream_frame()`. `DEFAULT_PORT` is where the fake
    node attaches it; `BAUDRATE` the line speed it talks at (a port opened at another speed
    reads garbage, as a real one does)."""

    DEFAULT_PORT: ClassVar[str] = "/dev/serial0"
    BAUDRATE: ClassVar[int] = 9600

    def __init__(self) -> None:
        #: Every byte the host wrote, in order.
        self.received = bytearray()
        #: Seconds between streamed frames; None when the device talks only when asked.
        self.period_s: float | None = None
        self._next_stream: float | None = None
        self._pending: list[tuple[float, bytes]] = []
        self._corrupt = 0
        self._truncate = 0

    # -- the device's behaviour (subclasses) ---------------------------------------------------------

    def on_bytes(self, data: bytes, now: float) -> None:
        """The host wrote `data` at `now`. Default: ignored."""

    def stream_frame(self) -> bytes:
        """The next frame sent on its own while `period_s` is set."""
        raise NotImplementedError

    def send(self, frame: bytes, now: float, delay_s: float = 0.0) -> None:
        """Send `frame` at `now + delay_s` (the faults below applied)."""
        self._pending.append((now + delay_s, self._faulted(frame)))
        self._pending.sort(key=lambda item: item[0])

    def start_stream(self, now: float, first_after_s: float | None = None) -> None:
        """Stream a frame every `period_s`, the first after `first_after_s` (default one period)."""
        if self.period_s is not None:
            self._next_stream = now + (self.period_s if first_after_s is None else first_after_s)

    def power_on(self, now: float) -> None:
        """The port it is attached to exists from `now` (the fake clock's time): a streaming
        device starts its stream."""
        if self.period_s is not None and self._next_stream is None:
            self.start_stream(now)

    def stop_stream(self) -> None:
        self._next_stream = None

    # -- faults ------------------------------------------------------------------------------------------

    def corrupt_next(self, frames: int = 1) -> None:
        """The next `frames` frames sent carry a wrong checksum (one data bit flipped)."""
        self._corrupt += frames

    def truncate_next(self, frames: int = 1) -> None:
        """The next `frames` frames are cut off halfway (the sensor reset mid-frame)."""
        self._truncate += frames

    def _faulted(self, frame: bytes) -> bytes:
        if self._corrupt:
            self._corrupt -= 1
            frame = frame[:4] + bytes([frame[4] ^ 0x01]) + frame[5:]  # byte 4 is in every checksum here
        if self._truncate:
            self._truncate -= 1
            frame = frame[:len(frame) // 2]
        return frame

    # -- what the port calls -----------------------------------------------------------------------------

    def write(self, data: bytes, now: float) -> None:
        self.received += data
        self.on_bytes(data, now)

    def next_at(self) -> float | None:
        """When the device next sends something, None if it never will unless asked."""
        times = [t for t in (self._pending[0][0] if self._pending else None, self._next_stream) if t is not None]
        return min(times) if times else None

    def output_until(self, now: float) -> bytes:
        """Everything the device sent up to `now`, in order."""
        out = bytearray()
        while True:
            at = self.next_at()
            if at is None or at > now:
                return bytes(out)
            if self._pending and self._pending[0][0] == at:
                out += self._pending.pop(0)[1]
            else:
                assert self.period_s is not None and self._next_stream is not None
                out += self._faulted(self.stream_frame())
                self._next_stream += self.period_s


class FakeSerialPort:
    """A serial port with `model` on the other end, as pyserial's `Serial` behaves for a driver.

    `timeout` as pyserial's: None blocks until `size` bytes came (here: an error when nothing
    will ever come, instead of hanging the test), 0 returns what is there, else waits at most
    that many seconds on `clock`. `written` holds every byte the driver wrote."""

    def __init__(self, model: SerialDeviceModel | None, *, path: str = "/dev/serial0", clock: FakeClock | None = None,
                 baudrate: int = 9600, timeout: float | None = None) -> None:
        self.model = model
        self.port = path
        self.clock = clock if clock is not None else FakeClock()
        self.baudrate = baudrate
        self.timeout = timeout
        self.is_open = True
        self.written = bytearray()
        self._rx = bytearray()
        self._unplugged = False
        self._pulled = False
        if model is not None:
            model.power_on(self.clock.monotonic())

    # -- faults --------------------------------------------------------------------------------------------

    def unplug(self) -> None:
        """The device's wires come off: what the driver writes is lost, reads time out."""
        self._collect()
        self._unplugged = True

    def plug(self) -> None:
        """Wires back on: the device talks again (from now on)."""
        if self._unplugged and self.model is not None:
            self.model.output_until(self.clock.monotonic())  # what it sent meanwhile is lost
        self._unplugged = False

    def pull(self) -> None:
        """The USB adapter is pulled out: reads and writes raise OSError (EIO), as pyserial's
        SerialException (an OSError) does."""
        self._pulled = True

    def inject(self, data: bytes) -> None:
        """`data` arrives on the line now, before anything the device sends later."""
        self._collect()
        self._rx += data

    # -- pyserial's interface --------------------------------------------------------------------------

    def _check(self) -> None:
        if not self.is_open:
            raise OSError(errno.EBADF, "Attempting to use a port that is not open")
        if self._pulled:
            raise OSError(errno.EIO, f"{self.port}: device reports readiness to read but returned no data "
                                     "(device disconnected or multiple access on port?)")

    def _collect(self) -> None:
        if self.model is None:
            return
        out = self.model.output_until(self.clock.monotonic())
        if self._unplugged:
            return
        if self.baudrate != self.model.BAUDRATE:
            out = bytes((b * 37 + 11) & 0xFF for b in out[: max(1, len(out) // 2)]) if out else b""
        self._rx += out

    @property
    def in_waiting(self) -> int:
        self._check()
        self._collect()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        self._check()
        self._collect()
        deadline = None if self.timeout is None else self.clock.monotonic() + self.timeout
        while len(self._rx) < size:
            at = None if self.model is None or self._unplugged else self.model.next_at()
            if at is not None and (deadline is None or at <= deadline):
                self.clock.advance(max(0.0, at - self.clock.monotonic()))
                self._collect()
                continue
            if deadline is None:
                raise AssertionError(f"{self.port}: read({size}) with timeout=None would block forever "
                                     f"({len(self._rx)} bytes came)")
            self.clock.advance(max(0.0, deadline - self.clock.monotonic()))
            self._collect()
            break
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data: bytes) -> int:
        self._check()
        self._collect()
        self.written += data
        if self.model is not None and not self._unplugged:
            self.model.write(bytes(data), self.clock.monotonic())
        return len(data)

    def reset_input_buffer(self) -> None:
        self._check()
        self._collect()
        self._rx.clear()

    def flush(self) -> None:
        self._check()

    def close(self) -> None:
        self.is_open = False


class FakeSerialPorts:
    """The serial ports of a fake machine, by path; `open` is a `Hardware(serial_factory=...)`.

    Opening a path with nothing attached fails with ENOENT, a `deny()`ed one with EACCES, as
    pyserial's open does; an open port is opened again as the same `FakeSerialPort`."""

    def __init__(self, *, clock: FakeClock | None = None) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.ports: dict[str, FakeSerialPort] = {}
        self._denied: set[str] = set()

    def attach(self, path: str, model: SerialDeviceModel | None, *, clock: FakeClock | None = None) -> FakeSerialPort:
        """A port at `path` with `model` on the line (None: nothing connected), on the ports'
        clock or its own `clock` (ports read from several threads each keep their own)."""
        port = FakeSerialPort(model, path=path, clock=clock if clock is not None else self.clock)
        port.is_open = False
        self.ports[path] = port
        return port

    def deny(self, path: str) -> None:
        """Opening `path` fails with EACCES (the user is not in the dialout group)."""
        self._denied.add(path)

    def advance(self, seconds: float) -> None:
        """Move the ports' clocks (what the fake node's `Hardware.sleep` does)."""
        clocks = {id(port.clock): port.clock for port in self.ports.values()}
        clocks[id(self.clock)] = self.clock
        for clock in clocks.values():
            clock.advance(seconds)

    def open(self, path: str, baudrate: int, timeout_s: float) -> SerialPort:
        if path in self._denied:
            raise OSError(errno.EACCES, f"could not open port {path}: [Errno 13] {os.strerror(errno.EACCES)}")
        port = self.ports.get(path)
        if port is None:
            raise OSError(errno.ENOENT, f"could not open port {path}: [Errno 2] {os.strerror(errno.ENOENT)}")
        port.is_open, port.baudrate, port.timeout = True, baudrate, timeout_s
        port.reset_input_buffer()
        return port

