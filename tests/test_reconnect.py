"""`sensord.mqtt.reconnect`: the backoff's schedule and cost, and `sensord check` printing them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sensord.config import MqttConfig
from sensord.mqtt import connect_timeout_s
from sensord.mqtt.reconnect import attempt_times, outage_cost, syns_per_attempt

ROOT = Path(__file__).resolve().parents[1]


def test_connect_timeout_is_one_and_a_half_keepalives_within_3_to_30_s() -> None:
    assert [connect_timeout_s(k) for k in (1, 2, 4, 10, 20, 60, 300)] == [3.0, 3.0, 6.0, 15.0, 30.0, 30.0, 30.0]


def test_syns_into_a_blackhole_follow_linux_retransmissions() -> None:
    # SYN at 0 s, retransmitted after 1, 3, 7, 15, 31 s (initial RTO 1 s, doubling)
    assert [syns_per_attempt(t) for t in (0.5, 3.0, 6.0, 15.0, 30.0)] == [1, 2, 3, 4, 5]


def test_outage_cost_at_the_defaults() -> None:
    cost = outage_cost(MqttConfig())
    assert cost.refused_attempts_per_h == pytest.approx(80.0)  # one per 45 s, the mean of 30-60 s
    assert cost.refused_bytes_per_h == pytest.approx(8000.0)  # SYN 60 + RST 40
    assert cost.blackhole_attempts_per_h == pytest.approx(48.0)  # 45 s + the 30 s connect timeout
    assert cost.blackhole_bytes_per_h == pytest.approx(48 * 5 * 60)


def test_the_schedule_spans_jitter_bounds() -> None:
    """Ten minutes of outage at the defaults, against a refusing host: 19 attempts at the mean
    jitter; 15 to 25 at its bounds (every delay at its cap, or at half of it)."""
    assert len(attempt_times(max_s=60, horizon_s=600)) == 19
    assert len(attempt_times(max_s=60, horizon_s=600, rand=lambda: 1.0)) == 15
    assert len(attempt_times(max_s=60, horizon_s=600, rand=lambda: 0.0)) == 25
    # into a blackhole each attempt also waits its 30 s connect timeout
    assert len(attempt_times(max_s=60, horizon_s=600, attempt_s=30)) == 11


def test_check_prints_the_reconnect_policy(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[mqtt]\nkeepalive_s = 10\nreconnect_max_s = 120\n[plugins]\ndirs = []\n'
                   '[[sensor]]\nname = "c0"\ntype = "sim"\ninterval_s = 1\n')
    out = subprocess.run([sys.executable, "-m", "sensord", "check", "-c", str(cfg)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert ("  reconnect: backoff 1 s doubling up to 120 s (each delay 50-100 % of its step); connect timeout 15 s "
            "(1.5 x keepalive_s 10, within 3-30 s)") in out.stdout.splitlines()
    assert "~40 attempts, 4.0 kB an hour against a refusing host" in out.stdout
