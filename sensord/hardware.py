"""Access to hardware, injected into drivers: I2C buses (one lock per bus), serial ports, the GPIO
pin factory and the kernel's sysfs tree.

Drivers receive a `Hardware` and ask it for `i2c(bus_number)`, `serial(port, ...)`, `pin_factory`
or `sysfs`; they never open `SMBus(1)`, `/dev/serial0` or a file under `/sys` themselves. Tests
pass a `Hardware` built on `sensord.testing.FakeI2CBus`, `sensord.testing.FakeSerialPorts`,
gpiozero's `MockFactory` and `sensord.testing.FakeSysfs`. smbus2, pyserial and gpiozero are
imported lazily so sensord imports anywhere.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .errors import SensorError

T = TypeVar("T")
NACK_ERRNOS = frozenset({errno.EREMOTEIO})  # 121: the Linux I2C drivers' "no acknowledge"


class I2CBus(Protocol):
    """The subset of `smbus2.SMBus` that drivers may use."""

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int: ...
    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None: ...
    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None: ...
    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...
    def write_word_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int],
                             force: bool | None = None) -> None: ...
    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...
    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None: ...
    def close(self) -> None: ...


class BusLock:
    """The lock of one I2C bus: re-entrant, with a bounded wait.

    A driver stuck inside a transaction (a chip holding the clock low, a hung read) holds the
    lock; the other drivers on that bus then fail with a clear EBUSY error after `timeout_s`
    instead of queueing behind it forever, and read again once the bus is free."""

    def __init__(self, number: int, timeout_s: float) -> None:
        self.number = number
        self.timeout_s = timeout_s
        self._lock = threading.RLock()

    def __enter__(self) -> BusLock:
        if not self._lock.acquire(timeout=self.timeout_s):
            raise OSError(errno.EBUSY, f"I2C bus {self.number} busy: another sensor has held it for more than "
                                       f"{self.timeout_s:g} s")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class LockedBus:
    """An I2C bus shared by several drivers. Hold `lock` around each multi-step transaction
    (write command, wait, read result) so two drivers never interleave on the wire."""

    def __init__(self, bus: I2CBus, number: int, *, lock_timeout_s: float = 2.0) -> None:
        self.bus = bus
        self.number = number
        self.lock = BusLock(number, lock_timeout_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


class Sysfs:
    """Read access to the kernel's sysfs under `root` (`/sys` on a Pi): what the drivers of
    kernel-owned sensors (`iio`, `hwmon`) read. Paths are relative to the root
    (`"bus/iio/devices"`); a path starting with `/sys/` is taken as that path under the root, so a
    user's `/sys/...` path works on a fake tree too. Nothing here writes.

    `sensord.testing.FakeSysfs` is a tree in a directory, with injected read errors."""

    def __init__(self, root: str = "/sys") -> None:
        self.root = root

    def path(self, path: str) -> str:
        """The file system path of `path` (relative to the root, or `/sys/...`)."""
        if path == "/sys" or path.startswith("/sys/"):
            path = path[len("/sys"):]
        return os.path.join(self.root, path.lstrip("/"))

    def listdir(self, path: str) -> list[str]:
        """The names in directory `path`, sorted; [] when it is missing."""
        try:
            return sorted(os.listdir(self.path(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, path: str) -> bool:
        return os.path.exists(self.path(path))

    def read(self, path: str) -> str:
        """One attribute file's text without the trailing newline. Raises the OSError the kernel
        gives: the driver's own error (EIO, ETIMEDOUT, ENODATA...) or ENOENT when it is gone."""
        with open(self.path(path), encoding="ascii", errors="replace") as fh:
            return fh.read().strip()

    def resolve(self, path: str) -> str | None:
        """Where the symbolic link (or path) `path` leads, relative to the root (`devices/...`);
        None when it does not exist or leads outside the root."""
        full = self.path(path)
        if not os.path.lexists(full):
            return None
        target = os.path.realpath(full)
        root = os.path.realpath(self.root)
        if target != root and not target.startswith(root + os.sep):
            return None
        return os.path.relpath(target, root)


