"""Config parsing: valid files into dataclasses, and one exact line per kind of bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sensord import config as cfgmod
from sensord import startup
from sensord.errors import ConfigError
from sensord.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[node]
id = "barn"

[mqtt]
host = "broker.local"
port = 8883
username = "node"
password_file = "/etc/sensord/mqtt.pass"
qos = 0
mode = "duty_cycle"

[mqtt.tls]
ca_file = "/etc/ssl/ca.pem"

[batch]
max_age_s = 30
max_readings = 200

[buffer]
path = "/tmp/x.db"

[plugins]
dirs = []
disabled = ["system"]

[[sensor]]
name = "a"
type = "sim"
interval_s = 1
channels = ["temperature", "humidity"]
signal = "counter"

[[sensor]]
name = "b"
type = "sim"
interval_s = 0.5
enabled = false
timeout_s = 2
"""


def load_text(tmp_path: Path, text: str) -> cfgmod.Config:
    path = tmp_path / "sensord.toml"
    path.write_text(text)
    return startup.load(str(path), entry_points=False).config


def test_valid_file_into_frozen_dataclasses(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, GOOD)
    assert cfg.node.id == "barn"
    assert cfg.mqtt.port == 8883 and cfg.mqtt.qos == 0 and cfg.mqtt.mode == "duty_cycle"
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.ca_file == "/etc/ssl/ca.pem"
    assert cfg.batch.max_age_s == 30.0 and isinstance(cfg.batch.max_age_s, float)
    assert cfg.plugins.disabled == ("system",)
    assert [s.name for s in cfg.sensors] == ["a", "b"]
    assert [s.name for s in cfg.enabled_sensors] == ["a"]
    a = cfg.sensors[0]
    assert a.interval_s == 1.0 and a.timeout_s == 10.0
    assert a.options.channels == ["temperature", "humidity"]  # type: ignore[attr-defined]
    assert cfg.sensors[1].timeout_s == 2.0
    with pytest.raises(AttributeError):
        cfg.node.id = "x"  # type: ignore[misc]


def test_defaults(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "")
    assert cfg.mqtt.host == "localhost" and cfg.mqtt.port == 1883
    assert cfg.mqtt.topic_prefix == "sensord" and cfg.mqtt.protocol == "5"
    assert cfg.batch.max_age_s == 60 and cfg.batch.max_readings == 1000
    assert cfg.buffer.max_bytes == 64 * 1024 * 1024 and cfg.buffer.commit_interval_s == 5
    assert cfg.plugins.dirs == ("/etc/sensord/plugins.d",)
    assert cfg.node.id and "." not in cfg.node.id
    assert cfg.sensors == ()


@pytest.mark.parametrize("name", ["config/demo.toml", "config/sensord.example.toml", "config/fake.toml",
                                  "debian/sensord.toml"])
def test_shipped_configs_parse(name: str) -> None:
    # What `check`, `run` and a reload accept (the .deb's conffile and `make run`'s demo included).
    cfg = startup.load_runnable(str(ROOT / name), entry_points=False).config
    assert cfg.enabled_sensors


def test_config_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cfgmod.ENV_VAR, raising=False)
    assert cfgmod.resolve_path(None) == "/etc/sensord/sensord.toml"
    monkeypatch.setenv(cfgmod.ENV_VAR, "/srv/s.toml")
    assert cfgmod.resolve_path(None) == "/srv/s.toml"
    assert cfgmod.resolve_path("cli.toml") == "cli.toml"


SENSOR = '[[sensor]]\nname = "a"\ntype = "sim"\ninterval_s = 1\n'
KNOWN = ", ".join(sorted(get_plugin_manager(entry_points=False).sensor_types))

