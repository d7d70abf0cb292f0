"""The base of sensors on a serial port (a UART: the Pi's /dev/serial0, a USB adapter's /dev/ttyUSB0).

A `UARTSensor` gets its port from `Hardware.serial` in `open()` (never opening a device itself),
writes commands with `send()` and reads frames with `read_frame()`, which finds a frame by its
header in whatever the line carries (a stream joined mid-frame, garbage after a power glitch),
checks it, and turns timeouts and I/O errors into `SensorError`s naming the sensor and port::

    class Thing(UARTSensor):
        type_name = "thing"

        def read(self) -> list[Reading]:
            frame = self.read_frame(b"\\x42\\x4d", 32, check=checksum_problem)
            return [Reading("pm2_5", frame[12] << 8 | frame[13], "µg/m³")]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .errors import SensorError
from .sensor import Sensor, SensorConfig

if TYPE_CHECKING:
    from .hardware import SerialPort

#: How the Pi's UART and most USB adapters are named; /dev/serial0 is the udev link to the UART
#: on pins 8 and 10 (ttyS0 or ttyAMA0 by model and overlay).
DEFAULT_PORT = "/dev/serial0"


@dataclass(frozen=True)
class UARTConfig(SensorConfig):
    """Keys every serial sensor has."""

    #: The serial device: /dev/serial0 (the header's UART), /dev/ttyUSB0, /dev/ttyAMA1 ...
    port: str = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not self.port.startswith("/dev/"):
            raise ValueError(f"port: {self.port!r} is not a device path (expected e.g. /dev/serial0 or /dev/ttyUSB0)")


class UARTSensor(Sensor):
    """A device on a serial port, 8N1 at `baudrate`. `open()` opens the port and calls `probe()`;
    `close()` gives the port back."""

    #: Line speed, fixed by the device.
    baudrate: ClassVar[int] = 9600
    #: How long one read of the port waits for bytes: longer than the device's gap between frames.
    port_timeout_s: ClassVar[float] = 2.0
    config: UARTConfig
    _port: SerialPort | None = None

    def describe(self) -> str:
        return f'sensor "{self.name}" ({self.type_name} on {self.config.port})'

    def error(self, message: str) -> SensorError:
        """A SensorError naming this sensor, its type and port."""
        return SensorError(f"{self.describe()}: {message}")

    @property
    def port(self) -> SerialPort:
        if self._port is None:
            raise self.error("port not open (open() first)")
        return self._port

    def open(self) -> None:
        self._port = self.hardware.serial(self.config.port, baudrate=self.baudrate,
                                          timeout_s=self.port_timeout_s, owner=self.describe())
        try:
            self.probe()
        except BaseException:
            self.close()
            raise

    def probe(self) -> None:
        """Set the device up after the port opened (a mode, a command). Default: nothing."""

    def close(self) -> None:
        if self._port is not None:
            self._port = None
            self.hardware.release_serial(self.config.port)

    def send(self, command: bytes) -> None:
        """Write `command`; an I/O error (a USB adapter pulled out) as this sensor's SensorError."""
        try:
            self.port.write(command)
        except OSError as exc:
            raise self.error(f"write failed: {exc}") from exc

    def discard_input(self) -> None:
        """Drop what the line brought since the last read (old frames of a streaming device)."""
        try:
            self.port.reset_input_buffer()
        except OSError as exc:
            raise self.error(f"I/O error: {exc}") from exc

    def read_frame(self, header: bytes, length: int, *, check: Callable[[bytes], str | None],
                   bad_frames: int = 2, max_skip: int = 256) -> bytes:
        """The next whole frame of `length` bytes that starts with `header` and passes `check`
        (which returns None, or what is wrong: "checksum 0x12, expected 0x34").

        Bytes before a header are skipped (at most `max_skip`: more means a wrong baud rate or
        another device); a frame failing `check` is skipped and the search goes on from its
        second byte, `bad_frames` times, then it is an error. A port read that times out with
        no frame is an error saying what came."""
        buf = bytearray()
        skipped = 0
        bad = 0
        while True:
            at = buf.find(header)
            if at < 0:
                keep = len(header) - 1
                skipped += max(0, len(buf) - keep)
                del buf[:max(0, len(buf) - keep)]
            else:
                skipped += at
                del buf[:at]
                if len(buf) >= length:
                    frame = bytes(buf[:length])
                    problem = check(frame)
                    if problem is None:
                        return frame
                    bad += 1
                    if bad >= bad_frames:
                        raise self.error(f"bad frame ({problem}) {bad} times: {frame.hex(' ')}")
                    del buf[:1]
                    continue
            if skipped > max_skip:
                raise self.error(f"no frame header {header.hex(' ')} in {skipped} bytes: wrong device "
                                 f"or baud rate ({self.baudrate} expected)?")
            need = length - len(buf) if at >= 0 else length
            try:
                chunk = self.port.read(need)
            except OSError as exc:
                raise self.error(f"I/O error: {exc}") from exc
            if not chunk:
                raise self.error(self._silence(buf, length, skipped))
            buf += chunk

    def _silence(self, buf: bytearray, length: int, skipped: int) -> str:
        timeout = f"{self.port_timeout_s:g} s"
        if buf or skipped:
            return (f"incomplete frame: {len(buf)} of {length} bytes, then nothing for {timeout} "
                    f"({skipped} bytes skipped before it)")
        return (f"no data for {timeout}: is the sensor powered (5 V) and its TX wired to the Pi's "
                f"RX (GPIO15, pin 10)?")


def sum8(data: bytes) -> int:
    """The low byte of the sum of `data`."""
    return sum(data) & 0xFF
