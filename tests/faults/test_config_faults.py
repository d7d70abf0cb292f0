"""Bad configs met by a running daemon: a reload (SIGHUP) that fails keeps the running config and
says why in one ERROR line, through the same checks as `sensord check` (`startup.load_runnable`).

In process: the daemon's `_try_reload` against files damaged in each way an editor, a full disk
or a half-finished copy leaves them. tests/test_daemon.py runs the same against a real daemon.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Node, wait_until, write_config

from sensord import startup
from sensord.daemon import Daemon


def _free_port() -> int:
    """A loopback port nothing listens on (the daemon retries it with backoff)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _damaged(good: str, tmp_path: Path) -> dict[str, str]:
    """The config text `good`, damaged: each one is refused by `sensord check`."""
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o644)
    return {
        "empty": "",
        "cut-before-sensors": good[:good.index("[[sensor]]")],
        "cut-mid-value": good[:good.index('type = "sim"') + 9],
        "inf": good.replace("interval_s = 0.1", "interval_s = inf"),
        "password-missing": good.replace("[mqtt]\n", f'[mqtt]\nusername = "u"\npassword_file = "{tmp_path}/none"\n'),
        "password-0644": good.replace("[mqtt]\n", f'[mqtt]\nusername = "u"\npassword_file = "{tmp_path}/pw"\n'),
        "buffer-path-empty": good.replace(f'path = "{tmp_path / "buffer.db"}"', 'path = ""'),
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    cfg = write_config(tmp_path / "s.toml", port=1883, sensors=1)
    yield Daemon(str(cfg), startup.load(str(cfg), entry_points=False))


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("damage", ["empty", "cut-before-sensors", "cut-mid-value", "inf", "password-missing",
                                    "password-0644", "buffer-path-empty"])
def test_failed_reload_keeps_the_running_config_and_says_why_once(daemon: Daemon, tmp_path: Path, damage: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    cfg = Path(daemon.config_path)
    bad = _damaged(cfg.read_text(), tmp_path)[damage]
    cfg.write_text(bad)
    with pytest.raises(Exception) as refused:  # `sensord check` refuses it ...
        startup.load_runnable(str(cfg), entry_points=False)
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert daemon._try_reload() is None  # ... and so does a reload
    (record,) = _records(caplog)
    expected = " ".join(str(refused.value).split())
    assert record == (logging.ERROR, f"reload failed, keeping the running config: {expected}")
    assert "\n" not in record[1]
    assert [s.name for s in daemon.config.enabled_sensors] == ["c0"]


def test_buffer_path_warning_names_the_open_buffer(daemon: Daemon, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    cfg = Path(daemon.config_path)
    good = cfg.read_text()
    opened = str(tmp_path / "buffer.db")
    caplog.set_level(logging.INFO)

    def reload(path: str) -> list[tuple[int, str]]:
        caplog.clear()
        cfg.write_text(good.replace(opened, path))
        new = daemon._try_reload()
        assert new is not None
        daemon.loaded = new  # as the next generation does
        return _records(caplog)

    other, third = str(tmp_path / "other.db"), str(tmp_path / "third.db")
    assert reload(other) == [(logging.WARNING, f"reload: buffer.path changed to {other}; the buffer stays at "
                                               f"{opened} until restart")]
    # Compared with the buffer that is open, not with the previous config:
    assert [m for _, m in reload(other)] == [f"reload: buffer.path changed to {other}; the buffer stays at "
                                             f"{opened} until restart"]
    assert reload(opened) == []  # changed back: the buffer is where the config says
    assert [m for _, m in reload(third)] == [f"reload: buffer.path changed to {third}; the buffer stays at "
                                             f"{opened} until restart"]


def test_run_logs_a_plugin_that_fails_at_import_once(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins.d"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise ImportError('needs libfoo')\n")
    cfg = write_config(tmp_path / "s.toml", port=_free_port(), sensors=1, stop_timeout_s=0.2)  # no broker to wait for
    cfg.write_text(cfg.read_text().replace("dirs = []", f'dirs = ["{plugins}"]'))
    node = Node(cfg).start()
    try:
        wait_until(lambda: "running:" in node.log(), 20, "the daemon's start line")
        node.signal(signal.SIGHUP)  # a reload loads plugins again: logged once more, once
        wait_until(lambda: "reloaded" in node.log() and node.log().count("running:") == 2, 20, "the reload")
        assert node.stop()[0] == 0
    finally:
        node.close()
    log = node.log()
    assert log.count('cannot load plugin "broken"') == 2, log  # start and reload: once each
    assert f'ERROR sensord.plugins: cannot load plugin "broken" ({plugins}/broken.py): ImportError: needs libfoo' in log
    assert "failed to load" not in log
    assert ", 1 sensor, broker 127.0.0.1:" in log and "1 sensors" not in log