# (TOML text, the exact message after "<file>: ")
BAD = [
    ("[node]\nid = 'a'\nid = 'b'\n",
     "TOML syntax error: Cannot overwrite a value (at line 3, column 9)"),
    ("[mqtt]\nhost = \n", "TOML syntax error: Invalid value (at line 2, column 8)"),
    ("[mqtt]\nhots = 'x'\n", 'mqtt.hots: unknown key, did you mean "host"?'),
    ("[mqtt]\nzzz = 1\n",
     "mqtt.zzz: unknown key; expected one of: client_id, host, keepalive_s, mode, password_file, "
     "port, protocol, qos, reconnect_max_s, stop_timeout_s, tls, topic_prefix, username"),
    ("[mqt]\n", 'mqt: unknown section, did you mean "mqtt"?'),
    ("[mqtt]\nport = 70000\n", "mqtt.port: expected an integer >= 1 and <= 65535, found 70000"),
    ("[mqtt]\nport = '1883'\n", 'mqtt.port: expected an integer >= 1 and <= 65535, found "1883"'),
    ("[mqtt]\nqos = 2\n", "mqtt.qos: expected one of 0, 1, found 2"),
    ("[mqtt]\nprotocol = 5\n", 'mqtt.protocol: expected one of "5", "3.1.1", found 5'),
    ("[mqtt]\nmode = 'sleepy'\n",
     'mqtt.mode: expected one of "persistent", "duty_cycle", found "sleepy"'),
    ("[mqtt.tls]\ncert_file = 'c.pem'\n",
     "mqtt.tls.cert_file and key_file go together: set both or neither"),
    ("[mqtt]\ntopic_prefix = 'a/b/'\n",
     "mqtt.topic_prefix: expected a topic without leading or trailing '/', found \"a/b/\""),
    ("[node]\nid = 'barn/1'\n",
     "node.id: expected a non-empty name without '/', '+' or '#', found \"barn/1\""),
    ("[batch]\nmax_age_s = 0\n", "batch.max_age_s: expected a number > 0, found 0"),
    ("[batch]\nmax_readings = true\n", "batch.max_readings: expected an integer >= 1, found true"),
    ("[buffer]\nmax_bytes = 10\n", "buffer.max_bytes: expected an integer >= 65536, found 10"),
    ("[plugins]\ndirs = '/x'\n", 'plugins.dirs: expected a list of strings, found "/x"'),
    ("[plugins]\ndisabled = [1]\n", "plugins.disabled[0]: expected a string, found 1"),
    ("[sensor]\nname = 'a'\n", "sensor: expected an array of tables ([[sensor]]), found a table"),
    ('[[sensor]]\ntype = "sim"\ninterval_s = 1\n', "sensor[0].name: required key missing"),
    ('[[sensor]]\nname = "a"\ninterval_s = 1\n', "sensor[0].type: required key missing"),
    ('[[sensor]]\nname = "a"\ntype = "sim"\n', "sensor[0].interval_s: required key missing"),
    (SENSOR + '[[sensor]]\nname = "b"\ntype = "sim"\ninterval_s = -1\n',
     "sensor[1].interval_s: expected a number > 0, found -1"),
    (SENSOR + '[[sensor]]\nname = "b"\ntype = "sim"\ninterval_s = 1\ntimeout_s = 0\n',
     "sensor[1].timeout_s: expected a number > 0, found 0"),
    (SENSOR + '[[sensor]]\nname = "b"\ntype = "sm"\ninterval_s = 1\n',
     f'sensor[1].type: unknown sensor type "sm", did you mean "sim"?; known types: {KNOWN}'),
    (SENSOR + '[[sensor]]\nname = "b"\ntype = "thermo"\ninterval_s = 1\n',
     f'sensor[1].type: unknown sensor type "thermo"; known types: {KNOWN}'),
    (SENSOR + SENSOR, 'sensor[1].name: expected a unique name, found "a" (also sensor[0])'),
    (SENSOR + "signl = 'sine'\n", 'sensor[0].signl: unknown key, did you mean "signal"?'),
    (SENSOR + "intervall_s = 2\n", 'sensor[0].intervall_s: unknown key, did you mean "interval_s"?'),
    (SENSOR + "signal = 'square'\n",
     'sensor[0].signal: expected one of "counter", "sine", "random_walk", found "square"'),
    (SENSOR + "channels = []\n", "sensor[0].channels: expected at least one quantity name, found []"),
    (SENSOR + "channels = ['t', 2]\n", "sensor[0].channels[1]: expected a string, found 2"),
    (SENSOR + "enabled = 'yes'\n", 'sensor[0].enabled: expected true or false, found "yes"'),
    ('[[sensor]]\nname = "a/b"\ntype = "sim"\ninterval_s = 1\n',
     "sensor[0].name: expected a non-empty name without '/', '+' or '#', found \"a/b\""),
    ("[batch]\nurgent = [\"dor\"]\n" + SENSOR.replace('"a"', '"door"'),
     'batch.urgent[0]: expected the name of a [[sensor]], found "dor", did you mean "door"?'),
    ("[batch]\nmax_bytes = 10\n", "batch.max_bytes: expected an integer >= 256 and <= 268435455, found 10"),
    ("[hardware]\nfake = 1\n", "hardware.fake: expected true or false, found 1"),
    # inf and nan are valid TOML floats, and no setting means anything with them.
    ('[[sensor]]\nname = "a"\ntype = "sim"\ninterval_s = inf\n',
     "sensor[0].interval_s: expected a finite number > 0, found inf"),
    (SENSOR + "timeout_s = nan\n", "sensor[0].timeout_s: expected a finite number > 0, found nan"),
    (SENSOR + "mean = -inf\n", "sensor[0].mean: expected a finite number, found -inf"),
    ("[batch]\nmax_age_s = inf\n", "batch.max_age_s: expected a finite number > 0, found inf"),
    ("[buffer]\ncommit_interval_s = inf\n", "buffer.commit_interval_s: expected a finite number > 0, found inf"),
    ("[mqtt]\nreconnect_max_s = inf\n", "mqtt.reconnect_max_s: expected a finite number >= 1, found inf"),
    ("[mqtt]\nstop_timeout_s = nan\n", "mqtt.stop_timeout_s: expected a finite number >= 0, found nan"),
    ("[mqtt]\nkeepalive_s = inf\n", "mqtt.keepalive_s: expected an integer >= 1 and <= 65535, found inf"),
    (SENSOR + "filters = [{throttle_s = inf}]\n",
     "sensor[0].filters[0].throttle_s: expected a number > 0, found inf"),
    (SENSOR + "filters = [{clamp = {max = nan}}]\n",
     "sensor[0].filters[0].clamp.max: expected a finite number, found nan"),
    (SENSOR + "filters = [{moving_average = {window = 3, alpha = inf}}]\n",
     "sensor[0].filters[0].moving_average.alpha: expected a finite number > 0 and <= 1, found inf"),
    ('[buffer]\npath = ""\n', 'buffer.path: expected the path of the buffer file, found ""'),
    (SENSOR + "filters = [{medain = 3}]\n", 'sensor[0].filters[0]: unknown filter "medain", did you mean "median"?'),
    (SENSOR + "filters = [{delta = 0.1, round = 1}]\n",
     "sensor[0].filters[0]: expected one filter per table, found 2 keys (delta, round)"),
    (SENSOR + "urgent = 1\n", "sensor[0].urgent: expected true or false, found 1"),
    ('[[sensor]]\nname = "h"\ntype = "system"\ninterval_s = 1\nchannels = ["cpu"]\n',
     "sensor[0].channels[0]: expected one of cpu_temperature, load_1m, memory_used, disk_used, "
     'uptime, found "cpu"'),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in
                                                         enumerate(BAD)])
