"""A fake HDC1080 (TI temperature and humidity sensor, fixed address 0x40) for `FakeI2CBus`.

Registers (SNAS672 §8.5.1), 16 bits, most significant byte first, behind a pointer: temperature
(0x00), humidity (0x01), configuration (0x02, reset value 0x1000), serial id (0xFB-0xFD),
manufacturer id (0xFE: 0x5449) and device id (0xFF: 0x1050). Other pointers are NACKed.

Writing the pointer 0x00 starts a measurement (§8.4.2): with MODE set (the reset value) the
temperature, then the humidity, and a read returns four bytes, temperature then humidity; with
MODE clear only the temperature (pointer 0x01: only the humidity), two bytes. Reads are NACKed
while the conversion runs. A read of 0x00 or 0x01 with nothing measured since the pointer was
set is NACKed as well, as the chip has no data to give. The results carry the configured
resolution (the low bits 0). Writing the configuration with RST (bit 15) resets it; BTST (bit
11) is read-only and follows `low_battery`; the heater bit is kept but heats nothing.

Time: with `clock` (a function returning seconds, e.g. `FakeClock().monotonic`) a conversion takes
the datasheet's typical times (temperature 6.35 ms at 14 bits, 3.65 at 11; humidity 6.50, 3.85,
2.50 ms at 14, 11, 8 bits); without one it ends at once.

    model = HDC1080Model(temperature_c=21.875, humidity_pct=50.0)
    bus = FakeI2CBus([model])
"""

from __future__ import annotations

from collections.abc import Callable

from sensord.testing.i2c import I2CDeviceModel

_TEMPERATURE, _HUMIDITY, _CONFIG = 0x00, 0x01, 0x02
_SERIAL = (0xFB, 0xFC, 0xFD)
_MANUFACTURER, _DEVICE = 0xFE, 0xFF
_CONFIG_RESET = 0x1000
_RST, _MODE, _BTST = 0x8000, 0x1000, 0x0800
_WRITABLE = 0x3700  # HEAT 13, MODE 12, TRES 10, HRES 9:8
_TEMPERATURE_BITS = {0: 14, 1: 11}
_HUMIDITY_BITS = {0b00: 14, 0b01: 11, 0b10: 8}
_TEMPERATURE_S = {14: 0.00635, 11: 0.00365}
_HUMIDITY_S = {14: 0.0065, 11: 0.00385, 8: 0.0025}


def encode_temperature(temperature_c: float, bits: int = 14) -> int:
    """The temperature register for `temperature_c` at a resolution: (T + 40) / 165 × 2^16."""
    raw = max(0, min(0xFFFF, round((temperature_c + 40.0) / 165.0 * 65536)))
    return raw & (0xFFFF << (16 - bits)) & 0xFFFF


def encode_humidity(humidity_pct: float, bits: int = 14) -> int:
    """The humidity register for `humidity_pct` at a resolution: RH / 100 × 2^16."""
    raw = max(0, min(0xFFFF, round(humidity_pct / 100.0 * 65536)))
    return raw & (0xFFFF << (16 - bits)) & 0xFFFF


class HDC1080Model(I2CDeviceModel):
    """An HDC1080 measuring `temperature_c` and `humidity_pct`; set them any time."""

    DEFAULT_ADDRESS = 0x40
    #: The chip has no address pins: the fake node puts it on its second bus when 0x40 is taken.
    ADDRESSES = (0x40,)
    address = DEFAULT_ADDRESS

    def __init__(self, *, address: int | None = None, temperature_c: float = 21.0, humidity_pct: float = 45.0,
                 manufacturer_id: int = 0x5449, device_id: int = 0x1050, low_battery: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(address=address)
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.manufacturer_id = manufacturer_id
        self.device_id = device_id
        #: Whether the supply is below 2.8 V (BTST reads 1).
        self.low_battery = low_battery
        #: The writable configuration bits (reset value: MODE set).
        self.config = _CONFIG_RESET
        #: The register pointer.
        self.pointer = _TEMPERATURE
        #: How many measurements were started.
        self.conversions = 0
        self._clock = clock
        self._ready_at = 0.0
        self._result: bytes | None = None  # what a read at 0x00 / 0x01 returns, once converted

    @property
    def temperature_bits(self) -> int:
        return _TEMPERATURE_BITS[self.config >> 10 & 1]

    @property
    def humidity_bits(self) -> int:
        return _HUMIDITY_BITS[self.config >> 8 & 0b11]

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def _register(self, pointer: int) -> int:
        words = {_CONFIG: self.config | (_BTST if self.low_battery else 0), _MANUFACTURER: self.manufacturer_id,
                 _DEVICE: self.device_id, 0xFB: 0x0123, 0xFC: 0x4567, 0xFD: 0x8900}
        return words[pointer]

    def write_raw(self, data: bytes) -> None:
        if not data:
            return
        pointer, value = data[0], data[1:]
        if pointer not in (_TEMPERATURE, _HUMIDITY, _CONFIG, *_SERIAL, _MANUFACTURER, _DEVICE):
            raise self.nack(f"pointer 0x{pointer:02x} does not exist")
        self.pointer = pointer
        self._result = None
        if pointer in (_TEMPERATURE, _HUMIDITY):
            if value:
                raise self.nack(f"the result registers are read-only, got {value.hex(' ')}")
            self._start(pointer)
        elif pointer == _CONFIG and value:
            if len(value) != 2:
                raise self.nack(f"the configuration takes a 16-bit word, got {value.hex(' ')}")
            word = int.from_bytes(value, "big")
            if word >> 8 & 0b11 == 0b11:
                raise self.nack(f"configuration 0x{word:04x}: HRES 11 is reserved")
            self.config = _CONFIG_RESET if word & _RST else word & _WRITABLE
        # Writes to the id registers are ignored, as by the chip.

    def _start(self, pointer: int) -> None:
        self.conversions += 1
        temperature = encode_temperature(self.temperature_c, self.temperature_bits).to_bytes(2, "big")
        humidity = encode_humidity(self.humidity_pct, self.humidity_bits).to_bytes(2, "big")
        if pointer == _TEMPERATURE and self.config & _MODE:
            self._result, seconds = temperature + humidity, (_TEMPERATURE_S[self.temperature_bits]
                                                             + _HUMIDITY_S[self.humidity_bits])
        elif pointer == _TEMPERATURE:
            self._result, seconds = temperature, _TEMPERATURE_S[self.temperature_bits]
        else:
            self._result, seconds = humidity, _HUMIDITY_S[self.humidity_bits]
        self._ready_at = self._now() + (seconds if self._clock is not None else 0.0)

    def read_raw(self, length: int) -> bytes:
        if self._now() < self._ready_at:
            raise self.nack("converting")
        if self.pointer in (_TEMPERATURE, _HUMIDITY):
            if self._result is None:
                raise self.nack("no measurement started")
            data, self._result = self._result, None
            return (data * (length // len(data) + 1))[:length]
        word = self._register(self.pointer).to_bytes(2, "big")
        return (word * (length // 2 + 1))[:length]
