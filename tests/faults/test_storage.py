"""Faults of the buffer's storage, with `sensord run` as a subprocess and a real mosquitto:
a tiny tmpfs that fills (broker up, broker down, at SIGTERM), damaged buffer files, and a buffer
the daemon cannot write. Counter sensors, so every loss and every repeat is counted."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from daemon_harness import ROOT, Node, assert_gapless, counter_values, readings, wait_until, write_config
from faults.conftest import TinyDisk

from sensord.buffer import Buffer
from sensord.encoding import decode
from sensord.testing.broker import Mosquitto, free_port
from sensord.testing.mqtt_client import Message, Subscription
from sensord.testing.proxy import TcpProxy

pytestmark = pytest.mark.broker


def config_on(disk: TinyDisk, tmp_path: Path, *, port: int, **kwargs: object) -> Path:
    """write_config's config, with the buffer on the tiny disk (the config and the log stay off it)."""
    cfg = write_config(tmp_path / "s.toml", port=port, **kwargs)  # type: ignore[arg-type]
    cfg.write_text(cfg.read_text().replace(f'path = "{tmp_path / "buffer.db"}"',
                                           f'path = "{disk.path / "buffer.db"}"'))
    return cfg


def seq_counts(messages: list[Message]) -> Counter[int]:
    return Counter(decode(m.payload).seq for m in messages if m.topic.endswith("/data"))


def wait_for_a_seal(disk: TinyDisk) -> None:
    """Until the WAL holds some batches (the daemon locks the file; its size is what we can see):
    the schema is 6 pages, a seal or a stage 2 to 3."""
    wal = disk.path / "buffer.db-wal"
    wait_until(lambda: wal.exists() and wal.stat().st_size > 30 * 4120, 10, "batches sealed")


def test_disk_full_with_the_broker_up_sends_each_batch_once(
        tmp_path: Path, tiny_disk: TinyDisk, mqtt_broker: Mosquitto, nodes: list[Node]) -> None:
    port = free_port()  # nothing listens yet: the node buffers
    cfg = config_on(tiny_disk, tmp_path, port=port, sensors=2, interval_s=0.05, max_age_s=0.2,
                    commit_interval_s=0.2)
    with Subscription(mqtt_broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        wait_for_a_seal(tiny_disk)
        tiny_disk.fill()  # the acknowledgements cannot be written now
        with TcpProxy(mqtt_broker.host, mqtt_broker.port, listen_port=port):
            wait_until(lambda: "connected to" in node.log(), 10, "the node connects")
            sub.wait_for(lambda msgs: len(msgs) >= 3, 10)
            time.sleep(1.0)  # a window in which a resend loop would publish hundreds of times
            while_full = seq_counts(sub.messages)
            assert set(while_full.values()) == {1}, f"batches sent more than once: {while_full}"
            assert node.log().count("WARNING sensord.buffer") == 1  # one line for the streak
            tiny_disk.free()
            wait_until(lambda: "writes succeed again" in node.log(), 10, "the disk has room again")
            code, _ = node.stop()
    assert code == 0
    counts = seq_counts(sub.messages)
    assert set(counts.values()) == {1}  # no batch twice, not even after the disk had room again
    rows = readings(sub.messages)
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(rows, sensor))  # nothing lost


