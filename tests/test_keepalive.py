"""sensord.mqtt.keepalive: PINGREQ only when nothing else went out, a dead broker noticed by its
missing PINGRESP. Fast tests on a virtual clock (the logic alone, then the link against the
in-memory broker); then what a real mosquitto sees, on both library generations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from sensord.config import MqttConfig
from sensord.errors import BrokerDisconnected
from sensord.mqtt import MqttLink, Will
from sensord.mqtt.compat import Failure
from sensord.mqtt.keepalive import keep_alive
from sensord.testing.broker import Mosquitto
from sensord.testing.clock import FakeClock
from sensord.testing.fake_mqtt import FakeBroker
from sensord.testing.proxy import TcpProxy

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


class Conn:
    """A connection on a virtual clock: the test says when packets go out; pings are recorded."""

    def __init__(self, clock: FakeClock, *, answers: bool = True) -> None:
        self.clock = clock
        self.answers = answers
        self.sent_at = clock.monotonic()
        self.pings: list[float] = []

    def send(self) -> None:
        self.sent_at = self.clock.monotonic()

    def idle_s(self) -> float:
        return self.clock.monotonic() - self.sent_at

    async def ping(self, timeout_s: float) -> None:
        self.send()
        self.pings.append(self.clock.monotonic())
        if not self.answers:
            await self.clock.sleep_until(self.clock.monotonic() + timeout_s)
            raise Failure("timeout")


def test_an_idle_connection_pings_once_per_keepalive() -> None:
    clock = FakeClock(start=0.0)
    conn = Conn(clock)

    async def main() -> None:
        task = asyncio.create_task(keep_alive(conn, keepalive_s=60, answer_s=30, clock=clock))
        await clock.run_until(300, sleepers=1)
        task.cancel()

    run(main())
    assert conn.pings == [60, 120, 180, 240, 300]


def test_packets_that_go_out_put_the_ping_off() -> None:
    clock = FakeClock(start=0.0)
    conn = Conn(clock)
    wakes: list[float] = []
    sleep_until = clock.sleep_until

    async def counted(deadline: float) -> None:
        wakes.append(deadline)
        await sleep_until(deadline)

    clock.sleep_until = counted  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.create_task(keep_alive(conn, keepalive_s=60, answer_s=30, clock=clock))
        for t in range(45, 600, 45):  # a publish every 45 s: never 60 s without a packet
            await clock.run_until(t, sleepers=1)
            conn.send()
        await clock.run_until(700, sleepers=1)
        task.cancel()

    run(main())
    assert conn.pings == [645]  # only once the publishing stopped (at 585)
    # It wakes only when a keepalive after the last packet it knew of ran out (to find that a
    # later one moved the deadline), never on a timer of its own.
    packets = [0, *range(45, 600, 45), 645]
    assert wakes and all(w - 60 in packets for w in wakes), wakes


def test_a_missing_pingresp_ends_it_with_the_reason() -> None:
    clock = FakeClock(start=0.0)
    conn = Conn(clock, answers=False)

    async def main() -> str:
        task = asyncio.create_task(keep_alive(conn, keepalive_s=60, answer_s=30, clock=clock))
        later = asyncio.create_task(clock.sleep_until(1000))  # parked, so that run_until goes on once it ended
        await clock.run_until(89, sleepers=2)
        assert not task.done()
        await clock.run_until(200, sleepers=1)
        later.cancel()
        return await task

    assert run(main()) == "no PINGRESP within 30 s"
    assert conn.pings == [60]


def test_a_lost_connection_is_not_mistaken_for_a_silent_broker() -> None:
    clock = FakeClock(start=0.0)

    class Lost(Conn):
        def idle_s(self) -> float:
            return 60.0  # the keepalive is due at once

        async def ping(self, timeout_s: float) -> None:
            raise Failure("lost", "the connection was lost")

    with pytest.raises(Failure, match="the connection was lost"):
        run(keep_alive(Lost(clock), keepalive_s=60, answer_s=30, clock=clock))


# -- the link, against the in-memory broker on the same virtual clock ------------------------------

def fake_link(broker: FakeBroker, clock: FakeClock, *, keepalive_s: int = 60) -> MqttLink:
    return MqttLink(config=MqttConfig(keepalive_s=keepalive_s), client_id="n1", timeout_s=30,
                    will=Will("sensord/n1/status", b"offline"), connection_factory=broker.connection, clock=clock)


def test_link_pings_only_while_nothing_is_published() -> None:
    clock = FakeClock(start=0.0)
    broker = FakeBroker(clock=clock)
    link = fake_link(broker, clock)

    async def main() -> None:
        await link.connect()
        await clock.run_until(130, sleepers=1)  # idle: PINGREQ at 60 and 120
        idle_pings = len(broker.pings)
        for t in range(150, 400, 50):
            await clock.run_until(t, sleepers=1)
            await link.publish("sensord/n1/data", b"x", qos=1)
        await clock.run_until(400, sleepers=1)
        assert len(broker.pings) == idle_pings == 2
        await link.disconnect()

    run(main())


def test_link_drops_a_connection_whose_broker_does_not_answer_pings() -> None:
    clock = FakeClock(start=0.0)
    broker = FakeBroker(clock=clock)
    link = fake_link(broker, clock)

    async def main() -> None:
        await link.connect()
        broker.ignore_pings()
        closed = asyncio.create_task(link.wait_closed())
        later = asyncio.create_task(clock.sleep_until(1000))  # parked, so that run_until goes on once it ended
        await clock.run_until(89, sleepers=2)
        assert not closed.done() and link.connected
        await clock.run_until(91, sleepers=1)
        later.cancel()
        with pytest.raises(BrokerDisconnected, match="connection lost: no PINGRESP within 30 s"):
            await closed
        assert not link.connected
        await link.disconnect()  # what the publisher does next; then it connects again
        broker.allow()
        await link.connect()
        await link.disconnect()

    run(main())
    assert broker.pings == ["n1"]
    assert broker.payloads("sensord/n1/status") == [b"offline"]  # dropped without DISCONNECT: the will
    assert len(broker.connects) == 2


# -- a real mosquitto: what goes over the wire ------------------------------------------------------

def pingreqs(broker: Mosquitto, client_id: str) -> int:
    return broker.log_text().count(f"Received PINGREQ from {client_id}")


def test_mosquitto_gets_pingreq_only_while_the_node_is_idle(broker: Mosquitto) -> None:
    link = MqttLink(config=MqttConfig(host=broker.host, port=broker.port, keepalive_s=1), client_id="ka-idle",
                    timeout_s=2.0)

    async def main() -> tuple[int, int]:
        await link.connect()
        await asyncio.sleep(2.6)  # idle: PINGREQ after 1 s and 2 s without a packet
        idle = pingreqs(broker, "ka-idle")
        end = time.monotonic() + 2.6
        while time.monotonic() < end:  # a publish every 0.4 s: the keepalive never comes due
            await link.publish("ka/data", b"x", qos=1)
            await asyncio.sleep(0.4)
        busy = pingreqs(broker, "ka-idle") - idle
        await link.disconnect()
        return idle, busy

    idle, busy = run(main())
    assert idle == 2 and busy == 0, (idle, busy)


def test_a_blackholed_link_is_dropped_for_its_missing_pingresp(broker: Mosquitto) -> None:
    with TcpProxy(broker.host, broker.port) as proxy:
        link = MqttLink(config=MqttConfig(host=proxy.host, port=proxy.listen_port, keepalive_s=1),
                        client_id="ka-hole", timeout_s=1.0)

        async def main() -> float:
            await link.connect()
            proxy.blackhole()
            t0 = time.monotonic()
            with pytest.raises(BrokerDisconnected, match="no PINGRESP within 1 s"):
                await link.wait_closed()
            took_s = time.monotonic() - t0
            await link.disconnect()
            return took_s

        took_s = run(main())
    assert 1.0 <= took_s < 3.0, took_s  # PINGREQ after 1 s idle, given up 1 s later
    assert proxy.discarded_bytes >= 2  # the PINGREQ went into the void
