"""`sensord run` with credentials, TLS and duty-cycle mode, against a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import ROOT, Node, assert_gapless, counter_values, readings, statuses, wait_until, write_config

from sensord.testing.broker import Mosquitto, Subscription, make_test_pki

pytestmark = pytest.mark.broker
PASSWORD = "s3cret-Pa55"


def secure_config(tmp_path: Path, broker: Mosquitto, *, ca: Path, password: str = PASSWORD) -> Path:
    pw = tmp_path / "mqtt.pass"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    extra = f'username = "node"\npassword_file = "{pw}"\n[mqtt.tls]\nca_file = "{ca}"\n'
    return write_config(tmp_path / "s.toml", port=broker.port, mqtt_extra=extra, sensors=1)


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    pki = make_test_pki(tmp_path / "pki")
    with Mosquitto(password=("node", PASSWORD), tls=True, pki=pki) as broker:
        yield broker


def test_password_and_tls(secure_broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    assert secure_broker.pki is not None
    cfg = secure_config(tmp_path, secure_broker, ca=secure_broker.pki.ca_cert)
    with Subscription(secure_broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 5, 10)
        assert node.stop()[0] == 0
    assert_gapless(counter_values(readings(sub.messages), "c0"))
    assert PASSWORD not in node.log()


def test_wrong_ca_is_refused_clearly_and_retried(secure_broker: Mosquitto, nodes: list[Node],
                                                 tmp_path: Path) -> None:
    assert secure_broker.pki is not None
    cfg = secure_config(tmp_path, secure_broker, ca=secure_broker.pki.other_ca_cert)
    node = Node(cfg).start()
    nodes.append(node)
    wait_until(lambda: "certificate" in node.log(), 10, "TLS failure logged")
    time.sleep(3.5)  # several retries (backoff 1 s, 2 s, capped at reconnect_max_s = 2)
    assert node.stop()[0] == 0
    lines = [line for line in node.log().splitlines() if "certificate" in line and "publisher" in line]
    assert len(lines) == 1, node.log()  # one line per state change, not one per attempt
    assert "ca_file" in lines[0] and "Traceback" not in node.log()
    # Only a config change helps: ERROR, so `journalctl -p err` shows it.
    assert lines[0].startswith("ERROR sensord.publisher: cannot connect"), lines[0]


def test_wrong_password_is_refused_clearly_and_retried(secure_broker: Mosquitto, nodes: list[Node],
                                                       tmp_path: Path) -> None:
    assert secure_broker.pki is not None
    cfg = secure_config(tmp_path, secure_broker, ca=secure_broker.pki.ca_cert, password="wrong-one")
    node = Node(cfg).start()
    nodes.append(node)
    wait_until(lambda: secure_broker.log_text().count("not authorised") >= 3, 15, "three refused attempts")
    assert node.stop()[0] == 0
    refusals = [line for line in node.log().splitlines() if "publisher" in line and "not authorized" in line]
    assert len(refusals) == 1, node.log()
    assert "password" in refusals[0] and "wrong-one" not in node.log()
    assert refusals[0].startswith("ERROR sensord.publisher: cannot connect"), refusals[0]


def test_transient_outage_stays_a_warning(nodes: list[Node], tmp_path: Path) -> None:
    broker = Mosquitto()  # not started: connection refused until it is
    cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1)
    node = Node(cfg).start()
    nodes.append(node)
    wait_until(lambda: "cannot connect" in node.log(), 10, "refused connection logged")
    with broker, Subscription(broker, "sensord/n1/data") as sub:
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 3, 15)
        assert node.stop()[0] == 0
    failures = [line for line in node.log().splitlines() if "cannot connect" in line]
    assert len(failures) == 1 and failures[0].startswith("WARNING sensord.publisher:"), node.log()
    assert "ERROR" not in node.log()


def test_acl_refusal_is_an_error_once(nodes: list[Node], tmp_path: Path) -> None:
    (tmp_path / "acl").write_text("topic readwrite sensord/n1/status\ntopic readwrite sensord/n1/meta\n")
    with Mosquitto(extra_config=f"acl_file {tmp_path / 'acl'}") as broker:
        cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, max_age_s=0.3)
        node = Node(cfg).start()
        nodes.append(node)
        wait_until(lambda: "not authorized" in node.log(), 10, "ACL refusal logged")
        wait_until(lambda: broker.log_text().count("Denied PUBLISH") >= 3, 15, "three refused batches")
        assert node.stop()[0] == 0
    refusals = [line for line in node.log().splitlines() if "not authorized" in line and "DEBUG" not in line]
    assert len(refusals) == 1, node.log()
    assert refusals[0].startswith("ERROR sensord.publisher:") and "ACL" in refusals[0], refusals[0]


def test_world_readable_password_file_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=1, mqtt_extra=f'username = "node"\npassword_file = "{tmp_path}/pw"\n')
    (tmp_path / "pw").write_text(PASSWORD)
    (tmp_path / "pw").chmod(0o644)
    out = subprocess.run([sys.executable, "-m", "sensord", "run", "-c", str(cfg)], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)
    assert out.returncode == 78
    assert out.stderr.strip().endswith(f"{tmp_path}/pw: mode 0644 lets other users read the password; chmod 600 it")
    assert PASSWORD not in out.stderr


def test_duty_cycle(nodes: list[Node], tmp_path: Path) -> None:
    with Mosquitto(extra_config="log_type all") as broker, Subscription(broker, "sensord/n1/#") as sub:
        cfg = write_config(tmp_path / "s.toml", port=broker.port, sensors=1, interval_s=0.2, max_age_s=0.5,
                           mqtt_extra='mode = "duty_cycle"')
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 10, 10)
        time.sleep(2.0)
        # Between wake-ups the node is disconnected, and its status stays online.
        assert broker.log_text().count("sensord-n1 disconnected") >= 2
        assert "offline" not in statuses(sub.messages)
        os.kill(node.pid, signal.SIGSTOP)  # a node that misses its wake-ups turns offline by itself
        t0 = time.monotonic()
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["offline"], 15)
        frozen_for = time.monotonic() - t0
        os.kill(node.pid, signal.SIGCONT)
        sub.wait_for(lambda msgs: statuses(msgs)[-1:] == ["online"], 10)
        before = len(readings(sub.messages))
        sub.wait_for(lambda msgs: len(readings(msgs)) >= before + 5, 10)
        assert node.stop()[0] == 0
        time.sleep(0.2)
    meta = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/meta")]
    assert meta and meta[0]["node"] == "n1"
    # The will delay is 4 s here (2 x (max_age_s + interval) + 2); mosquitto 2.0.11 looks every 5 s.
    assert 3.0 <= frozen_for <= 4 + 5 + 1
    assert_gapless(counter_values(readings(sub.messages), "c0"))