def test_disk_full_under_load_keeps_reading_at_the_configured_rate(
        tmp_path: Path, tiny_disk: TinyDisk, mqtt_broker: Mosquitto, nodes: list[Node]) -> None:
    sensors, interval_s = 40, 0.025  # 1600 readings/s
    port = free_port()
    cfg = config_on(tiny_disk, tmp_path, port=port, sensors=sensors, interval_s=interval_s, max_age_s=0.2,
                    commit_interval_s=0.2)
    with Subscription(mqtt_broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        wait_until(lambda: "running: node" in node.log(), 10, "the node runs")
        started = time.monotonic()
        wait_for_a_seal(tiny_disk)
        tiny_disk.fill()
        time.sleep(2.0)  # the load runs against the full disk, broker down (3,200 reads)
        tiny_disk.free()
        with TcpProxy(mqtt_broker.host, mqtt_broker.port, listen_port=port):
            wait_until(lambda: "writes succeed again" in node.log(), 10, "the disk has room again")
            elapsed = time.monotonic() - started
            code, _ = node.stop()
    assert code == 0
    rows = readings(sub.messages)
    assert set(seq_counts(sub.messages).values()) == {1}
    expected = elapsed / interval_s
    for i in range(sensors):
        values = counter_values(rows, f"c{i}")
        assert_gapless(values)  # all of it delivered
        assert len(values) >= 0.8 * expected, f"c{i}: {len(values)} reads in {elapsed:.1f} s, expected {expected:.0f}"


def test_disk_full_at_sigterm_every_reading_is_stored_or_counted(
        tmp_path: Path, tiny_disk: TinyDisk, nodes: list[Node]) -> None:
    sensors, interval_s = 4, 0.05
    cfg = config_on(tiny_disk, tmp_path, port=free_port(), sensors=sensors, interval_s=interval_s,
                    max_age_s=0.2, commit_interval_s=0.2, stop_timeout_s=0.2)  # no broker to wait for
    node = Node(cfg).start()
    nodes.append(node)
    wait_until(lambda: "running: node" in node.log(), 10, "the node runs")
    started = time.monotonic()
    wait_for_a_seal(tiny_disk)
    tiny_disk.fill()
    time.sleep(1.0)
    code, exit_s = node.stop()
    elapsed = time.monotonic() - started - exit_s  # reading ends at SIGTERM
    assert code == 74  # EX_IOERR: readings were lost
    errors = [line for line in node.log().splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, errors
    prefix = "ERROR sensord.daemon: stopping: "
    assert errors[0].startswith(prefix)
    lost = int(errors[0][len(prefix):].split()[0])
    assert errors[0].endswith(f"readings could not be stored (database or disk is full at "
                              f"{tiny_disk.path / 'buffer.db'}) and are lost")
    tiny_disk.free()
    with Buffer.open(tiny_disk.path / "buffer.db", max_bytes=1 << 30) as buf:
        stored = [r for b in buf.peek(10_000) for r in decode(b.payload).samples]
        staged = buf.staged_readings()
    per_sensor = Counter(s.sensor for s in stored)
    for i in range(sensors):  # what is on disk is each sensor's first readings, none missing
        assert sorted(int(s.value) for s in stored if s.sensor == f"c{i}") == list(range(per_sensor[f"c{i}"]))
    total = len(stored) + staged + lost  # every reading is on disk or counted
    expected = sensors * elapsed / interval_s
    assert 0.75 * expected <= total <= 1.1 * expected + sensors, (len(stored), staged, lost, expected)
    assert lost >= 0.5 * sensors * 1.0 / interval_s  # the second on a full disk


def test_disk_full_while_batches_wait_in_memory_for_a_puback_counts_them_at_sigterm(
        tmp_path: Path, tiny_disk: TinyDisk, mqtt_broker: Mosquitto, nodes: list[Node]) -> None:
    """"undelivered" durability: a blackholed link sends no PUBACK, the held batches cannot be
    written (full disk): a stop counts them in one ERROR line and exits 74; nothing delivered
    before is lost or sent twice after the restart."""
    with TcpProxy(mqtt_broker.host, mqtt_broker.port) as proxy, \
            Subscription(mqtt_broker, "sensord/n1/data") as sub:
        cfg = config_on(tiny_disk, tmp_path, port=proxy.listen_port, sensors=2, interval_s=0.05, max_age_s=0.2,
                        commit_interval_s=0.3, stop_timeout_s=0.3)
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 10, 10)  # held in memory, acknowledged there
        before_fill = {decode(m.payload).seq for m in sub.messages}
        tiny_disk.fill()
        proxy.blackhole()  # no PUBACK: the held batches are due for the disk after 0.3 s, which is full
        time.sleep(1.0)
        code, _ = node.stop()
        assert code == 74
        errors = [line for line in node.log().splitlines() if line.startswith("ERROR")]
        assert len(errors) == 1, errors
        prefix = "ERROR sensord.daemon: stopping: "
        assert errors[0].startswith(prefix) and "undelivered readings could not be written (database or disk " \
            "is full" in errors[0], errors
        assert int(errors[0][len(prefix):].split()[0]) >= 2 * 0.5 / 0.05  # the held batches of the last second
        delivered = len(sub.messages)
        tiny_disk.free()
        proxy.restore()
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(msgs) > delivered + 2, 10)
        assert node.stop()[0] == 0
    # A batch sealed before the first connect is in the file; if its acknowledgement came just
    # after the fill, its delete failed and it goes out once more at the restart (documented
    # at-least-once). Nothing else twice.
    repeated = {seq for seq, n in seq_counts(sub.messages).items() if n > 1}
    assert repeated <= before_fill and set(seq_counts(sub.messages).values()) <= {1, 2}, repeated
    rows = readings(sub.messages[:delivered])
    for sensor in ("c0", "c1"):
        assert_gapless(counter_values(rows, sensor))


def _first_seen(messages: list[Message]) -> tuple[int, list[int]]:
    """A consumer that drops repeats by seq, as the docs advise: (readings dropped, seqs in order)."""
    seen: set[int] = set()
    dropped = 0
    order = []
    for m in messages:
        batch = decode(m.payload)
        order.append(batch.seq)
        if batch.seq in seen:
            dropped += len(batch.samples)
        seen.add(batch.seq)
    return dropped, order


