"""`sensord run` end to end against a real mosquitto: every reading arrives, in order, through outages.

Each test runs sim counter sensors (0, 1, 2, ...), so after de-duplication by seq a lost,
repeated or reordered reading shows as a gap in the sequence.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

import pytest
from daemon_harness import Node, assert_gapless, counter_values, readings, statuses, wait_until, write_config

from sensord.testing.broker import Mosquitto, Subscription
from sensord.testing.proxy import TcpProxy

pytestmark = pytest.mark.broker


def start(nodes: list[Node], config: Path) -> Node:
    node = Node(config).start()
    nodes.append(node)
    return node


def n_readings(sub: Subscription, n: int, timeout_s: float = 10.0) -> None:
    sub.wait_for(lambda msgs: len(readings(msgs)) >= n, timeout_s)


def test_run_delivers_status_meta_and_every_reading(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port)
    with Subscription(broker, "sensord/#") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 20)
        code, seconds = node.stop()
        assert code == 0, node.log()
        assert seconds < 5
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)
    rows = readings(sub.messages)
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(rows, sensor))
    seqs = sorted({r["seq"] for r in rows})
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert statuses(sub.messages) == ["online", "offline"]
    status = [m for m in sub.messages if m.topic == "sensord/n1/status"]
    assert all(m.retain is False for m in status)  # live deliveries; the broker keeps the retained copy
    meta = json.loads(next(m.payload for m in sub.messages if m.topic == "sensord/n1/meta"))
    assert meta["node"] == "n1" and meta["encoding"] == "compact"
    assert [s["name"] for s in meta["sensors"]] == ["c0", "c1"]
    assert meta["sensors"][0]["channels"] == [{"quantity": "value", "unit": "", "resolution": 1.0}]
    assert set(meta["buffer"]) >= {"pending_batches", "dropped_readings"}
    # SIGTERM lost nothing: the buffer is empty and nothing is left staged.
    with closing(sqlite3.connect(tmp_path / "buffer.db")) as db:
        assert db.execute("select count(*) from batch").fetchone() == (0,)
        assert db.execute("select count(*) from staged").fetchone() == (0,)


def test_seq_persists_across_restarts(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1)
    with Subscription(broker, "sensord/n1/data") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 5)
        assert node.stop()[0] == 0
        first = {r["seq"] for r in readings(sub.messages)}
        node = start(nodes, cfg)
        sub.wait_for(lambda msgs: {r["seq"] for r in readings(msgs)} - first, 10)
        assert node.stop()[0] == 0
    seqs = sorted({r["seq"] for r in readings(sub.messages)})
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert max(first) < max(seqs)


def test_broker_killed_and_restarted(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port)
    with Subscription(broker, "sensord/n1/+") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 10)
        broker.kill()
        time.sleep(1.5)  # readings pile up in the buffer meanwhile
        broker.restart()
        before = len(readings(sub.messages))
        n_readings(sub, before + 30, timeout_s=15)
        assert node.stop()[0] == 0
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    rows = readings(sub.messages)
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(rows, sensor))
    assert "lost" in node.log() or "cannot connect" in node.log()


def test_blackholed_link_will_fires_and_data_survives(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    keepalive_s = 2
    with TcpProxy(broker.host, broker.port) as proxy, \
            Subscription(broker, "sensord/n1/#") as sub:
        cfg = write_config(tmp_path / "s.toml", port=proxy.listen_port, keepalive_s=keepalive_s)
        node = start(nodes, cfg)
        n_readings(sub, 10)
        sub.wait_for(lambda msgs: "online" in statuses(msgs), 5)
        timeouts_before = broker.log_text().count("has exceeded timeout")
        proxy.blackhole()
        t0 = time.monotonic()
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 1.5 * keepalive_s + 7)
        will_after = time.monotonic() - t0
        # The will is the broker's doing (the proxy's blackhole is silent both ways): its log says
        # it timed the client out. This also covers the test kit's blackhole (tests/testing/test_proxy.py).
        wait_until(lambda: broker.log_text().count("has exceeded timeout") > timeouts_before, 2, "the broker's log")
        proxy.restore()
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["online"], 15)
        before = len(readings(sub.messages))
        n_readings(sub, before + 10, timeout_s=10)
        assert node.stop()[0] == 0
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    # The broker judges a client dead after 1.5 x keepalive; mosquitto before 2.0.21 (bookworm has
    # 2.0.11) only looks every 5 s, which adds up to 5 s.
    assert keepalive_s <= will_after <= 1.5 * keepalive_s + 5 + 0.5
    rows = readings(sub.messages)
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(rows, sensor))


@pytest.mark.parametrize("durability", ["undelivered", "interval"])
def test_kill_9_loses_at_most_the_commit_window(broker: Mosquitto, nodes: list[Node], tmp_path: Path,
                                                durability: str) -> None:
    commit_s = 0.5
    # No broker reachable for the first run: everything is in the buffer when it dies (in both
    # modes: "undelivered" holds nothing in memory while the link is down).
    cfg = write_config(tmp_path / "s.toml", port=1, sensors=1, max_age_s=0.4, commit_interval_s=commit_s,
                       buffer_extra=f'durability = "{durability}"')
    node = start(nodes, cfg)
    wait_until(lambda: " running: " in node.log(), 10, "the node starting")  # a loaded machine: seconds
    time.sleep(2.0)
    killed_at = time.time()
    node.kill9()
    with closing(sqlite3.connect(tmp_path / "buffer.db")) as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    write_config(tmp_path / "s.toml", port=broker.port, sensors=1, max_age_s=0.4, commit_interval_s=commit_s,
                 buffer_extra=f'durability = "{durability}"')
    with Subscription(broker, "sensord/n1/data") as sub:
        node = start(nodes, cfg)
        sub.wait_for(lambda msgs: any(r["ts"] > killed_at for r in readings(msgs)), 10)
        assert node.stop()[0] == 0
    rows = readings(sub.messages)
    first_run = [r for r in rows if r["ts"] < killed_at]
    values = counter_values(first_run, "c0")
    assert_gapless(values)
    taken_before_window = int((killed_at - commit_s - min(r["ts"] for r in first_run)) / 0.1)
    assert len(values) >= taken_before_window > 5
    assert "recovered" in node.log() or len(values) > 0


@pytest.mark.parametrize("durability", ["undelivered", "interval"])
def test_a_delivering_link_writes_nothing_to_the_buffer_file_unless_interval_is_asked(
        broker: Mosquitto, nodes: list[Node], tmp_path: Path, durability: str) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, max_age_s=0.2, commit_interval_s=0.2,
                       buffer_extra=f'durability = "{durability}"')
    wal = tmp_path / "buffer.db-wal"
    with Subscription(broker, "sensord/n1/data") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 5)  # connected: from here on the broker acknowledges every batch
        before = wal.stat().st_size, (tmp_path / "buffer.db").stat().st_mtime_ns
        batches = len(sub.messages)
        sub.wait_for(lambda msgs: len(msgs) >= batches + 8, 10)  # 8 batches, some 8 commit intervals
        after = wal.stat().st_size, (tmp_path / "buffer.db").stat().st_mtime_ns
        assert node.stop()[0] == 0
    if durability == "undelivered":
        assert after == before  # no seal, no ack, no staged chunk written
    else:
        assert after[0] > before[0]  # every batch sealed into the WAL, its readings staged first
    assert_gapless(counter_values(readings(sub.messages), "c0"))


def test_when_the_link_fails_what_is_pending_is_on_disk_within_the_commit_interval(
        broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    commit_s = 0.3
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, max_age_s=1.0, commit_interval_s=commit_s)
    with Subscription(broker, "sensord/n1/data") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 5)  # held in memory and acknowledged from there, until ...
        broker.kill()
        wait_until(lambda: "lost" in node.log(), 5, "the node noticing the broker is gone")
        time.sleep(3 * commit_s)  # the held batches at once, the open batch within a commit interval
        killed_at = time.time()
        node.kill9()
        broker.restart()
        node = start(nodes, cfg)
        sub.wait_for(lambda msgs: any(r["ts"] > killed_at for r in readings(msgs)), 15)
        assert node.stop()[0] == 0
    rows = readings(sub.messages)
    values = counter_values([r for r in rows if r["ts"] < killed_at], "c0")
    assert_gapless(values)
    # Everything read up to a commit interval before the kill survived it.
    taken_before_window = int((killed_at - commit_s - min(r["ts"] for r in rows)) / 0.1)
    assert len(values) >= taken_before_window > 10


def test_buffer_cap_drops_oldest_and_counts(nodes: list[Node], tmp_path: Path) -> None:
    # senml+json: some 50 bytes a reading, so the 64 KiB are full within a second or two; no broker,
    # so the stop waits stop_timeout_s for nothing.
    cfg = write_config(tmp_path / "s.toml", port=1, sensors=20, interval_s=0.01, max_age_s=0.1, stop_timeout_s=0.2,
                       buffer_extra="max_bytes = 65536", batch_extra='encoding = "senml+json"')
    node = start(nodes, cfg)
    wait_until(lambda: "dropp" in node.log(), 30, "the buffer reaching max_bytes")
    rss = []
    for _ in range(8):  # 2 s of dropping: some 10,000 readings through a full buffer
        time.sleep(0.25)
        status = Path(f"/proc/{node.pid}/status").read_text()
        rss.append(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))))
    assert node.stop()[0] == 0
    with closing(sqlite3.connect(tmp_path / "buffer.db")) as db:
        pending = db.execute("select coalesce(sum(size), 0) from batch").fetchone()[0]
        dropped = dict(db.execute("select key, value from meta").fetchall())
    assert pending <= 65536
    assert dropped["dropped_readings"] > 0 and dropped["dropped_batches"] > 0
    assert sum("dropp" in line for line in node.log().splitlines()) == 1  # once per episode
    assert max(rss) - min(rss) < 2048, rss  # KiB: flat while dropping


def test_sighup_reload_keeps_buffered_data(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1)
    with Subscription(broker, "sensord/n1/#") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 5)
        write_config(tmp_path / "s.toml", port=broker.port, sensors=2)
        node.signal(signal.SIGHUP)
        sub.wait_for(lambda msgs: counter_values(readings(msgs), "c1")[:3] == [0, 1, 2], 10)
        assert node.stop()[0] == 0
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    rows = readings(sub.messages)
    c0 = counter_values(rows, "c0")
    # The reload starts new sensor objects, so c0 counts from 0 again; before that, no gap.
    restart = next(i for i, v in enumerate(c0) if i and v == 0)
    assert_gapless(c0[:restart])
    assert_gapless(c0[restart:])
    assert "offline" not in statuses(sub.messages)[:-1]  # no offline flap on reload
    assert "reloaded" in node.log()


def test_sighup_with_a_bad_config_keeps_running_on_the_old_one(broker: Mosquitto, nodes: list[Node],
                                                              tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1)
    good = cfg.read_text()
    (tmp_path / "pw").write_text("secret\n")
    bad = {"empty": "", "cut short": good[:good.index("[[sensor]]")],
           "inf": good.replace("interval_s = 0.1", "interval_s = inf"),
           "password file missing": good.replace("[mqtt]\n",
                                                 f'[mqtt]\nusername = "u"\npassword_file = "{tmp_path}/none"\n')}
    with Subscription(broker, "sensord/n1/#") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 5)
        for i, text in enumerate(bad.values(), 1):
            cfg.write_text(text)
            node.signal(signal.SIGHUP)
            wait_until(lambda i=i: node.log().count("reload failed") == i, 10, f"reload {i} refused")
        seen = len(counter_values(readings(sub.messages), "c0"))
        sub.wait_for(lambda msgs: len(counter_values(readings(msgs), "c0")) >= seen + 5, 10)
        assert node.stop()[0] == 0
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    # c0 of the old config was read throughout, by the same sensor: a refused reload takes
    # nothing down (the counter never starts again, the link is never rebuilt).
    c0 = counter_values(readings(sub.messages), "c0")
    assert c0[0] == 0
    assert_gapless(c0)
    assert node.log().count("connected to ") == 1
    assert "offline" not in statuses(sub.messages)[:-1]
    lines = [line for line in node.log().splitlines() if line.startswith(("ERROR", "WARNING"))]
    assert lines == [f"ERROR sensord.daemon: reload failed, keeping the running config: {cfg}: {why}" for why in (
        "sensor: expected at least one [[sensor]] table, found none (an empty or cut-short file?)",
        "sensor: expected at least one [[sensor]] table, found none (an empty or cut-short file?)",
        "sensor[0].interval_s: expected a finite number > 0, found inf",
        f"mqtt.password_file: {tmp_path}/none: password file (mqtt.password_file) not found")]
    assert "reloaded" not in node.log()


def test_systemd_notify(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    import socket
    import threading

    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(0.2)
    got: list[str] = []
    done = threading.Event()

    def receive() -> None:  # as systemd does: read every datagram as it comes
        while not done.is_set():
            with suppress(TimeoutError):
                got.append(server.recv(512).decode())

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1)
    node = Node(cfg).start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    nodes.append(node)
    try:
        wait_until(lambda: any(m.startswith("STATUS=connected") for m in got) and got.count("WATCHDOG=1") >= 2,
                   10, "READY, STATUS and two watchdog pings")
        # A reload is announced and ends with READY=1 again, or systemd keeps the unit "reloading".
        node.signal(signal.SIGHUP)
        wait_until(lambda: got.count("READY=1") >= 2, 10, "READY=1 after the reload")
        assert node.stop()[0] == 0
        wait_until(lambda: "STOPPING=1" in got, 2, "STOPPING=1")
    finally:
        done.set()
        reader.join()
        server.close()
    reload = next(i for i, m in enumerate(got) if m.startswith("RELOADING=1\nMONOTONIC_USEC="))
    assert got.index("READY=1") < reload < len(got) - 1 - got[::-1].index("READY=1") < got.index("STOPPING=1")
    assert any(m.startswith("STATUS=connected, ") and m.endswith("batches pending") for m in got)


@pytest.mark.parametrize("encoding", ["senml+cbor", "senml+json", "json"])
def test_every_encoding_end_to_end(broker: Mosquitto, nodes: list[Node], tmp_path: Path, encoding: str) -> None:
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, batch_extra=f'encoding = "{encoding}"')
    with Subscription(broker, "sensord/n1/data") as sub:
        node = start(nodes, cfg)
        n_readings(sub, 8)
        assert node.stop()[0] == 0
    assert_gapless(counter_values(readings(sub.messages), "c0"))


def test_urgent_sensor_seals_at_once_and_max_bytes_splits(broker: Mosquitto, nodes: list[Node],
                                                          tmp_path: Path) -> None:
    # max_age_s = 60: without urgent nothing would be sent before the stop.
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=2, max_age_s=60,
                       batch_extra='urgent = ["c0"]\nmax_bytes = 256')
    with Subscription(broker, "sensord/n1/+") as sub:
        node = start(nodes, cfg)
        sub.wait_for(lambda msgs: len(counter_values(readings(msgs), "c0")) >= 5, 10)
        assert node.stop()[0] == 0
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 3)  # the last message of a stop
    assert all(len(m.payload) <= 256 for m in sub.messages if m.topic.endswith("/data"))
    rows = readings(sub.messages)
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(rows, sensor))


def test_home_assistant_discovery_follows_the_config(broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    """End to end through mosquitto: announced once, state after each delivery, a sensor removed by
    a reload removed from Home Assistant, nothing new at a restart, cleared when switched off.
    (The messages themselves: tests/test_homeassistant.py; a real Home Assistant: tests/ha/.)"""
    cfg = write_config(tmp_path / "s.toml", port=broker.port, node="ha1", sensors=2)
    config_topic, state_topic = "homeassistant/device/sensord_ha1/config", "sensord/ha1/state"
    with Subscription(broker, config_topic) as disc, Subscription(broker, state_topic) as st:
        node = start(nodes, cfg)
        st.wait_for(lambda msgs: len(msgs) >= 2, 10)
        (first,) = [json.loads(m.payload) for m in disc.messages]
        assert {"c0_value", "c1_value", "sensord_uptime"} <= set(first["cmps"])
        assert (first["avty_t"], first["stat_t"], first["dev"]["name"]) == ("sensord/ha1/status", state_topic, "ha1")
        values = json.loads(st.messages[0].payload)
        assert {k for k in values if not k.startswith("_")} and all(isinstance(v, int) for v in values.values())
        write_config(tmp_path / "s.toml", port=broker.port, node="ha1", sensors=1)
        node.signal(signal.SIGHUP)
        disc.wait_for(lambda msgs: len(msgs) >= 2, 10)
        assert json.loads(disc.messages[1].payload)["cmps"]["c1_value"] == {"p": "sensor"}
        assert node.stop()[0] == 0
        states_before = len(st.messages)
        node = start(nodes, cfg)  # a restart with the same sensors: no new device message
        st.wait_for(lambda msgs: len(msgs) >= states_before + 2, 10)
        assert len(disc.messages) == 2
        cfg.write_text(cfg.read_text() + "\n[homeassistant]\ndiscovery = false\n")
        node.signal(signal.SIGHUP)
        disc.wait_for(lambda msgs: len(msgs) == 3 and msgs[-1].payload == b"", 10)
        st.wait_for(lambda msgs: msgs[-1].payload == b"", 10)
        assert node.stop()[0] == 0
    assert "Traceback" not in node.log() and "WARNING sensord.mqtt.discovery" not in node.log()
