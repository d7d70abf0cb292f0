"""The node comes back within 2 s of its link: a real link outage in network namespaces the test
makes (two of them, joined by a veth pair: mosquitto and a `sensord listen --session` on one side
at 10.200.0.1, `sensord run` on the other at 10.200.0.2; the host's own network is not touched).

Each run sets the node's end of the veth down, waits until the node has noticed (keepalive 2 s)
and spent a while in its reconnect backoff (`reconnect_max_s = 60`, so without link events its
next attempt could be up to 8 s away), sets it up and measures until the broker logs the node's
CONNECT. Needs root (`ip netns`) and mosquitto; skipped otherwise. The median over the runs is
printed (pytest -s) and must be under 2 s; every reading must arrive, in order. The same with
the node unable to open AF_NETLINK (as in a sandbox without it) gives the baseline: the backoff
alone (figures only; its latency depends on the jitter).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensord.mqtt.reconnect import attempt_times
from sensord.testing.broker import INSTALL_HINT

ROOT = Path(__file__).resolve().parents[1]
BROKER_IP, NODE_IP = "10.200.0.1", "10.200.0.2"  # private, and only inside the test's namespaces
RUNS = 5
OUTAGE_S = 6.0  # after the node noticed the loss: its backoff has grown to 4-8 s steps by then
pytestmark = pytest.mark.broker


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def wait_for(path: Path, text: str, *, count: int = 1, timeout_s: float = 15.0, poll_s: float = 0.005) -> float:
    """Wait until `text` occurs `count` times in the file; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic()
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return now
        if now > deadline:
            tail = path.read_text(errors="replace")[-3000:] if path.exists() else "(no file)"
            raise AssertionError(f"{path.name}: {text!r} x{count} not seen in {timeout_s} s:\n{tail}")
        time.sleep(poll_s)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair, addressed and up; deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns); CI runs as root")
    if shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
        pytest.fail("ip is not installed: apt-get install iproute2 (make deps-system does)")
    tag = f"sdt{os.getpid()}"
    broker_ns, node_ns = f"{tag}-b", f"{tag}-n"
    try:
        ip("netns", "add", broker_ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"ip netns add is not permitted here: {exc.stderr.decode().strip()}")
    try:
        ip("netns", "add", node_ns)
        ip("link", "add", "vb", "netns", broker_ns, "type", "veth", "peer", "name", "vn", "netns", node_ns)
        ip("-n", broker_ns, "addr", "add", f"{BROKER_IP}/24", "dev", "vb")
        ip("-n", node_ns, "addr", "add", f"{NODE_IP}/24", "dev", "vn")
        for ns, dev in ((broker_ns, "vb"), (node_ns, "vn"), (broker_ns, "lo"), (node_ns, "lo")):
            ip("-n", ns, "link", "set", dev, "up")
        yield broker_ns, node_ns
    finally:
        for ns in (broker_ns, node_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


class Processes:
    """Processes started in a namespace; terminated (by pid) at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, ns: str, argv: list[str], out: Path) -> subprocess.Popen[bytes]:
        with out.open("ab") as fh:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=fh, stderr=subprocess.STDOUT,
                                    cwd=ROOT)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def node_config(path: Path, *, reconnect_max_s: float = 60) -> Path:
    path.write_text(
        f'[node]\nid = "nsnode"\n[mqtt]\nhost = "{BROKER_IP}"\nport = 1883\nkeepalive_s = 2\nstop_timeout_s = 5\n'
        f'reconnect_max_s = {reconnect_max_s}\n[batch]\nmax_age_s = 0.5\n'
        f'[buffer]\npath = "{path.parent / "buffer.db"}"\ncommit_interval_s = 0.5\n'
        f'[plugins]\ndirs = []\n[[sensor]]\nname = "c0"\ntype = "sim"\ninterval_s = 0.1\nsignal = "counter"\n')
    return path


# The node as a sandbox without AF_NETLINK runs it: no link events, the backoff alone (the baseline).
WITHOUT_NETLINK = ("import socket, sys; del socket.AF_NETLINK; sys.argv[0] = 'sensord'; "
                   "from sensord.cli import run; run()")


@pytest.mark.parametrize("watch", [True, False], ids=["link-events", "backoff-alone"])
def test_back_within_2_s_of_the_link_and_nothing_lost(namespaces: tuple[str, str], tmp_path: Path,
                                                      watch: bool) -> None:
    broker_ns, node_ns = namespaces
    mosquitto = shutil.which("mosquitto", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if mosquitto is None:
        pytest.fail(INSTALL_HINT)
    broker_log, node_log, listen_out = tmp_path / "mosquitto.log", tmp_path / "node.log", tmp_path / "listen.json"
    (tmp_path / "mosquitto.conf").write_text(
        f"listener 1883 {BROKER_IP}\nallow_anonymous true\npersistence false\nlog_dest file {broker_log}\n"
        f"log_type all\n{'user root' if os.geteuid() == 0 else ''}\n")
    config = node_config(tmp_path / "node.toml")
    procs = Processes()
    try:
        procs.start(broker_ns, [mosquitto, "-c", str(tmp_path / "mosquitto.conf")], tmp_path / "mosquitto.out")
        wait_for(broker_log, " running")
        procs.start(broker_ns, [sys.executable, "-m", "sensord", "listen", "--host", BROKER_IP, "--node", "nsnode",
                                "--session", "netns-test"], listen_out)
        wait_for(broker_log, "Sending SUBACK")
        entry = ["-m", "sensord"] if watch else ["-c", WITHOUT_NETLINK]
        node = procs.start(node_ns, [sys.executable, *entry, "-v", "run", "-c", str(config)], node_log)
        wait_for(node_log, "watching the link over netlink" if watch else "cannot watch the link")
        connected = f"New client connected from {NODE_IP}"
        wait_for(broker_log, connected)
        latencies = []
        for run in range(1, (RUNS if watch else 3) + 1):
            ip("-n", node_ns, "link", "set", "vn", "down")
            wait_for(node_log, "connection to 10.200.0.1:1883 lost", count=run)
            time.sleep(OUTAGE_S)  # the outage itself, while the backoff grows
            up = time.monotonic()
            ip("-n", node_ns, "link", "set", "vn", "up")
            latencies.append(wait_for(broker_log, connected, count=run + 1, timeout_s=30) - up)
        node.send_signal(signal.SIGTERM)
        assert node.wait(30) == 0, node_log.read_text()[-3000:]
        figures = json.loads(subprocess.run([sys.executable, "-m", "sensord", "buffer", "-c", str(config), "--json"],
                                            capture_output=True, text=True, cwd=ROOT, check=True).stdout)
        last_seq = figures["next_seq"] - 1

        def rows() -> list[dict[str, object]]:
            return [json.loads(line) for line in listen_out.read_text().splitlines() if line.startswith("{")]

        deadline = time.monotonic() + 15
        while not any(r.get("seq") == last_seq for r in rows()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        procs.close()
    print(f"\n{'with link events' if watch else 'backoff alone'}: link up -> CONNECT at the broker, "
          f"{len(latencies)} runs: " + ", ".join(f"{s:.3f}" for s in latencies)
          + f" s; median {statistics.median(latencies):.3f} s")
    print("what ended the backoff: " + "; ".join(line.split(": ", 1)[1] for line in node_log.read_text().splitlines()
                                                  if line.endswith(": connecting now")))
    if watch:
        assert statistics.median(latencies) < 2.0, latencies
    assert figures["pending_batches"] == 0 and figures["dropped_readings"] == 0, figures
    # A batch delivered twice (at least once: its PUBACK lost with the link) prints its rows twice.
    unique = {(row["seq"], row["ts"]): row["value"] for row in rows() if "seq" in row}
    values = [unique[key] for key in sorted(unique)]  # type: ignore[type-var]
    assert values == list(range(len(values))) and len(values) > 100, values[:50]


def test_syns_to_a_refusing_broker_follow_the_documented_backoff(namespaces: tuple[str, str], tmp_path: Path) -> None:
    """The 10-minute outage at 1/30 scale: `reconnect_max_s = 2` instead of 60, 20 s instead of
    600 s, nothing listening at the broker's address (each attempt: one SYN, one RST). The SYNs
    counted on the broker's end of the veth must lie within the computed schedule's bounds (every
    delay at half its cap, or at its cap). With the node's own link down no SYN leaves at all (the
    kernel fails the connect: ENETUNREACH), so this outage is the one that costs bytes."""
    broker_ns, node_ns = namespaces
    tcpdump = shutil.which("tcpdump", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if tcpdump is None:
        pytest.fail("tcpdump is not installed: apt-get install tcpdump (make deps-system does)")
    capture, node_log = tmp_path / "syn.txt", tmp_path / "node.log"
    procs = Processes()
    try:
        procs.start(broker_ns, [tcpdump, "-lnn", "-tt", "-i", "vb",
                                "tcp dst port 1883 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"], capture)
        wait_for(capture, "listening on")
        procs.start(node_ns, [sys.executable, "-m", "sensord", "-v", "run", "-c",
                              str(node_config(tmp_path / "node.toml", reconnect_max_s=2))], node_log)
        first = wait_for(capture, " > 10.200.0.1.1883: Flags [S]", timeout_s=30)
        time.sleep(max(0.0, first + 21.0 - time.monotonic()))  # the outage: 20 s from the first SYN, and a margin
    finally:
        procs.close()
    stamps = [float(line.split()[0]) for line in capture.read_text().splitlines() if "Flags [S]" in line]
    counted = sum(1 for t in stamps if t - stamps[0] < 20.0)
    low, mean, high = (len(attempt_times(max_s=2, horizon_s=20, rand=lambda r=r: r)) for r in (1.0, 0.5, 0.0))
    print(f"\nSYNs in 20 s with reconnect_max_s = 2: {counted} (schedule: {low}-{high}, {mean} at the mean jitter)")
    assert low <= counted <= high, stamps
