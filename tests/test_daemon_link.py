"""`sensord run` with credentials and TLS, against a real mosquitto.

How the publisher reports a wrong CA, a wrong password, an ACL refusal or an outage, and
duty-cycle mode, are tested against the in-memory broker in tests/test_publisher.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import ROOT, Node, assert_gapless, counter_values, readings, write_config

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


def test_world_readable_password_file_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.toml", port=1, mqtt_extra=f'username = "node"\npassword_file = "{tmp_path}/pw"\n')
    (tmp_path / "pw").write_text(PASSWORD)
    (tmp_path / "pw").chmod(0o644)
    out = subprocess.run([sys.executable, "-m", "sensord", "run", "-c", str(cfg)], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)
    assert out.returncode == 78
    assert out.stderr.strip().endswith(f"{tmp_path}/pw: mode 0644 lets other users read the password; chmod 600 it")
    assert PASSWORD not in out.stderr