def test_bad_config_one_exact_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        startup.load(str(path), entry_points=False)
    assert str(info.value) == f"{path}: {message}"
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match="config file not found") as info:
        startup.load(str(path))
    assert str(info.value).startswith(f"{path}: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[node]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        startup.load(str(path))
    assert str(info.value) == f"{path}: TOML syntax error: not UTF-8 text (byte 16)"


def test_example_documents_every_key() -> None:
    """Every key of every section appears (as a setting or a `# key = default` line) in the example."""
    text = (ROOT / "config" / "sensord.example.toml").read_text()
    lines = [line.strip() for line in text.splitlines()]
    uncommented = "\n".join(line.removeprefix("# ") for line in lines if not line.startswith("##"))
    doc = tomllib.loads(uncommented)
    import dataclasses

    for section, cls in cfgmod.SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.name in doc.get(section, {}), f"{section}.{f.name} is not in the example"
    for key in cfgmod.SENSOR_KEYS:
        assert any(key in s for s in doc["sensor"]), f"sensor.{key} is not in the example"


# What `check`, `run` and a reload refuse beyond the types: (TOML text, the exact message after "<file>: ").
# {tmp} is the test's directory; pw600 and pw644 are password files with those modes there.
UNRUNNABLE = [
    ("", "sensor: expected at least one [[sensor]] table, found none (an empty or cut-short file?)"),
    ('[mqtt]\nhost = "broker"\n',
     "sensor: expected at least one [[sensor]] table, found none (an empty or cut-short file?)"),
    (SENSOR + "enabled = false\n",
     "sensor: expected at least one enabled [[sensor]], found 1 sensor, all with enabled = false"),
    ('[batch]\nencoding = "senml+json"\n' + SENSOR.replace('"a"', '"Küche 1"'),
     'sensor[0].name: expected a name of A-Z a-z 0-9 - : . _ only (RFC 8428 §4.5.1, '
     'batch.encoding = "senml+json"), found "Küche 1"'),
    ('[batch]\nencoding = "senml+cbor"\n' + SENSOR + SENSOR.replace('"a"', '"b c"'),
     'sensor[1].name: expected a name of A-Z a-z 0-9 - : . _ only (RFC 8428 §4.5.1, '
     'batch.encoding = "senml+cbor"), found "b c"'),
    ('[node]\nid = "_barn"\n[batch]\nencoding = "senml+cbor"\n' + SENSOR,
     'node.id: expected a name of A-Z a-z 0-9 - : . _ only, starting with a letter or digit '
     '(RFC 8428 §4.5.1, batch.encoding = "senml+cbor"), found "_barn"'),
    ('[mqtt]\nusername = "u"\npassword_file = "{tmp}/none"\n' + SENSOR,
     "mqtt.password_file: {tmp}/none: password file (mqtt.password_file) not found"),
    ('[mqtt]\nusername = "u"\npassword_file = "{tmp}/pw644"\n' + SENSOR,
     "mqtt.password_file: {tmp}/pw644: mode 0644 lets other users read the password; chmod 600 it"),
    ('[mqtt.tls]\nca_file = "{tmp}/none.pem"\n' + SENSOR,
     "mqtt.tls.ca_file: cannot load CA certificates from {tmp}/none.pem: No such file or directory"),
    ('[mqtt.tls]\ncert_file = "{tmp}/c.pem"\nkey_file = "{tmp}/c.key"\ninsecure = true\n' + SENSOR,
     "mqtt.tls.cert_file: cannot load client certificate {tmp}/c.pem with key {tmp}/c.key: "
     "No such file or directory"),
]


@pytest.mark.parametrize(("text", "message"), UNRUNNABLE,
                         ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(UNRUNNABLE)])
