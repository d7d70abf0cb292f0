"""sensord/mqtt (link, compat): `ack_when_handled`, a QoS 1 message acknowledged only when the
consumer asks for the next one, so a consumer that dies while handling it gets it again."""

from __future__ import annotations

import asyncio

import pytest

from sensord.config import MqttConfig
from sensord.mqtt import MqttLink
from sensord.testing.broker import Mosquitto
from sensord.testing.mqtt_client import connect

pytestmark = pytest.mark.broker


def link_to(broker: Mosquitto) -> MqttLink:
    return MqttLink(config=MqttConfig(host=broker.host, port=broker.port), client_id="acker",
                    session_expiry_s=60, timeout_s=5.0, ack_when_handled=True)


def publish(broker: Mosquitto, *payloads: bytes) -> None:
    client = connect(broker)
    for payload in payloads:
        client.publish("t/x", payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_a_message_not_handled_yet_comes_again_from_the_session(broker: Mosquitto) -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        link = link_to(broker)
        await link.connect()
        await link.subscribe("t/#", qos=1)
        publish(broker, b"one", b"two")
        messages = link.messages()
        first = await asyncio.wait_for(anext(messages), 5)
        assert first.payload == b"one"
        await link.disconnect()  # "died" while handling "one"
        link = link_to(broker)
        await link.connect()
        await link.subscribe("t/#", qos=1)
        publish(broker, b"three")
        messages = link.messages()
        again: list[bytes] = []
        while not again or again[-1] != b"three":
            again.append((await asyncio.wait_for(anext(messages), 5)).payload)
        await link.disconnect()  # while handling "three"
        link = link_to(broker)
        await link.connect()
        await link.subscribe("t/#", qos=1)
        publish(broker, b"four")
        messages = link.messages()
        last = [(await asyncio.wait_for(anext(messages), 5)).payload for _ in range(2)]
        await link.disconnect()
        return again, last

    # the same on both library generations: paho 2's manual acknowledgement, and on paho 1.6 the
    # PUBACK that sensord.mqtt.compat holds back until the consumer asks for the next message
    again, last = asyncio.run(scenario())
    assert again == [b"one", b"two", b"three"]
    assert last == [b"three", b"four"]  # "three" was the one in hand when the link went down
