"""The in-memory broker of the test kit (`sensord.testing.fake_mqtt.FakeBroker`), through the real
`MqttLink`: what it records, and the faults it injects."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from sensord.config import MqttConfig
from sensord.errors import BrokerDisconnected, BrokerRefused, BrokerTimeout, BrokerUnreachable
from sensord.mqtt import MqttLink, Received, Will
from sensord.testing.fake_mqtt import FakeBroker

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def link(broker: FakeBroker, client_id: str, will: Will | None = None) -> MqttLink:
    return MqttLink(config=MqttConfig(), client_id=client_id, connection_factory=broker.connection, timeout_s=5.0,
                    will=will)


def test_records_delivers_and_retains(fake_mqtt_broker: FakeBroker) -> None:
    broker = fake_mqtt_broker

    async def main() -> list[Received]:
        node, watcher = link(broker, "node"), link(broker, "watcher")
        await node.connect()
        await node.publish("s/n/status", b"online", qos=1, retain=True)
        await watcher.connect()
        await watcher.subscribe(["s/+/data", "s/n/#"])
        got: list[Received] = []

        async def collect() -> None:
            async for message in watcher.messages():
                got.append(message)

        task = asyncio.create_task(collect())
        await node.publish("s/n/data", b"x", qos=1, content_type="application/cbor")
        await node.publish("other/data", b"y", qos=0)
        await broker.wait_for(lambda: len(broker.published) == 3)
        while len(got) < 2:  # the collector takes them from the inbox
            await asyncio.sleep(0)
        await node.disconnect()
        await watcher.disconnect()
        await task
        return got

    got = run(main())
    # The retained status reaches the late subscriber with the retain flag; a live message without.
    assert got == [Received("s/n/status", b"online", True), Received("s/n/data", b"x", False)]
    assert broker.retained["s/n/status"].payload == b"online"
    assert [(m.topic, m.qos, m.content_type) for m in broker.published] == [
        ("s/n/status", 1, None), ("s/n/data", 1, "application/cbor"), ("other/data", 0, None)]
    assert broker.disconnects == [("node", None), ("watcher", None)]


def test_faults(fake_mqtt_broker: FakeBroker) -> None:
    broker = fake_mqtt_broker

    async def main() -> None:
        node = link(broker, "node", will=Will("s/n/status", b"offline"))
        broker.unreachable()
        with pytest.raises(BrokerUnreachable):
            await node.connect()
        broker.accept()
        await node.connect()
        broker.refuse_topic("s/n/data", 0x97)
        with pytest.raises(BrokerRefused, match="code 0x97"):
            await node.publish("s/n/data", b"x", qos=1)
        broker.allow()
        broker.lose_pubacks("s/n/data")
        with pytest.raises(BrokerTimeout):
            await node.publish("s/n/data", b"x", qos=1)  # 5 s x time_scale: 5 ms
        broker.allow()
        broker.hold_pubacks("s/n/data")
        held = asyncio.create_task(node.publish("s/n/data", b"held", qos=1))
        await broker.wait_for(lambda: len(broker.attempts) == 3)
        assert not held.done()
        broker.release()
        await held
        broker.drop()
        with pytest.raises(BrokerDisconnected):
            await node.wait_closed()

    run(main())
    assert broker.payloads("s/n/data") == [b"held"]
    assert broker.published[-1].will and broker.payloads("s/n/status") == [b"offline"]
