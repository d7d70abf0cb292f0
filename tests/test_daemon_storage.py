"""The daemon while its buffer cannot store (disk full): readings wait in memory, bounded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from daemon_harness import write_config

from sensord import app
from sensord.batch import Batcher
from sensord.buffer import Buffer
from sensord.daemon import Daemon
from sensord.encoding import decode
from sensord.scheduler import Sample

T = 1_700_000_000.0


def test_memory_is_bounded_while_the_buffer_cannot_store(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1, max_age_s=3600)
    daemon = Daemon(str(cfg), app.load(str(cfg), entry_points=False), memory_max_readings=100)
    daemon.buffer = Buffer.open(tmp_path / "buffer.db", max_bytes=1 << 20)
    daemon.batcher = Batcher(max_age_s=3600, max_readings=10_000)
    daemon._filters = {spec.name: spec.filters.fresh() for spec in daemon.config.enabled_sensors}
    # Buffer.seal returns None when storage refuses the write (tests/test_buffer.py shows it for
    # SQLITE_FULL); here it refuses until `full` is cleared.
    full = [True]
    seal = daemon.buffer.seal
    monkeypatch.setattr(daemon.buffer, "seal", lambda *a, **kw: None if full[0] else seal(*a, **kw))
    caplog.set_level(logging.INFO, logger="sensord")

    for i in range(250):
        daemon._on_samples([Sample("c0", "value", float(i), "", T + i)])
        if i % 50 == 49:
            assert daemon._seal() is False
    assert len(daemon.batcher) == 100  # the newest 100: 150..249 (the last seal left 100 of 200)
    assert [s.value for s in daemon.batcher.pending()] == [float(i) for i in range(150, 250)]

    full[0] = False
    assert daemon._seal() is True
    (batch,) = daemon.buffer.peek(10)
    assert [s.value for s in decode(batch.payload).samples] == [float(i) for i in range(150, 250)]
    daemon.buffer.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "sensord.daemon" and r.levelno == logging.WARNING]
    assert warnings == ["the buffer cannot store and 100 readings wait in memory: dropping the oldest beyond that "
                        "until it stores again",
                        "the buffer stores again; 150 readings were dropped while it could not"]
