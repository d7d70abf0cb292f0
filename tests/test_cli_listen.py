"""`sensord listen` across broker restarts, with a persistent session, and its permanent errors
(against a real mosquitto; the CLI's plain runs are in test_cli_delivery.py)."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

import pytest

from sensord.cli.listen import listen
from sensord.config import MqttConfig
from sensord.encoding import encode_batch
from sensord.errors import BrokerAuthError
from sensord.mqtt import Backoff
from sensord.sensor import Sample
from sensord.testing.broker import Mosquitto, publish

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.broker


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))
    return wrapper


def batch(seq: int, value: float) -> bytes:
    return encode_batch("barn", seq, [Sample("air", "temperature", value, "\u00b0C", 1_700_000_000.0 + seq)])


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Wait for `condition` (a printed line, a notice), checking every 20 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def start(broker: Mosquitto, out: list[dict[str, Any]], notes: list[str], *, protocol: Literal["5", "3.1.1"] = "5",
          backoff: Backoff | None = None, session: str | None = None, count: int | None = None,
          mqtt: MqttConfig | None = None) -> asyncio.Task[int]:
    return asyncio.create_task(listen(
        host=broker.host, port=broker.port, prefix="sensord", node="barn", count=count, timeout_s=60,
        status=True, emit=out.append, mqtt=mqtt or MqttConfig(protocol=protocol, keepalive_s=5),
        session=session, backoff=backoff, say=notes.append))


async def subscribed(broker: Mosquitto, times: int) -> None:
    await asyncio.to_thread(broker.wait_for_log, "Sending SUBACK", count=times, timeout_s=15)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@run_async
async def test_listen_survives_a_broker_restart_and_prints_the_missed_status(protocol: Literal["5", "3.1.1"]) -> None:
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    with Mosquitto(persistence=True) as broker:
        publish(broker, "sensord/barn/status", b"online", retain=True)
        # rand 0: every delay is first_s / 2 = 1 s, time enough to change the status meanwhile
        task = start(broker, out, notes, protocol=protocol, backoff=Backoff(max_s=4, first_s=2, rand=lambda: 0.0))
        await subscribed(broker, 1)
        publish(broker, "sensord/barn/data", batch(1, 20.5))
        await until(lambda: len(out) == 2, "the first reading")
        await asyncio.to_thread(broker.restart)
        publish(broker, "sensord/barn/status", b"offline", retain=True)  # while listen waits to reconnect
        await until(lambda: len(notes) == 2, "the reconnect notice")
        await subscribed(broker, 2)  # the log goes on across restarts
        publish(broker, "sensord/barn/data", batch(2, 21.5))
        await until(lambda: len(out) == 4, "the reading after the restart")
        assert not task.done()
        task.cancel()
    assert out[0] == {"node": "barn", "status": "online"}
    assert out[1]["value"] == 20.5
    assert out[2] == {"node": "barn", "status": "offline"}  # the retained one, changed while away
    assert out[3]["value"] == 21.5
    assert len(notes) == 2, notes
    assert notes[0].startswith(f"MQTT broker 127.0.0.1:{broker.port}: ") and notes[0].endswith("; reconnecting")
    assert notes[1] == f"connected to 127.0.0.1:{broker.port} again"


@run_async
async def test_listen_does_not_repeat_an_unchanged_status_after_a_reconnect() -> None:
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    with Mosquitto(persistence=True) as broker:
        publish(broker, "sensord/barn/status", b"online", retain=True)
        broker.wait_persisted(b"online")
        task = start(broker, out, notes, backoff=Backoff(max_s=1, first_s=0.2))
        await subscribed(broker, 1)
        broker.kill()  # a crash: the kernel closes the sockets
        await asyncio.to_thread(broker.start)
        await until(lambda: len(notes) == 2, "the reconnect notice")
        publish(broker, "sensord/barn/data", batch(3, 22.5))
        await until(lambda: len(out) == 2, "the reading after the restart")
        task.cancel()
    assert out[0] == {"node": "barn", "status": "online"} and out[1]["value"] == 22.5


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@run_async
async def test_listen_session_gets_the_batches_published_while_it_was_away(protocol: Literal["5", "3.1.1"]) -> None:
    out: list[dict[str, Any]] = []
    with Mosquitto() as broker:
        first = start(broker, out, [], protocol=protocol, session="t1", count=1)
        await subscribed(broker, 1)
        publish(broker, "sensord/barn/data", batch(1, 1.0))
        assert await asyncio.wait_for(first, 15) == 0
        for seq in (2, 3):  # listen is not running: the broker queues them for the session
            publish(broker, "sensord/barn/data", batch(seq, float(seq)))
        assert await asyncio.wait_for(start(broker, out, [], protocol=protocol, session="t1", count=2), 15) == 0
    assert [row["seq"] for row in out if "seq" in row] == [1, 2, 3]


@run_async
async def test_listen_without_session_misses_what_came_while_it_was_away() -> None:
    out: list[dict[str, Any]] = []
    with Mosquitto() as broker:
        first = start(broker, out, [], count=1)
        await subscribed(broker, 1)
        publish(broker, "sensord/barn/data", batch(1, 1.0))
        await asyncio.wait_for(first, 15)
        publish(broker, "sensord/barn/data", batch(2, 2.0))
        second = start(broker, out, [], count=1)
        await subscribed(broker, 2)
        publish(broker, "sensord/barn/data", batch(3, 3.0))
        await asyncio.wait_for(second, 15)
    assert [row["seq"] for row in out if "seq" in row] == [1, 3]


@run_async
async def test_listen_stops_on_a_permanent_error_after_a_restart(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("right\n")
    secret.chmod(0o600)
    notes: list[str] = []
    with Mosquitto(password=("reader", "right")) as broker:
        mqtt = MqttConfig(username="reader", password_file=str(secret), keepalive_s=5)
        task = start(broker, [], notes, mqtt=mqtt, backoff=Backoff(max_s=1, first_s=0.2))
        await subscribed(broker, 1)
        broker.stop()
        broker._write_password_file("reader", "changed")  # the password changed on the broker
        await asyncio.to_thread(broker.start)
        with pytest.raises(BrokerAuthError, match="refused the connection"):
            await asyncio.wait_for(task, 15)
    assert len(notes) == 1 and notes[0].endswith("; reconnecting"), notes


def test_listen_cli_exits_1_with_one_line_on_wrong_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("wrong\n")
    secret.chmod(0o600)
    cfg = tmp_path / "s.toml"
    with Mosquitto(password=("reader", "right")) as broker:
        cfg.write_text(f'[node]\nid = "barn"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                       f'username = "reader"\npassword_file = "{secret}"\n[plugins]\ndirs = []\n')
        out = subprocess.run([sys.executable, "-m", "sensord", "listen", "-c", str(cfg), "--session", "s",
                              "--timeout", "20"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith(f"sensord: MQTT broker 127.0.0.1:{broker.port} refused the connection"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