class SerialPort(Protocol):
    """The subset of pyserial's `serial.Serial` that drivers may use. `read(size)` returns up to
    `size` bytes: fewer (maybe none) when the port's `timeout` (seconds) runs out first."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...


#: Opens a serial port: `(path, baudrate, timeout_s)`, 8 data bits, no parity, 1 stop bit.
SerialFactory = Callable[[str, int, float], SerialPort]

#: What the serial port errors mean on a Raspberry Pi, by errno, for `Hardware.serial`'s messages.
_SERIAL_HINTS = {
    errno.ENOENT: "no such device: enable the UART (enable_uart=1 in /boot/firmware/config.txt, serial "
                  "console off: raspi-config, Interface Options, Serial Port) or plug in the USB adapter "
                  "(ls /dev/serial* /dev/ttyUSB*)",
    errno.EACCES: "permission denied: the user running sensord must be in the group owning the port, "
                  "dialout (sudo usermod -aG dialout USER; the packaged service has SupplementaryGroups=dialout)",
    errno.EBUSY: "in use by another program (a serial console, getty, ModemManager?)",
    errno.EAGAIN: "in use by another program (a serial console, getty, ModemManager?)",
}
_SERIAL_HINTS[errno.EPERM] = _SERIAL_HINTS[errno.EACCES]


def _open_pyserial(port: str, baudrate: int, timeout_s: float) -> SerialPort:
    import serial  # lazy: pyserial (Debian: python3-serial) is needed only by the UART sensors

    # exclusive: an advisory lock, so a second sensord (or another well-behaved program) gets
    # EAGAIN instead of both reading halves of the same frames.
    opened: SerialPort = serial.Serial(port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
                                       timeout=timeout_s, exclusive=True)
    return opened


def _open_smbus(number: int) -> I2CBus:
    from smbus2 import SMBus  # lazy: not needed on a laptop or in tests

    bus: I2CBus = SMBus(number)
    return bus


class Hardware:
    """The hardware a node has, handed to every sensor.

    `i2c_factory(n)` opens bus n (default `smbus2.SMBus(n)`); `pin_factory` is a gpiozero pin
    factory (default: gpiozero's own choice, e.g. lgpio on a Pi); `sleep(seconds)` is how drivers
    wait for a conversion (tests pass one that returns at once); `w1_root` is where the kernel's
    1-Wire devices appear; `sysfs` reads the kernel's sysfs (IIO and hwmon devices), `/sys` by default;
    `serial_factory(path, baudrate, timeout_s)` opens a serial port (default pyserial's
    `serial.Serial`, 8N1, exclusive).
    """

    def __init__(self, *, i2c_factory: Callable[[int], I2CBus] | None = None,
                 pin_factory: Any = None, sleep: Callable[[float], None] = time.sleep,
                 w1_root: str = "/sys/bus/w1/devices", bus_lock_timeout_s: float = 2.0,
                 sysfs: Sysfs | None = None, serial_factory: SerialFactory | None = None) -> None:
        self._i2c_factory = i2c_factory or _open_smbus
        self._serial_factory = serial_factory or _open_pyserial
        self._serial_ports: dict[str, tuple[str, SerialPort]] = {}  # path → (owner, port)
        self._pin_factory = pin_factory
        self.sleep = sleep  # drivers wait for conversions with this; tests make it free
        self.w1_root = w1_root
        self.sysfs = sysfs if sysfs is not None else Sysfs()
        self.bus_lock_timeout_s = bus_lock_timeout_s
        self._buses: dict[int, LockedBus] = {}
        self._guard = threading.Lock()

    def i2c(self, number: int) -> LockedBus:
        """The shared, locked bus `/dev/i2c-<number>`, opened on first use."""
        with self._guard:
            if number not in self._buses:
                self._buses[number] = LockedBus(self._i2c_factory(number), number,
                                                lock_timeout_s=self.bus_lock_timeout_s)
            return self._buses[number]

    def serial(self, port: str, *, baudrate: int, timeout_s: float, owner: str) -> SerialPort:
        """Open serial port `port` (`/dev/serial0`) for one sensor, `owner` (its `describe()`, for
        messages). A UART carries one device, so a port is not shared: a second owner gets a
        SensorError naming the first. Errors name the owner and the port and say what to do
        (a missing port, the dialout group, a port in use). Give it back with `release_serial`."""
        with self._guard:
            if port in self._serial_ports:
                holder = self._serial_ports[port][0]
                raise SensorError(f"{owner}: serial port {port} is already used by {holder}: one "
                                  f"device per UART")
            try:
                opened = self._serial_factory(port, baudrate, timeout_s)
            except ImportError as exc:
                raise SensorError(f"{owner}: cannot open serial port {port}: pyserial is not installed "
                                  f"(Debian: apt install python3-serial; pip: pyserial): {exc}") from exc
            except OSError as exc:  # pyserial's SerialException is an OSError carrying the errno
                hint = _SERIAL_HINTS.get(exc.errno or 0, exc.strerror or str(exc))
                raise SensorError(f"{owner}: cannot open serial port {port}: {hint}") from exc
            except ValueError as exc:  # pyserial: a bad setting, e.g. a baud rate the port lacks
                raise SensorError(f"{owner}: cannot open serial port {port}: {exc}") from exc
            self._serial_ports[port] = (owner, opened)
            return opened

    def release_serial(self, port: str) -> None:
        """Close serial port `port` (opened by `serial()`); nothing when it is not open."""
        with self._guard:
            entry = self._serial_ports.pop(port, None)
        if entry is not None:
            entry[1].close()

    @property
    def pin_factory(self) -> Any:
        """The gpiozero pin factory drivers pass as `pin_factory=`."""
        if self._pin_factory is None:
            from gpiozero import Device  # lazy

            if Device.pin_factory is None:
                Device.pin_factory = Device._default_pin_factory()
            self._pin_factory = Device.pin_factory
        return self._pin_factory

    def close(self) -> None:
        with self._guard:
            for bus in self._buses.values():
                bus.bus.close()
            self._buses.clear()
            ports = [port for _, port in self._serial_ports.values()]
            self._serial_ports.clear()
        for port in ports:
            port.close()


def retry_nack(fn: Callable[[], T], *, sleep: Callable[[float], None], attempts: int = 3,
               delay_s: float = 0.005) -> T:
    """Call `fn`, retrying when the chip does not acknowledge (errno 121).

    A NACK is often transient (a chip busy converting, a glitch on a long cable); other errors
    and the last NACK propagate. Keep `attempts * delay_s` well inside the sensor's timeout_s."""
    for attempt in range(attempts):
        try:
            return fn()
        except OSError as exc:
            if exc.errno not in NACK_ERRNOS or attempt == attempts - 1:
                raise
            sleep(delay_s * (attempt + 1))
    raise AssertionError("unreachable")
