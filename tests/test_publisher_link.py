"""What cuts the publisher's reconnect backoff short: the kernel's link-up events and urgent
readings (against the in-memory broker), and the backoff's schedule over a 10-minute outage."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from test_publisher import LOGGER, Node, RecordingBackoff, _close_buffers, run  # noqa: F401 (the fixture)

from sensord.mqtt import Backoff
from sensord.mqtt.reconnect import attempt_times
from sensord.testing.fake_mqtt import FakeBroker


@pytest.fixture
def broker(fake_mqtt_broker: FakeBroker) -> FakeBroker:
    return fake_mqtt_broker


class SlowBackoff(Backoff):
    """Real delays of `step_s` (longer than any test waits): only a cut ends a step early."""

    def __init__(self, step_s: float = 30.0) -> None:
        super().__init__(max_s=step_s, first_s=step_s, rand=lambda: 1.0)
        self.resets = 0

    def reset(self) -> None:
        super().reset()
        self.resets += 1


def slow_node(tmp_path: Path, broker: FakeBroker) -> tuple[Node, SlowBackoff]:
    node = Node(tmp_path, broker)
    backoff = SlowBackoff()
    node.publisher.backoff = backoff
    return node, backoff


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def attempts_settle(broker: FakeBroker, n: int) -> None:
    await until(lambda: len(broker.connects) >= n)
    await asyncio.sleep(0.05)  # nothing more may follow: a further attempt would come at once
    assert len(broker.connects) == n, [c.client_id for c in broker.connects]


def test_link_up_ends_the_backoff_and_connects_at_once(tmp_path: Path, broker: FakeBroker,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        broker.unreachable()
        node, backoff = slow_node(tmp_path, broker)
        node.seal(2)
        node.start()
        await attempts_settle(broker, 1)  # then a 30 s step
        broker.accept()
        loop = asyncio.get_running_loop()
        began = loop.time()
        node.publisher.link_up("default route added via 10.200.0.1")
        await until(lambda: node.pending() == 0)
        assert loop.time() - began < 1.0
        assert backoff.resets >= 1
        await node.finish()

    with caplog.at_level(logging.INFO, logger=LOGGER):
        run(main())
    assert "default route added via 10.200.0.1: connecting now" in caplog.text


def test_link_up_while_the_link_stays_down_retries_each_time(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        broker.unreachable()
        node, _ = slow_node(tmp_path, broker)
        node.seal()
        node.start()
        await attempts_settle(broker, 1)
        for n in (2, 3):  # carrier, then the address: each an attempt, none waits out the step
            node.publisher.link_up("carrier up on wlan0")
            await attempts_settle(broker, n)
        await node.finish(timeout_s=0.1)

    run(main())


def test_urgent_readings_get_one_extra_attempt_per_backoff_step(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        broker.unreachable()
        node, backoff = slow_node(tmp_path, broker)
        node.seal()
        node.start()
        await attempts_settle(broker, 1)
        for _ in range(3):  # a door banging: three urgent readings in one step
            node.publisher.urgent()
            await asyncio.sleep(0.02)
        await attempts_settle(broker, 2)  # one extra attempt, not three
        assert backoff.resets == 0  # the step goes on: an urgent reading does not restart the backoff
        node.publisher.link_up("carrier up on eth0")  # a link event still cuts it
        await attempts_settle(broker, 3)
        node.publisher.urgent()  # a new step: one extra attempt again
        await attempts_settle(broker, 4)
        await node.finish(timeout_s=0.1)

    run(main())


def test_urgent_while_connected_changes_nothing(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node, _ = slow_node(tmp_path, broker)
        node.start()
        await attempts_settle(broker, 1)
        node.publisher.urgent()
        node.seal()
        await until(lambda: node.pending() == 0)
        assert len(broker.connects) == 1
        await node.finish()

    run(main())


class ThousandfoldBackoff(RecordingBackoff):
    """The default backoff (1 s doubling to 60 s) with the jitter at its mean, a thousand times faster."""

    def __init__(self) -> None:
        Backoff.__init__(self, max_s=60.0, rand=lambda: 0.5)
        self.delays = []


def test_ten_minutes_of_outage_take_the_documented_number_of_attempts(tmp_path: Path, broker: FakeBroker) -> None:
    """The computed schedule (`attempt_times`, what docs and `check` quote) against the publisher's
    real loop with the default backoff at 1/1000 time: a refused attempt costs no time, so the
    n-th attempt starts after the sum of the first n-1 delays."""
    schedule = attempt_times(max_s=60.0, horizon_s=600.0)
    assert len(schedule) == 19 and schedule[:7] == [0.0, 0.75, 2.25, 5.25, 11.25, 23.25, 47.25]

    async def main() -> list[float]:
        broker.unreachable()
        node = Node(tmp_path, broker, reconnect_max_s=60.0)
        backoff = ThousandfoldBackoff()
        node.publisher.backoff = backoff
        node.seal()
        node.start()
        await until(lambda: sum(backoff.delays) >= 600.0, timeout_s=5.0)
        await node.finish(timeout_s=0.01)
        return backoff.delays

    delays = run(main())
    started, now = [], 0.0
    for delay in [0.0, *delays]:
        now += delay
        if now < 600.0:
            started.append(now)
    assert started == pytest.approx(schedule)


def no_route(broker: FakeBroker) -> None:
    broker.os_error(OSError(errno.ENETUNREACH, "Network is unreachable"))


def test_duty_cycle_without_a_route_waits_for_the_link_instead_of_retrying(
        tmp_path: Path, broker: FakeBroker, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        no_route(broker)
        node = Node(tmp_path, broker, mode="duty_cycle", reconnect_max_s=30.0)
        node.publisher.link_watched = True
        node.seal()
        node.start()
        await attempts_settle(broker, 1)
        await asyncio.sleep(0.3)  # the backoff (a thousandth of 1, 2, 4 ... s) would have tried ~10 times
        assert len(broker.connects) == 1
        broker.accept()
        node.publisher.link_up("address 10.0.0.7 added on wwan0")
        await until(lambda: node.pending() == 0)
        await node.finish()

    with caplog.at_level(logging.INFO, logger=LOGGER):
        run(main())
    assert "no route to localhost: waiting for the link to come back (or 30 s)" in caplog.text
    assert "address 10.0.0.7 added on wwan0: connecting now" in caplog.text


def test_duty_cycle_without_the_watch_keeps_the_backoff(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        no_route(broker)
        node = Node(tmp_path, broker, mode="duty_cycle")
        node.seal()
        node.start()
        await until(lambda: len(broker.connects) >= 3)  # a thousandth of 1 s, 2 s ...
        await node.finish(timeout_s=0.01)

    run(main())


def test_duty_cycle_asleep_ignores_link_events(tmp_path: Path, broker: FakeBroker) -> None:
    async def main() -> None:
        node = Node(tmp_path, broker, mode="duty_cycle")
        node.publisher.link_watched = True
        node.seal()
        node.start()
        await until(lambda: node.pending() == 0 and not node.publisher.connected)
        assert len(broker.connects) == 1
        for what in ("carrier up on wlan0", "default route added via 10.0.0.1"):
            node.publisher.link_up(what)
        await asyncio.sleep(0.1)
        assert len(broker.connects) == 1  # nothing to send: the radio stays quiet
        node.seal()
        await until(lambda: node.pending() == 0)
        assert len(broker.connects) == 2
        await node.finish()

    run(main())


@pytest.mark.parametrize("age_s", [3600.0, 0.0])
def test_a_link_event_while_connected_counts_only_if_recent(tmp_path: Path, broker: FakeBroker, age_s: float) -> None:
    """A link that flapped faster than the keepalive noticed: the event came while the publisher
    still thought itself connected, and cuts the first step after the loss. One from an hour ago
    (a DHCP renewal) does not."""
    async def main() -> None:
        node, _ = slow_node(tmp_path, broker)
        node.start()
        await attempts_settle(broker, 1)
        node.publisher.link_up("address 10.0.0.8 added on wlan0")
        node.publisher._link_up_at -= age_s
        broker.unreachable()
        broker.drop()
        await until(lambda: not node.publisher.connected)
        await attempts_settle(broker, 1 if age_s else 2)  # else the first step is 30 s
        await node.finish(timeout_s=0.1)

    run(main())
