"""A frame-level model of the Plantower PMS5003 for `FakeSerialPort`.

Active mode (power-on default): a 32-byte frame every `period_s` (2.3 s, the datasheet's
stable-air interval). Commands (7 bytes, Appendix I, checked) switch to passive mode (0xE1 0),
where a frame comes only after the read command (0xE2), and back; a mode change is answered
with the 8-byte frame devices send (0x42 0x4D 0x00 0x04 CMD DATA and a sum). A command with a
wrong check code is ignored, as the sensor does.
"""

from __future__ import annotations

from ..serial import SerialDeviceModel

_HEADER = b"\x42\x4d"
_REPLY_DELAY_S = 0.02


class PMS5003Model(SerialDeviceModel):
    """A PMS5003 with these atmospheric concentrations (µg/m³) and particle counts (per 0.1 L)."""

    DEFAULT_PORT = "/dev/ttyUSB0"

    def __init__(self, *, pm1: int = 8, pm2_5: int = 12, pm10: int = 15,
                 counts: tuple[int, int, int, int, int, int] = (1530, 440, 95, 12, 3, 1),
                 period_s: float = 2.3) -> None:
        super().__init__()
        self.pm1, self.pm2_5, self.pm10 = pm1, pm2_5, pm10
        self.counts = counts
        self.period_s = period_s
        self.passive = False
        self._buffer = bytearray()

    def frame(self) -> bytes:
        """The 32-byte frame of the current values: CF=1 values (data 1 to 3) 10 % above the
        atmospheric ones, as indoors; data 13 (version, error code) 0x9700."""
        cf1 = [round(v * 1.1) for v in (self.pm1, self.pm2_5, self.pm10)]
        words = [*cf1, self.pm1, self.pm2_5, self.pm10, *self.counts, 0x9700]
        body = _HEADER + (28).to_bytes(2, "big") + b"".join(w.to_bytes(2, "big") for w in words)
        return body + (sum(body) & 0xFFFF).to_bytes(2, "big")

    def stream_frame(self) -> bytes:
        return self.frame()

    def on_bytes(self, data: bytes, now: float) -> None:
        self._buffer += data
        while True:
            at = self._buffer.find(_HEADER)
            if at < 0:
                del self._buffer[:-1]
                return
            del self._buffer[:at]
            if len(self._buffer) < 7:
                return
            cmd = bytes(self._buffer[:7])
            if int.from_bytes(cmd[5:7], "big") != sum(cmd[:5]):
                del self._buffer[:1]  # not a command, or a bad one: ignored
                continue
            del self._buffer[:7]
            self._command(cmd[2], cmd[3] << 8 | cmd[4], now)

    def _command(self, cmd: int, data: int, now: float) -> None:
        if cmd == 0xE1:
            self.passive = data == 0
            if self.passive:
                self.stop_stream()
            else:
                self.start_stream(now)
            ack = _HEADER + bytes([0x00, 0x04, cmd, data & 0xFF])
            self.send(ack + (sum(ack) & 0xFFFF).to_bytes(2, "big"), now, _REPLY_DELAY_S)
        elif cmd == 0xE2 and self.passive:
            self.send(self.frame(), now, _REPLY_DELAY_S)
