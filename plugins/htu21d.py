"""HTU21D(F) temperature and relative-humidity sensor (TE / MEAS), type `htu21d`; also the
Silicon Labs Si7021 and Sensirion SHT21, which speak the same protocol.

Wiring: VIN to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
address is fixed at 0x40 (which PCA9685 and INA219 boards also use by default).

Datasheets: TE "HTU21D(F) Sensor" (HPC199): commands, soft reset, user register, CRC checksum,
conversion of signal outputs; Silicon Labs "Si7021-A20" (Rev 1.1): Table 2 (conversion times),
section 5.1 (measurement commands, CRC init 0x00), Table 11 (command table).

A read measures temperature, then humidity, each in "no hold master" mode: write the command,
wait the datasheet's maximum conversion time (the chip NACKs reads until it is done), read two
data bytes and a CRC-8 (polynomial x^8+x^5+x^4+1, init 0x00: not Sensirion's usual 0xFF).
The two low bits of the data are status bits (bit 1: 1 for humidity), masked before
conversion. `open()` soft-resets the chip, so resolution and heater are at their defaults.

`model` only chooses the waits. Unset, they suit every chip above (the SHT21 is the slowest:
85 ms for temperature, 29 ms for humidity); `"si7021"` cuts a read from 114 ms to 34 ms.

Example::

    [[sensor]]
    name = "cellar"
    type = "htu21d"
    interval_s = 60
    ## Which chip it is, for shorter waits: "htu21d" or "si7021". Unset: waits that suit both
    ## and the SHT21.
    model = "si7021"
    # bus = 1
    # address = 0x40
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sensord
from sensord import Channel, I2CConfig, I2CSensor, LockedBus, Reading, Sensor, crc8, field_range, read_bytes

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x40

# Commands: HTU21D datasheet "Commands" table, Si7021 Table 11.
_CMD_MEASURE_T = 0xF3  # trigger temperature measurement, no hold master
_CMD_MEASURE_RH = 0xF5  # trigger humidity measurement, no hold master
_CMD_READ_USER = 0xE7
_CMD_WRITE_USER = 0xE6
_CMD_SOFT_RESET = 0xFE

# User register: HTU21D datasheet "User register"; Si7021 "User Register 1".
_USER_RESOLUTION = 0x81  # bits 7 and 0: 00 (RH 12 bit, T 14 bit) after a reset
_USER_HEATER = 0x04  # bit 2: on-chip heater, not cleared by a soft reset on the HTU21D
_USER_FIXED = 0x3A  # reserved bits 5-3 and bit 1: 0x02 on the HTU21D/SHT21, 0x3a on the Si7021
_ID_HTU21D, _ID_SI7021 = 0x02, 0x3A

_STATUS_BITS = 0x03  # the two low data bits are status, not signal ("Conversion of signal output")
_STATUS_HUMIDITY = 0x02  # bit 1: 1 = humidity, 0 = temperature
_RESET_S = 0.015  # "the soft reset takes less than 15 ms"; Si7021 Table 2 max 15 ms
_RESULT_LEN = 3  # MSB, LSB, CRC

#: Maximum conversion times (temperature, humidity) in seconds, at the reset resolution.
_CONVERSION_S: dict[str | None, tuple[float, float]] = {
    "htu21d": (0.050, 0.016),  # HTU21D "Measuring time" max: 14-bit T 50 ms, 12-bit RH 16 ms
    "si7021": (0.0108, 0.0228),  # Si7021 Table 2: T 10.8 ms; an RH conversion runs a T one too
    None: (0.085, 0.029),  # the slowest of the three, the SHT21: T 85 ms, RH 29 ms
}


@dataclass(frozen=True)
class HTU21DConfig(I2CConfig):
    """`[[sensor]]` keys of type `htu21d`."""

    address: int = field_range(DEFAULT_ADDRESS, ge=DEFAULT_ADDRESS, le=DEFAULT_ADDRESS)
    #: Which chip it is, only to shorten the conversion waits.
    model: Literal["htu21d", "si7021"] | None = None


def htu21d_crc(data: bytes | list[int]) -> int:
    """CRC-8 of the HTU21D and Si7021: polynomial 0x131 (x^8+x^5+x^4+1), init 0x00.

    HTU21D datasheet "CRC Checksum" examples: 0xDC -> 0x79, 0x683A -> 0x7C, 0x4E85 -> 0x6B."""
    return crc8(data, polynomial=0x31, init=0x00)


def parse_result(data: bytes | list[int], *, humidity: bool) -> int:
    """The 16-bit signal of a 3-byte measurement result, status bits cleared.

    Raises ValueError on a CRC mismatch, or when status bit 1 says the chip measured the other
    quantity (a sign of a command lost on the bus)."""
    raw = bytes(data)
    if len(raw) != _RESULT_LEN:
        raise ValueError(f"expected {_RESULT_LEN} bytes, got {len(raw)}")
    expected = htu21d_crc(raw[:2])
    if raw[2] != expected:
        raise ValueError(f"CRC mismatch: got 0x{raw[2]:02x}, expected 0x{expected:02x} "
                         f"(data {raw.hex(' ')})")
    signal = raw[0] << 8 | raw[1]
    if bool(signal & _STATUS_HUMIDITY) != humidity:
        want, got = ("humidity", "temperature") if humidity else ("temperature", "humidity")
        raise ValueError(f"status bit 1 says {got}, expected {want} (data {raw.hex(' ')})")
    return signal & ~_STATUS_BITS


def temperature_celsius(raw: int) -> float:
    """Temperature in °C from the 16-bit signal: T = -46.85 + 175.72 * S / 2^16."""
    return -46.85 + 175.72 * raw / 65536


def humidity_percent(raw: int) -> float:
    """Relative humidity in % from the 16-bit signal: RH = -6 + 125 * S / 2^16.

    Near 0 % and 100 % this can fall slightly outside 0..100; the driver clamps, as the Si7021
    datasheet (5.1.1) says is acceptable."""
    return -6.0 + 125.0 * raw / 65536



class HTU21D(I2CSensor):
    """HTU21D, Si7021 or SHT21: temperature (°C) and relative humidity (%)."""

    type_name = "htu21d"
    Config = HTU21DConfig
    config: HTU21DConfig
    i2c_addresses = (DEFAULT_ADDRESS,)

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", 175.72 / 2**14),
                Channel("humidity", "%", 125.0 / 2**12)]

    def probe(self) -> None:
        """Soft-reset, check the user register, and switch off a heater left on."""

        def reset(bus: LockedBus) -> int:
            bus.write_byte(self.address, _CMD_SOFT_RESET)
            self.hardware.sleep(_RESET_S)
            return int(bus.read_byte_data(self.address, _CMD_READ_USER))

        user = self.transfer(reset)
        if user & _USER_RESOLUTION:
            raise self.error(f"user register 0x{user:02x} after a soft reset: resolution bits 7,0 "
                             f"are not 00 (is this an HTU21D, Si7021 or SHT21?)")
        if user & _USER_HEATER:
            # The heater warms the die by several degrees; the HTU21D keeps it on across a reset.
            self.transfer(lambda bus: bus.write_byte_data(self.address, _CMD_WRITE_USER,
                                                          user & ~_USER_HEATER))

    def read(self) -> list[Reading]:
        wait_t, wait_rh = _CONVERSION_S[self.config.model]
        temperature = self._measure(_CMD_MEASURE_T, wait_t, humidity=False)
        humidity = self._measure(_CMD_MEASURE_RH, wait_rh, humidity=True)
        return [Reading("temperature", temperature_celsius(temperature), "°C"),
                Reading("humidity", min(100.0, max(0.0, humidity_percent(humidity))), "%")]

    def _measure(self, command: int, wait_s: float, *, humidity: bool) -> int:
        def measure(bus: LockedBus) -> bytes:
            bus.write_byte(self.address, command)
            self.hardware.sleep(wait_s)  # reads are NACKed until the conversion ends
            return read_bytes(bus, self.address, _RESULT_LEN)

        data = self.transfer(measure)
        try:
            return parse_result(data, humidity=humidity)
        except ValueError as exc:
            raise self.error(f"{'humidity' if humidity else 'temperature'}: {exc}") from None

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """Read the user register (command 0xE7) and check its reserved bits.

        This writes one byte, the command, which the other chips at 0x40 (PCA9685, INA219,
        HDC1080) take as a register pointer to a reserved register: nothing changes. The
        electronic-ID commands (0xFA 0x0F, 0xFC 0xC9) are not used: a PCA9685 would take them
        as writes to its ALL_LED registers and move every servo."""
        if address != DEFAULT_ADDRESS:
            return None
        try:
            user = int(bus.read_byte_data(address, _CMD_READ_USER))
        except OSError:
            return None
        fixed = user & _USER_FIXED
        if fixed == _ID_SI7021:
            return {"type": cls.type_name, "address": address, "model": "si7021"}
        if fixed == _ID_HTU21D:  # an HTU21D or an SHT21: leave model unset, its waits suit both
            return {"type": cls.type_name, "address": address}
        return None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [HTU21D]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.htu21d import HTU21DModel  # lazy: only the fake node asks

    return [HTU21DModel]
