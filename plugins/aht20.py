"""AHT20 temperature and relative-humidity sensor (Aosong), type `aht20`.

Wiring: VIN to 3.3 V (pin 1), GND to pin 6, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5). The
address is fixed at 0x38 (also on the AHT20+BMP280 combination boards).

Datasheet: Aosong "AHT20 Product manuals" (asair.com.cn), section 5.3 (commands and the status
byte), 5.4 (sensor reading process, CRC), 6.1 and 6.2 (signal conversion). What the datasheet
calls "sending 0x71" to get the status is the read address byte (0x38 << 1 | 1): a plain
one-byte read returns the status.

Each read sends the trigger command, waits the 80 ms the datasheet gives for a measurement,
polls the busy bit, then reads status, 20-bit humidity, 20-bit temperature and a CRC-8 (7
bytes). A bad CRC is an error, never a reading.

Example::

    [[sensor]]
    name = "bedroom"
    type = "aht20"
    interval_s = 30
    ## The I2C bus: 1 is the header of every Raspberry Pi since the model B rev 2.
    # bus = 1
    ## The AHT20's address cannot be changed.
    # address = 0x38
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sensord
from sensord import Channel, I2CConfig, I2CSensor, LockedBus, Reading, Sensor, crc8, field_range, read_bytes

if TYPE_CHECKING:
    from sensord.testing import I2CDeviceModel

DEFAULT_ADDRESS = 0x38

# Commands, section 5.3 / 5.4. Each is a command byte followed by two parameter bytes.
_CMD_INIT = (0xBE, [0x08, 0x00])  # load calibration when the CAL bit is clear (5.4 step 1)
_CMD_TRIGGER = (0xAC, [0x33, 0x00])  # start a measurement (5.4 step 2)

# Status byte, section 5.3 (status bit description).
_STATUS_BUSY = 0x80  # Bit[7]: measuring
_STATUS_CAL = 0x08  # Bit[3]: calibration loaded

_FRAME_LEN = 7  # status, 5 data bytes, CRC (5.4 step 4)
_MEASURE_S = 0.080  # 5.4 step 3: "wait 80 ms for the measurement to be completed"
_POLL_S = 0.010  # then poll the busy bit
_POLLS = 5  # ... up to 50 ms more before giving up
_INIT_S = 0.010  # 5.4 step 1: wait 10 ms after the init command

_FULL_SCALE = 1 << 20  # both signals are 20-bit (6.1, 6.2)


@dataclass(frozen=True)
class AHT20Config(I2CConfig):
    """`[[sensor]]` keys of type `aht20`: only `bus`; the address is fixed."""

    address: int = field_range(DEFAULT_ADDRESS, ge=DEFAULT_ADDRESS, le=DEFAULT_ADDRESS)


def aht20_crc(data: bytes | list[int]) -> int:
    """CRC-8 of the AHT20 (section 5.4 step 4): polynomial x^8+x^5+x^4+1 (0x31), init 0xFF."""
    return crc8(data, polynomial=0x31, init=0xFF)


def parse_frame(frame: bytes | list[int]) -> tuple[int, int]:
    """The raw (humidity, temperature) signals of a 7-byte measurement frame.

    Byte 0 is the status; humidity is the 20 bits after it, temperature the next 20 (section
    5.4); byte 6 is the CRC of bytes 0-5. Raises ValueError on a wrong length or CRC.
    """
    data = bytes(frame)
    if len(data) != _FRAME_LEN:
        raise ValueError(f"expected {_FRAME_LEN} bytes, got {len(data)}")
    expected = aht20_crc(data[:6])
    if data[6] != expected:
        raise ValueError(f"CRC mismatch: got 0x{data[6]:02x}, expected 0x{expected:02x} "
                         f"(frame {data.hex(' ')})")
    humidity = (data[1] << 12) | (data[2] << 4) | (data[3] >> 4)
    temperature = ((data[3] & 0x0F) << 16) | (data[4] << 8) | data[5]
    return humidity, temperature


def humidity_percent(raw: int) -> float:
    """Relative humidity in % from the 20-bit signal (section 6.1): RH = S / 2^20 * 100."""
    return raw / _FULL_SCALE * 100.0


def temperature_celsius(raw: int) -> float:
    """Temperature in °C from the 20-bit signal (section 6.2): T = S / 2^20 * 200 - 50."""
    return raw / _FULL_SCALE * 200.0 - 50.0



class AHT20(I2CSensor):
    """Aosong AHT20: temperature (°C) and relative humidity (%)."""

    type_name = "aht20"
    Config = AHT20Config
    config: AHT20Config
    i2c_addresses = (DEFAULT_ADDRESS,)

    def channels(self) -> list[Channel]:
        return [Channel("temperature", "°C", 200.0 / _FULL_SCALE),
                Channel("humidity", "%", 100.0 / _FULL_SCALE)]

    def probe(self) -> None:
        """Check the status byte; load the calibration if the CAL bit is clear (5.4 step 1)."""
        status = self.transfer(lambda bus: bus.read_byte(self.address))
        if status & _STATUS_CAL:
            return

        def init(bus: LockedBus) -> int:
            command, params = _CMD_INIT
            bus.write_i2c_block_data(self.address, command, params)
            self.hardware.sleep(_INIT_S)
            return int(bus.read_byte(self.address))

        status = self.transfer(init)
        if not status & _STATUS_CAL:
            raise self.error(f"status 0x{status:02x}: calibration bit 3 still clear after the "
                             f"init command 0xbe 0x08 0x00")

    def read(self) -> list[Reading]:
        frame = self.transfer(self._measure)
        if frame[0] & _STATUS_BUSY:
            waited_ms = round((_MEASURE_S + _POLLS * _POLL_S) * 1000)
            raise self.error(f"still busy {waited_ms} ms after the measurement command "
                             f"(status 0x{frame[0]:02x})")
        try:
            raw_humidity, raw_temperature = parse_frame(frame)
        except ValueError as exc:
            raise self.error(f"measurement: {exc}") from None
        return [Reading("temperature", temperature_celsius(raw_temperature), "°C"),
                Reading("humidity", humidity_percent(raw_humidity), "%")]

    def _measure(self, bus: LockedBus) -> bytes:
        """Trigger, wait, and poll until the busy bit clears; return the last frame read."""
        command, params = _CMD_TRIGGER
        bus.write_i2c_block_data(self.address, command, params)
        self.hardware.sleep(_MEASURE_S)
        frame = read_bytes(bus, self.address, _FRAME_LEN)
        for _ in range(_POLLS):
            if not frame[0] & _STATUS_BUSY:
                break
            self.hardware.sleep(_POLL_S)
            frame = read_bytes(bus, self.address, _FRAME_LEN)
        return frame

    @classmethod
    def identify(cls, bus: Any, address: int, *,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """An AHT20 answers a one-byte read with its status: CAL set, busy clear.

        The AHT20 has no id register, so this is plausibility only: one read, no write, which
        no chip's state depends on. Another chip at 0x38 whose first byte has bit 3 set and bit
        7 clear (a VEML6070's UV reading, say) would pass too."""
        if address != DEFAULT_ADDRESS:
            return None
        try:
            status = int(bus.read_byte(address))
        except OSError:
            return None
        if status & _STATUS_CAL and not status & _STATUS_BUSY:
            return {"type": cls.type_name, "address": address}
        return None


@sensord.hookimpl
def sensord_register_sensors() -> list[type[Sensor]]:
    return [AHT20]


@sensord.hookimpl
def sensord_register_device_models() -> list[type[I2CDeviceModel]]:
    from sensord.testing.models.aht20 import AHT20Model  # lazy: only the fake node asks

    return [AHT20Model]