@pytest.mark.parametrize("damage", ["wal deleted", "db emptied"])
def test_a_damaged_buffer_after_kill_9_never_makes_a_deduplicating_consumer_drop_new_readings(
        tmp_path: Path, mqtt_broker: Mosquitto, nodes: list[Node], damage: str) -> None:
    cfg = write_config(tmp_path / "s.toml", port=mqtt_broker.port, sensors=1, interval_s=0.05,
                       max_age_s=0.2, commit_interval_s=0.2)
    db = tmp_path / "buffer.db"
    with Subscription(mqtt_broker, "sensord/n1/data") as sub:
        first = Node(cfg).start()
        nodes.append(first)
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 10, 10)
        first.kill9()
        before = len(sub.messages)
        if damage == "wal deleted":
            Path(f"{db}-wal").unlink()
        else:
            db.write_bytes(b"")
        second = Node(cfg).start()
        nodes.append(second)
        sub.wait_for(lambda msgs: len(readings(msgs[before:])) >= 10, 10)
        assert second.stop()[0] == 0
    old = [decode(m.payload).seq for m in sub.messages[:before]]
    new = [decode(m.payload) for m in sub.messages[before:]]
    assert min(b.seq for b in new) > max(old)  # a consumer keeping "the last seq" drops nothing
    dropped, _ = _first_seen(sub.messages[before:])
    dropped_all, _ = _first_seen(sub.messages)
    assert dropped_all == dropped == 0  # nor does one keeping every seq it saw
    assert_gapless([int(s.value) for b in new for s in b.samples])  # the second run: all of it


def test_a_garbled_batch_is_quarantined_named_and_the_others_delivered(
        tmp_path: Path, mqtt_broker: Mosquitto, nodes: list[Node]) -> None:
    cfg = write_config(tmp_path / "s.toml", port=free_port(), sensors=1, interval_s=0.05, max_age_s=0.2,
                       commit_interval_s=0.2, stop_timeout_s=0.2)
    db = tmp_path / "buffer.db"
    node = Node(cfg).start()  # no broker: everything stays in the buffer (and the stop waits 0.2 s for none)
    nodes.append(node)
    wait_until(lambda: "cannot connect" in node.log(), 10, "the node buffers")
    time.sleep(1.0)
    assert node.stop()[0] == 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    stored = conn.execute("SELECT seq, readings, payload FROM batch ORDER BY seq").fetchall()
    staged = conn.execute("SELECT COUNT(*) FROM staged").fetchone()[0]
    conn.close()
    assert len(stored) >= 3 and staged == 0
    bad_seq, bad_readings, bad_payload = stored[1]
    data = db.read_bytes()
    at = data.index(bad_payload) + len(bad_payload) // 2
    db.write_bytes(data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:])  # one byte, past quick_check

    cfg.write_text(cfg.read_text().replace(f"port = {cfg.read_text().split('port = ')[1].split()[0]}",
                                           f"port = {mqtt_broker.port}"))
    with Subscription(mqtt_broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        wait_until(lambda: "fails its checksum" in node.log(), 10, "the garbled batch found")
        sub.wait_for(lambda msgs: {decode(m.payload).seq for m in msgs} >= {s for s, _, _ in stored} - {bad_seq},
                     10)
        assert node.stop()[0] == 0
    received = seq_counts(sub.messages)
    assert bad_seq not in received
    errors = [line for line in node.log().splitlines() if "fails its checksum" in line]
    assert len(errors) == 1
    assert errors[0].startswith(f"ERROR sensord.buffer: buffer {db}: batch seq {bad_seq} ({bad_readings} readings) "
                                "fails its checksum")
    old = [r for m in sub.messages for r in decode(m.payload).samples
           if decode(m.payload).seq <= stored[-1][0]]
    assert len(old) == sum(n for _, n, _ in stored) - bad_readings  # exactly the garbled batch is missing
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT seq, readings FROM quarantine").fetchall() == [(bad_seq, bad_readings)]
    conn.close()


def _run(cfg: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "sensord", "run", "-c", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def test_a_read_only_file_system_exits_73_naming_path_cause_and_fix(tmp_path: Path, tiny_disk: TinyDisk) -> None:
    cfg = config_on(tiny_disk, tmp_path, port=free_port(), sensors=1)
    Buffer.open(tiny_disk.path / "buffer.db", max_bytes=1 << 20).close()
    tiny_disk.remount("ro")
    proc = _run(cfg)
    assert proc.returncode == 73, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("sensord:")]
    assert line == (f"sensord: buffer {tiny_disk.path / 'buffer.db'}: cannot write: {tiny_disk.path} is on a "
                    "read-only file system; remount it read-write, or set [buffer] path to a writable place "
                    "(an SD card that turned read-only by itself is failing: see dmesg)")


def test_a_buffer_file_the_user_cannot_write_exits_73_naming_path_cause_and_fix(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=free_port(), sensors=1)
    db = tmp_path / "buffer.db"
    Buffer.open(db, max_bytes=1 << 20).close()
    subprocess.run(["chown", "nobody", str(db)], check=True)
    db.chmod(0o600)
    # root without the capabilities that bypass file permissions: a service user, in effect.
    proc = _run(cfg, "setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
    assert proc.returncode == 73, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("sensord:")]
    assert line == (f"sensord: buffer {db}: cannot write: permission denied for user root: file {db} belongs to "
                    f"nobody with mode 0600; fix: chown root {db}, or run sensord as nobody")


def test_the_service_does_not_restart_on_exit_73() -> None:
    unit = (ROOT / "debian" / "sensord.service").read_text()
    (line,) = [line for line in unit.splitlines() if line.startswith("RestartPreventExitStatus=")]
    assert set(line.split("=", 1)[1].split()) == {"73", "78"}
