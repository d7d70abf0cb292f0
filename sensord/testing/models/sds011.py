"""A frame-level model of the Nova Fitness SDS011 for `FakeSerialPort`.

Active reporting (power-on default): a 10-byte frame every second. Commands (19 bytes, control
protocol V1.3, check-sum and tail checked, device id 0xFFFF or its own) set the reporting mode
(2), query data (4, answered in query mode) and set the working period (8: in active mode one
frame every that many minutes); settings are answered by a 0xAA 0xC5 frame. The default values
are the control protocol's example frame: AA C0 D4 04 3A 0A A1 60 1D AB (PM2.5 123.6, PM10 261.8).
"""

from __future__ import annotations

from ..serial import SerialDeviceModel

_REPLY_DELAY_S = 0.05


def _sum8(data: bytes) -> int:
    return sum(data) & 0xFF


class SDS011Model(SerialDeviceModel):
    """An SDS011 with these concentrations (µg/m³, in tenths on the wire) and device id."""

    DEFAULT_PORT = "/dev/ttyUSB1"

    def __init__(self, *, pm2_5: float = 123.6, pm10: float = 261.8, device_id: int = 0xA160) -> None:
        super().__init__()
        self.pm2_5, self.pm10 = pm2_5, pm10
        self.device_id = device_id
        self.query_mode = False
        self.work_period_min = 0
        self.period_s = 1.0
        self._buffer = bytearray()

    def frame(self) -> bytes:
        data = (round(self.pm2_5 * 10).to_bytes(2, "little") + round(self.pm10 * 10).to_bytes(2, "little")
                + self.device_id.to_bytes(2, "big"))
        return b"\xaa\xc0" + data + bytes([_sum8(data), 0xAB])

    def stream_frame(self) -> bytes:
        return self.frame()

    def _reply(self, cmd: int, a: int, b: int, now: float) -> None:
        data = bytes([cmd, a, b, 0]) + self.device_id.to_bytes(2, "big")
        self.send(b"\xaa\xc5" + data + bytes([_sum8(data), 0xAB]), now, _REPLY_DELAY_S)

    def on_bytes(self, data: bytes, now: float) -> None:
        self._buffer += data
        while True:
            at = self._buffer.find(b"\xaa\xb4")
            if at < 0:
                del self._buffer[:-1]
                return
            del self._buffer[:at]
            if len(self._buffer) < 19:
                return
            cmd = bytes(self._buffer[:19])
            body = cmd[2:17]
            if cmd[18] != 0xAB or cmd[17] != _sum8(body):
                del self._buffer[:1]
                continue
            del self._buffer[:19]
            device = int.from_bytes(body[13:15], "big")
            if device in (0xFFFF, self.device_id):
                self._command(body, now)

    def _restream(self, now: float) -> None:
        if self.query_mode:
            self.stop_stream()
        else:
            self.period_s = 60.0 * self.work_period_min if self.work_period_min else 1.0
            self.start_stream(now)

    def _command(self, body: bytes, now: float) -> None:
        cmd, setting, value = body[0], body[1], body[2]
        if cmd == 2:
            if setting == 1:
                self.query_mode = value == 1
                self._restream(now)
            self._reply(2, setting, int(self.query_mode), now)
        elif cmd == 4 and self.query_mode:
            self.send(self.frame(), now, _REPLY_DELAY_S)
        elif cmd == 8:
            if setting == 1:
                self.work_period_min = value
                self._restream(now)
            self._reply(8, setting, self.work_period_min, now)
