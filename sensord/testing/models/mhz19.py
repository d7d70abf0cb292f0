"""A frame-level model of the Winsen MH-Z19B for `FakeSerialPort`.

It answers the read command (0x86) with the manual's example layout (FF 86 02 20 00 00 00 00 58
for 544 ppm, the default), takes 0x79 (ABC on/off, no answer) and 0x99 (detection range, in
bytes 6 and 7 as sensors take it; answered FF 99 ...), and ignores a command whose checksum is
wrong, as the sensor does. It never talks unasked.
"""

from __future__ import annotations

from ..serial import SerialDeviceModel

_REPLY_DELAY_S = 0.01


def _checksum(packet: bytes) -> int:
    return (0xFF - (sum(packet[1:8]) & 0xFF) + 1) & 0xFF


class MHZ19Model(SerialDeviceModel):
    """An MH-Z19B measuring `co2_ppm` (clipped to its detection range, as the sensor does)."""

    DEFAULT_PORT = "/dev/serial0"

    def __init__(self, *, co2_ppm: int = 544) -> None:
        super().__init__()
        self.co2_ppm = co2_ppm
        self.abc = True
        self.range_ppm = 5000
        self._buffer = bytearray()

    def answer(self, cmd: int, data: bytes) -> bytes:
        packet = bytes([0xFF, cmd]) + data.ljust(6, b"\x00")
        return packet + bytes([_checksum(packet)])

    def on_bytes(self, data: bytes, now: float) -> None:
        self._buffer += data
        while True:
            at = self._buffer.find(b"\xff\x01")
            if at < 0:
                del self._buffer[:-1]
                return
            del self._buffer[:at]
            if len(self._buffer) < 9:
                return
            cmd = bytes(self._buffer[:9])
            if cmd[8] != _checksum(cmd):
                del self._buffer[:1]
                continue
            del self._buffer[:9]
            if cmd[2] == 0x86:
                ppm = max(0, min(self.co2_ppm, self.range_ppm))
                self.send(self.answer(0x86, ppm.to_bytes(2, "big")), now, _REPLY_DELAY_S)
            elif cmd[2] == 0x79:
                self.abc = cmd[3] == 0xA0
            elif cmd[2] == 0x99:
                self.range_ppm = int.from_bytes(cmd[6:8], "big")
                self.send(self.answer(0x99, b""), now, _REPLY_DELAY_S)
