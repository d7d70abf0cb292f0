"""A fake INA219 current/power monitor (TI SBOS448) for `FakeI2CBus`.

Set the physical values; the registers follow from them and from what the driver programmed,
computed as the chip does (SBOS448 §8.5.1, equations 4 and 5):

    ina = INA219Model(bus_voltage_v=12.0, current_a=1.5, shunt_ohms=0.1)
    bus = FakeI2CBus([ina])
    ina.current_a = -0.2

- shunt voltage = current × shunt resistance in 10 µV steps, clipped to the programmed range;
- bus voltage in 4 mV steps at bits 15:3, CNVR at bit 1, OVF at bit 0;
- current register = trunc(shunt × calibration / 4096), power = trunc(current × bus / 5000);
  OVF is set when either is out of its 16-bit range (they are then clipped).

The first byte of a write is the register pointer, optionally followed by 16 bits MSB first;
reads return the selected register MSB first. Writing bit 15 of the configuration resets every
register; `power_cycle()` does the same, as a brown-out would. CNVR reads 0 for the first
`conversion_reads` reads of the bus voltage register after a configuration write or a power
register read, standing in for the conversion time.
"""

from __future__ import annotations

from sensord.testing.pointer import PointerWordModel

_CONFIG, _SHUNT, _BUS, _POWER, _CURRENT, _CALIBRATION = range(6)
_CONFIG_DEFAULT = 0x399F
_SHUNT_LIMITS = (4000, 8000, 16000, 32000)  # 40, 80, 160, 320 mV in 10 µV steps, by PG code


class INA219Model(PointerWordModel):
    """An INA219 with a settable bus voltage and current through a settable shunt."""

    DEFAULT_ADDRESS = 0x40

    def __init__(self, *, address: int = DEFAULT_ADDRESS, bus_voltage_v: float = 0.0, current_a: float = 0.0,
                 shunt_ohms: float = 0.1, conversion_reads: int = 1) -> None:
        super().__init__(address=address)
        #: Volts at VIN- against GND.
        self.bus_voltage_v = bus_voltage_v
        #: Amperes flowing from VIN+ to VIN- through the shunt.
        self.current_a = current_a
        #: The shunt resistor actually fitted, in ohms.
        self.shunt_ohms = shunt_ohms
        #: Bus voltage reads with CNVR = 0 after a configuration write or a power read.
        self.conversion_reads = conversion_reads
        self.config = _CONFIG_DEFAULT
        self.calibration = 0
        self._not_ready = conversion_reads

    def power_cycle(self) -> None:
        """Reset every register, as after a brown-out."""
        self.config = _CONFIG_DEFAULT
        self.calibration = 0
        self._not_ready = self.conversion_reads

    def registers(self) -> dict[int, int]:
        """Every register as the chip would show it now (reading them here clears nothing)."""
        pg = (self.config >> 11) & 0b11
        limit = _SHUNT_LIMITS[pg]
        shunt = max(-limit, min(limit, round(self.current_a * self.shunt_ohms / 10e-6)))
        bus_limit = 8000 if self.config & 0x2000 else 4000  # 32 V or 16 V range (§8.6.2.1)
        volts = max(0, min(bus_limit, round(self.bus_voltage_v / 0.004)))
        current = int(shunt * self.calibration / 4096)  # trunc, toward 0
        power = int(abs(current) * volts / 5000)
        overflow = not -0x8000 <= current <= 0x7FFF or power > 0xFFFF
        current = max(-0x8000, min(0x7FFF, current))
        power = min(0xFFFF, power)
        ready = self._not_ready == 0
        return {
            _CONFIG: self.config,
            _SHUNT: shunt & 0xFFFF,
            _BUS: volts << 3 | (0b10 if ready else 0) | (1 if overflow else 0),
            _POWER: power,
            _CURRENT: current & 0xFFFF,
            _CALIBRATION: self.calibration,
        }

    # -- PointerWordModel ----------------------------------------------------------------------

    def check_pointer(self, pointer: int) -> None:
        if pointer > _CALIBRATION:
            raise self.nack(f"no register 0x{pointer:02x}")

    def write_word(self, register: int, value: int) -> None:
        if register == _CONFIG:
            if value & 0x8000:  # RST (§8.6.2.1)
                self.power_cycle()
            else:
                self.config = value
                self._not_ready = self.conversion_reads
        elif register == _CALIBRATION:
            self.calibration = value & 0xFFFE  # bit 0 (FS0) cannot be set (§8.6.3.5)
        # The measurement registers 01h-04h are read-only: writes are ignored.

    def read_word(self, register: int) -> int:
        value = self.registers()[register]
        if register == _BUS and self._not_ready:
            self._not_ready -= 1
        elif register == _POWER:
            self._not_ready = self.conversion_reads  # reading power clears CNVR (§8.6.3.2)
        return value
