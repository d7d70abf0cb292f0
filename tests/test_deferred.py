"""`sensord.deferred`: `ssl` and `hashlib` imported on first use, and no OpenSSL in a node
without TLS (issue 13, item 3: the daemon's peak RSS)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import ROOT, Node, counter_values, readings, wait_until, write_config

from sensord import homeassistant as ha
from sensord.deferred import Deferred, NotImportedError, sha256
from sensord.testing.broker import Mosquitto, Subscription, make_test_pki


@pytest.fixture
def fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A module `deferme` that appends a line to a file each time it is executed."""
    marks = tmp_path / "executed"
    (tmp_path / "deferme.py").write_text(textwrap.dedent(f"""\
        import pathlib
        with pathlib.Path({str(marks)!r}).open("a") as f:
            f.write("x")
        __all__ = ["VALUE", "Boom"]
        VALUE = 42
        class Boom(Exception):
            pass
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "deferme", raising=False)
    yield "deferme", marks
    sys.modules.pop("deferme", None)


def executions(marks: Path) -> int:
    return len(marks.read_text()) if marks.exists() else 0


def test_the_module_is_executed_at_the_first_attribute_read_and_only_then(fake_module: tuple[str, Path]) -> None:
    name, marks = fake_module
    stand_in = Deferred(name)
    sys.modules[name] = stand_in
    import deferme  # type: ignore[import-not-found]

    assert deferme is stand_in and not stand_in.imported
    assert executions(marks) == 0
    assert deferme.VALUE == 42
    assert stand_in.imported and executions(marks) == 1
    assert sys.modules[name] is not stand_in  # the real module, for whoever imports it from now on
    from deferme import Boom  # type: ignore[import-not-found]

    assert Boom is sys.modules[name].Boom and stand_in.VALUE == 42
    assert executions(marks) == 1


def test_from_import_loads_it(fake_module: tuple[str, Path]) -> None:
    name, marks = fake_module
    sys.modules[name] = Deferred(name)
    from deferme import VALUE

    assert VALUE == 42 and executions(marks) == 1


def test_absent_exception_classes_match_nothing_until_the_module_is_imported(fake_module: tuple[str, Path]) -> None:
    name, marks = fake_module
    stand_in = Deferred(name, absent=frozenset({"Boom"}))
    assert stand_in.Boom is NotImportedError
    assert not isinstance(ValueError("x"), stand_in.Boom)
    with pytest.raises(BlockingIOError):
        try:
            raise BlockingIOError
        except stand_in.Boom:  # what paho does after every failed socket call
            pytest.fail("matched an exception of a module that is not imported")
    assert executions(marks) == 0
    real_boom = stand_in.load().Boom
    assert stand_in.Boom is real_boom and real_boom is not NotImportedError
    assert executions(marks) == 1


def test_introspection_does_not_import_it(fake_module: tuple[str, Path]) -> None:
    name, marks = fake_module
    stand_in = Deferred(name)
    assert not hasattr(stand_in, "__wrapped__")
    assert stand_in.__file__.endswith("deferme.py")
    assert stand_in.__spec__ is not None and stand_in.__spec__.name == name
    assert executions(marks) == 0
    assert stand_in.__all__ == ["VALUE", "Boom"]  # `from x import *` is a use
    assert executions(marks) == 1


def test_threads_asking_at_once_import_it_once(fake_module: tuple[str, Path]) -> None:
    name, marks = fake_module
    stand_in = Deferred(name)
    sys.modules[name] = stand_in
    start = threading.Barrier(8)
    seen: list[int] = []

    def read() -> None:
        start.wait()
        seen.append(stand_in.VALUE)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert seen == [42] * 8
    assert executions(marks) == 1


def test_a_module_that_fails_to_import_stays_deferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_mod.py").write_text("raise RuntimeError('no')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    stand_in = Deferred("broken_mod")
    monkeypatch.setitem(sys.modules, "broken_mod", stand_in)
    with pytest.raises(RuntimeError, match="no"):
        stand_in.anything  # noqa: B018
    assert sys.modules["broken_mod"] is stand_in and not stand_in.imported


def test_an_unknown_module_is_refused() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        Deferred("no_such_module_here")


@pytest.mark.parametrize("data", [b"", b"abc", b"n1\0temperature", bytes(range(256)) * 5])
def test_sha256_is_hashlibs(data: bytes) -> None:
    assert sha256(data) == hashlib.sha256(data).digest()


def test_home_assistant_keys_are_the_ones_hashlib_gave() -> None:
    """Unique ids in Home Assistant come from these keys: they must not change with the hash's source."""
    ids = [f"s{i}\0{q}" for i in range(40) for q in ("temperature", "humidity", "value")]
    alphabet = ha._KEY_ALPHABET

    def reference(text: str) -> str:
        n, out = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"), ""
        while n:
            n, r = divmod(n, 36)
            out += alphabet[r]
        return out.ljust(13, "0")

    keys = ha.short_keys(ids)
    length = len(next(iter(keys.values())))
    assert keys == {i: reference(i)[:length] for i in ids}


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_mqtt_stack_imports_without_openssl_and_tls_still_works() -> None:
    out = run_python("""
        import socket, sys
        from sensord.deferred import defer_openssl
        assert defer_openssl()
        assert not defer_openssl()  # a second call changes nothing
        import asyncio, ssl
        import sensord.mqtt, sensord.daemon
        from sensord.mqtt.compat import LIBRARY
        import paho.mqtt.client as paho
        print("loaded before:", sorted({"_ssl", "_hashlib"} & set(sys.modules)))
        print("asyncio ssl:", asyncio.base_events.ssl)
        # paho's except clauses after a failed socket call (EAGAIN) must not import ssl
        a, b = socket.socketpair()
        a.setblocking(False)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2) if hasattr(paho, "CallbackAPIVersion") else paho.Client()
        client._sock = a
        try:
            client._sock_recv(1)
        except BlockingIOError:
            print("recv: BlockingIOError")
        print("loaded after EAGAIN:", sorted({"_ssl", "_hashlib"} & set(sys.modules)))
        from sensord.config.sections import TlsConfig
        from sensord.mqtt import make_tls_context
        context = make_tls_context(TlsConfig())
        print("context:", type(context).__name__, "_ssl" in sys.modules)
        print("real exception:", ssl.SSLWantReadError.__module__)
    """)
    assert "loaded before: []" in out
    assert "asyncio ssl: None" in out
    assert "recv: BlockingIOError" in out
    assert "loaded after EAGAIN: []" in out
    assert "context: SSLContext True" in out
    assert "real exception: ssl" in out


def test_nothing_is_deferred_once_asyncio_is_imported() -> None:
    out = run_python("""
        import asyncio, sys
        from sensord.deferred import defer_openssl
        print(defer_openssl(), type(sys.modules["ssl"]).__name__)
    """)
    assert out.split() == ["False", "module"]


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.broker
def test_a_node_without_tls_never_loads_openssl_and_a_reload_to_tls_does(
        broker: Mosquitto, nodes: list[Node], tmp_path: Path) -> None:
    """Through a broker restart (paho's error paths) no libcrypto; a reload onto a TLS broker
    imports ssl then, and the readings go on."""
    cfg = write_config(tmp_path / "n.toml", port=broker.port, sensors=1)
    with Subscription(broker, "sensord/n1/data") as sub:
        node = Node(cfg).start()
        nodes.append(node)
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 3, 15)
        broker.restart()
        count = len(readings(sub.messages))
        wait_until(lambda: len(readings(sub.messages)) > count + 3, 15, "readings after the broker's restart")
    assert "libcrypto" not in maps(node.pid) and "_ssl" not in maps(node.pid)

    pki = make_test_pki(tmp_path / "pki")
    with Mosquitto(tls=True, pki=pki) as secure, Subscription(secure, "sensord/n1/data") as sub:
        text = cfg.read_text().replace(f"port = {broker.port}\n", f"port = {secure.port}\n", 1)
        text = text.replace("\n[batch]", f'\n[mqtt.tls]\nca_file = "{pki.ca_cert}"\n[batch]', 1)
        cfg.write_text(text)
        node.signal(signal.SIGHUP)
        sub.wait_for(lambda msgs: len(readings(msgs)) >= 3, 15)
        assert "libcrypto" in maps(node.pid)
        assert counter_values(readings(sub.messages), "c0")
        assert node.stop()[0] == 0
    assert "Traceback" not in node.log()