def test_what_run_refuses_is_one_exact_line(tmp_path: Path, text: str, message: str) -> None:
    for name, mode in (("pw600", 0o600), ("pw644", 0o644)):
        (tmp_path / name).write_text("secret\n")
        (tmp_path / name).chmod(mode)
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("{tmp}", str(tmp_path)))
    startup.load(str(path), entry_points=False)  # well-typed: only the run-time checks refuse it
    with pytest.raises(ConfigError) as info:
        startup.load_runnable(str(path), entry_points=False)
    assert str(info.value) == f"{path}: {message.replace('{tmp}', str(tmp_path))}"


@pytest.mark.parametrize("extra", [
    '[batch]\nencoding = "json"\n',  # only SenML restricts names: the others carry any string
    '[batch]\nencoding = "per_channel"\n',
    '[mqtt]\nusername = "u"\npassword_file = "{tmp}/pw"\n',
    '[mqtt.tls]\ninsecure = true\n',
])
def test_runnable_configs_pass(tmp_path: Path, extra: str, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)
    path = tmp_path / "ok.toml"
    path.write_text(extra.replace("{tmp}", str(tmp_path)) + SENSOR.replace('"a"', '"Küche 1"'))
    loaded = startup.load_runnable(str(path), entry_points=False)
    assert [s.name for s in loaded.config.sensors] == ["Küche 1"]
    assert not caplog.records  # the insecure warning is the link's to give, when it connects
