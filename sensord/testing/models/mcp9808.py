"""A fake MCP9808 (Microchip temperature sensor, addresses 0x18-0x1F) for `FakeI2CBus`.

Registers as in the datasheet (DS25095A, Register 5-1): CONFIG (0x01), T_UPPER, T_LOWER, T_CRIT
(0x02-0x04), T_A (0x05), manufacturer id (0x06: 0x0054), device id and revision (0x07: 0x0400)
and resolution (0x08). 16-bit registers are most significant byte first; pointers above 0x08
(reserved for test and calibration) are NACKed. T_A follows `temperature_c` at once, rounded to
the resolution, with the alert flags its limits give (all three limits are 0 °C at power-on, so
a warm chip sets T_CRIT's and T_UPPER's flags); in shutdown it keeps its last value.

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) a change of the
resolution, or leaving shutdown, starts a conversion of the datasheet's typical t_CONV (30, 65,
130 or 250 ms for 0.5 to 0.0625 °C), and T_A keeps the value from before until it ends; without
a clock the new value shows at once.

    model = MCP9808Model(temperature_c=25.25)
    bus = FakeI2CBus([model])
"""

from __future__ import annotations

from collections.abc import Callable

from sensord.testing.i2c import I2CDeviceModel

DEFAULT_ADDRESS = 0x18
MANUFACTURER_ID = 0x0054
DEVICE_ID = 0x04
_REG_CONFIG = 0x01
_REG_T_UPPER, _REG_T_LOWER, _REG_T_CRIT = 0x02, 0x03, 0x04
_REG_AMBIENT = 0x05
_REG_MANUFACTURER_ID = 0x06
_REG_DEVICE_ID = 0x07
_REG_RESOLUTION = 0x08
_CONFIG_SHDN = 0x0100
# T_A alert flags (bits 15-13): T_A >= T_CRIT, T_A > T_UPPER, T_A < T_LOWER.
_FLAG_CRIT, _FLAG_UPPER, _FLAG_LOWER = 0x8000, 0x4000, 0x2000
_AMBIENT_DATA = 0x1FFF
_LSB_C = 0.0625
_STEP_C = {0x00: 0.5, 0x01: 0.25, 0x02: 0.125, 0x03: 0.0625}
_T_CONV_S = {0x00: 0.030, 0x01: 0.065, 0x02: 0.130, 0x03: 0.250}


class MCP9808Model(I2CDeviceModel):
    """A fake MCP9808 at `address` (0x18-0x1F) measuring `temperature_c`, for `FakeI2CBus`.

    A write sets the register pointer from its first byte and stores the rest in that register;
    a read returns the register the pointer selects, most significant byte first, as many times
    over as the master clocks. Pointers above 0x08 are NACKed so that a driver bug shows.
    T_A follows `temperature_c` at once (rounded to the resolution, with the alert flags of
    the limit registers); in shutdown it keeps its last value. Give other ids to stand in for
    another chip: `MCP9808Model(manufacturer_id=0x1131)`.
    """

    DEFAULT_ADDRESS = DEFAULT_ADDRESS
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0,
                 manufacturer_id: int = MANUFACTURER_ID, device_id: int = DEVICE_ID << 8,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        #: The temperature the chip measures; set it any time.
        self.temperature_c = temperature_c
        self.manufacturer_id = manufacturer_id
        #: Device id (upper byte) and revision (lower byte).
        self.device_id = device_id
        #: CONFIG (power-on 0x0000: continuous conversion).
        self.config = 0x0000
        #: T_UPPER, T_LOWER, T_CRIT (power-on 0 °C).
        self.limits = {_REG_T_UPPER: 0x0000, _REG_T_LOWER: 0x0000, _REG_T_CRIT: 0x0000}
        #: Resolution register bits 1-0 (power-on 0x03: 0.0625 °C).
        self.resolution = 0x03
        #: The register pointer.
        self.pointer = 0x00
        self._frozen: float | None = None  # the temperature T_A keeps while shut down
        self._clock = clock
        self._held: int | None = None  # T_A while a conversion at a new setting runs
        self._ready_at = 0.0

    @property
    def shut_down(self) -> bool:
        """Whether CONFIG's SHDN bit is set."""
        return bool(self.config & _CONFIG_SHDN)

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def _restart_conversion(self) -> None:
        """A new setting: T_A keeps its value until a conversion at it ends (only with a clock)."""
        if self._clock is not None:
            self._held = self.ambient()
            self._ready_at = self._now() + _T_CONV_S[self.resolution]

    def ambient(self) -> int:
        """The T_A register now: flags, sign and temperature in the chosen resolution."""
        if self._held is not None:
            if self._now() < self._ready_at:
                return self._held
            self._held = None
        measured = self._frozen if self.shut_down and self._frozen is not None else self.temperature_c
        step = _STEP_C[self.resolution]
        raw = max(-0x1000, min(0x0FFF, round(measured / step) * round(step / _LSB_C)))
        limit = {reg: _limit_celsius(word) for reg, word in self.limits.items()}
        flags = ((_FLAG_CRIT if measured >= limit[_REG_T_CRIT] else 0)
                 | (_FLAG_UPPER if measured > limit[_REG_T_UPPER] else 0)
                 | (_FLAG_LOWER if measured < limit[_REG_T_LOWER] else 0))
        return flags | raw & _AMBIENT_DATA

    def _register(self, pointer: int) -> bytes:
        if pointer == _REG_RESOLUTION:
            return bytes([self.resolution])
        words = {0x00: 0x0000, _REG_CONFIG: self.config, _REG_AMBIENT: self.ambient(),
                 _REG_MANUFACTURER_ID: self.manufacturer_id, _REG_DEVICE_ID: self.device_id, **self.limits}
        return words[pointer].to_bytes(2, "big")

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        if data[0] > _REG_RESOLUTION:
            raise self.nack(f"pointer 0x{data[0]:02x} is reserved")
        self.pointer, value = data[0], data[1:]
        if not value:
            return
        # A 1-byte write to a 16-bit register sets its upper byte only.
        word = int.from_bytes(value[:2] + self._register(self.pointer)[len(value):], "big")
        if self.pointer == _REG_RESOLUTION:
            self._restart_conversion()
            self.resolution = value[0] & 0x03
            self._ready_at = self._now() + _T_CONV_S[self.resolution]
        elif self.pointer == _REG_CONFIG:
            if not self.shut_down:
                self._frozen = self.temperature_c  # what T_A keeps if this write shuts it down
            elif not word & _CONFIG_SHDN:
                self._restart_conversion()  # leaving shutdown: the first conversion takes t_CONV
            self.config = word & 0x07FF  # bits 15-11 are unimplemented
        elif self.pointer in self.limits:
            self.limits[self.pointer] = word & 0x1FFC  # bits 15-13 and 1-0 read 0
        # Writes to the read-only registers (T_A, the ids) are ignored, as by the chip.

    def read_raw(self, length: int) -> bytes:
        register = self._register(self.pointer)
        return (register * (length // len(register) + 1))[:length]


def _limit_celsius(word: int) -> float:
    """°C from T_UPPER, T_LOWER or T_CRIT: 11-bit two's complement in bits 12-2, 0.25 °C per LSB."""
    raw = (word & 0x1FFC) >> 2
    return (raw - 0x800 if raw & 0x400 else raw) * 0.25
