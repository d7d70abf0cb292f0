"""The command line, run as users run it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sensord

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "config" / "demo.toml")


def sensord_cmd(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SENSORD_CONFIG"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "sensord", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=60)


def test_version_and_help() -> None:
    out = sensord_cmd("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"sensord {sensord.__version__}")
    out = sensord_cmd("--help")
    assert out.returncode == 0
    for command in ("check", "read", "plugins"):
        assert command in out.stdout
    assert sensord_cmd("read", "--help").stdout.count("--json") == 2
    assert sensord_cmd().returncode == 2


@pytest.mark.parametrize("columns", [None, "50", "200", "0", "-3", "wide"])
def test_help_width_is_shutils(columns: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI's formatter finds the width without importing shutil; help must wrap as before.
    import shutil

    from sensord.cli import _columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert _columns() == shutil.get_terminal_size().columns


def test_read_demo_json_has_sim_and_system() -> None:
    out = sensord_cmd("read", "-c", DEMO, "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["sensor"] for r in rows} == {"greenhouse", "soil", "counter", "host"}
    assert all(set(r) == {"sensor", "quantity", "value", "unit", "ts"} for r in rows)
    counter = [r for r in rows if r["sensor"] == "counter"]
    assert [r["value"] for r in counter] == [0]
    assert {r["quantity"] for r in rows if r["sensor"] == "host"} >= {"load_1m", "memory_used", "uptime"}


def test_read_named_sensor_text() -> None:
    out = sensord_cmd("read", "-c", DEMO, "counter")
    assert out.returncode == 0
    assert out.stdout.split() == ["counter", "value", "0"]


def test_read_unknown_sensor_name() -> None:
    out = sensord_cmd("read", "-c", DEMO, "countr")
    assert out.returncode == 2
    assert out.stderr.strip() == f'sensord: no sensor "countr" in {DEMO}, did you mean "counter"?'


def test_config_error_exit_78_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sensor]]\nname = "a"\ntype = "sim"\ninterval_s = 0\n')
    out = sensord_cmd("check", "-c", str(bad))
    assert out.returncode == 78
    assert out.stderr == f"sensord: {bad}: sensor[0].interval_s: expected a number > 0, found 0\n"
    assert out.stdout == ""
    debug = sensord_cmd("--debug", "check", "-c", str(bad))
    assert debug.returncode == 78 and "Traceback" in debug.stderr


def test_config_from_environment(tmp_path: Path) -> None:
    out = sensord_cmd("check", env={"SENSORD_CONFIG": str(tmp_path / "nope.toml")})
    assert out.returncode == 78
    assert "nope.toml: config file not found" in out.stderr


def test_check_open_summary() -> None:
    out = sensord_cmd("check", "-c", DEMO, "--open")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"{DEMO}: OK"
    assert "sensors: 4 (4 enabled)" in out.stdout
    assert "opened counter: value" in out.stdout


FAILING = '''
from dataclasses import dataclass
import sensord

class Failing(sensord.Sensor):
    type_name = "failing"

    @dataclass(frozen=True)
    class Config(sensord.SensorConfig):
        pass

    def read(self):
        raise sensord.SensorError(f"{self.describe()}: chip id 0x58, expected 0x60")

@sensord.hookimpl
def sensord_register_sensors():
    return [Failing]
'''


def test_read_failure_exit_1_others_still_read(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING)
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[plugins]\ndirs = ["{tmp_path}"]\n'
                   '[[sensor]]\nname = "attic"\ntype = "failing"\ninterval_s = 1\n'
                   '[[sensor]]\nname = "c"\ntype = "sim"\ninterval_s = 1\nsignal = "counter"\n')
    out = sensord_cmd("read", "-c", str(cfg), "--json")
    assert out.returncode == 1
    assert out.stderr.strip() == 'sensord: sensor "attic" (failing): chip id 0x58, expected 0x60'
    assert json.loads(out.stdout)["sensor"] == "c"


def test_plugins_lists_versions_types_and_failures(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "sensord_broken-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sensord-broken\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[sensord]\nbroken = sensord_broken\n")
    (site / "sensord_broken.py").write_text("raise ImportError('needs libfoo')\n")
    dropins = tmp_path / "d"
    dropins.mkdir()
    (dropins / "failing.py").write_text(FAILING)
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[plugins]\ndirs = ["{dropins}"]\ndisabled = ["system"]\n')
    out = sensord_cmd("plugins", "-c", str(cfg), env={"PYTHONPATH": str(site)})
    assert out.returncode == 78
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines()}
    assert lines["sim"] == ["sim", sensord.__version__, "builtin", "sim"]
    assert lines["bme280"] == ["bme280", sensord.__version__, "builtin", "bme280,", "bmp280"]
    assert lines["failing"] == ["failing", "-", "drop-in", "failing"]
    assert lines["system"] == ["system", "-", "disabled", "-"]
    assert lines["broken"][:5] == ["broken", "0.3", "FAILED", "sensord-broken", "0.3:"]
    assert list(lines)[-1] == "broken"  # failures last
    assert "ImportError: needs libfoo" in out.stdout
    assert 'cannot load plugin "broken" (sensord-broken 0.3)' in out.stderr


@pytest.mark.parametrize("args", [["check"], ["read"]])
def test_plugin_error_exit_78(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "typo.py").write_text("import sensord\n\n@sensord.hookimpl\n"
                                      "def sensord_register_sensor():\n    return []\n")
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[plugins]\ndirs = ["{tmp_path}"]\n')
    out = sensord_cmd(*args, "-c", str(cfg))
    assert out.returncode == 78
    assert out.stderr.strip().endswith('did you mean "sensord_register_sensors"?')


def test_detect_fake_prints_pasteable_toml() -> None:
    import tomllib

    out = sensord_cmd("detect", "--fake")
    assert out.returncode == 0, out.stderr
    doc = tomllib.loads(out.stdout)
    types = {s["type"] for s in doc["sensor"]}
    assert {"bme280", "bmp280", "sht3x", "sht4x", "aht20", "htu21d", "ina219", "ads1115", "scd4x", "scd30", "sgp40",
            "veml7700", "tsl2591", "bme680", "bmp388", "bmp390", "mcp9808", "hdc1080", "ina226", "ina260", "ds18b20",
            "iio", "hwmon"} <= types
    assert "## I2C bus 3 (fake: one of each built-in and plugin chip model): 3 chips" in out.stdout
    assert "## I2C bus 4 (fake: one of each built-in and plugin chip model): 1 chip" in out.stdout
    assert {(s["type"], s["bus"], s["address"]) for s in doc["sensor"]
            if s["type"].startswith(("bmp3", "bme6")) or s["type"] == "htu21d"} \
        == {("bme680", 3, 0x77), ("bmp388", 3, 0x76), ("htu21d", 3, 0x40), ("bmp390", 4, 0x77)}
    assert '## IIO devices in ' in out.stdout and 'channels = ["temp", "humidityrelative"]' in out.stdout
    assert "# 0x23: unknown chip; sensor types that use this address: bh1750" in out.stdout
    assert "address = 0x76" in out.stdout  # hex, as datasheets write it


def test_detect_missing_bus_is_one_clear_line() -> None:
    out = sensord_cmd("detect", "--bus", "97")
    assert out.returncode == 1
    assert out.stderr.startswith("sensord: cannot open /dev/i2c-97: ")


def test_read_every_builtin_type_on_fake_hardware(tmp_path: Path) -> None:
    out = sensord_cmd("read", "-c", str(ROOT / "config" / "fake.toml"), "--fake", "--json", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    by_sensor = {r["sensor"]: r for r in rows}
    assert len(by_sensor) == 34
    assert {r["quantity"] for r in rows} >= {"temperature", "humidity", "pressure", "illuminance", "voltage",
                                              "current", "power", "carbon_dioxide", "contact", "motion", "count",
                                              "pm1", "pm2_5", "pm10"}
    assert by_sensor["tank"]["value"] == 21.5
    values = {(r["sensor"], r["quantity"]): (r["value"], r["unit"]) for r in rows}
    assert values["porch", "temperature"] == (21.3, "°C")  # iio: a DHT22 on the kernel's dht11 driver
    assert values["battery", "power"] == (0.15024, "W")  # hwmon: an INA219 on the kernel's ina2xx driver
    assert values["desk", "illuminance"] == (pytest.approx(250.0, abs=0.2688), "lx")  # VEML7700Model's default
    assert values["bedroom_co2", "carbon_dioxide"] == (439.1, "ppm")  # SCD30Model: the read_measurement example
    assert values["living_voc", "voc_raw"] == (30000, "")  # SGP40Model's default SRAW
    assert values["lounge", "gas_resistance"] == (20467, "Ω")  # BME680Model's worked example, on bus 3
    assert values["lounge", "temperature"] == (19.31, "°C")
    assert values["window", "illuminance"] == (pytest.approx(250.0, abs=0.2), "lx")  # TSL2591Model's default
    assert values["mast", "pressure"] == (1008.76, "hPa")  # BMP388Model's default: a real chip's reading
    assert values["barometer", "temperature"] == (30.5, "°C")  # BMP390Model's, on the fake node's bus 4
    assert values["fridge", "temperature"] == (21.0, "°C")  # MCP9808Model's default
    assert values["pantry", "humidity"] == (pytest.approx(45.0, abs=0.01), "%")  # HDC1080Model's default
    assert values["bathroom", "humidity"] == (pytest.approx(50.0, abs=0.01), "%")  # the HTU21D, on bus 3
    assert values["soil", "voltage_ch0"] == (1.65, "V")  # the MCP3008 on CE0, through gpiozero's SPI
    assert values["soil", "voltage_ch2_ch3"] == (pytest.approx(0.75, abs=3.3 / 1024), "V")
    assert values["pump", "voltage_ch0_ch1"] == (pytest.approx(0.9, abs=3.3 / 4096), "V")  # the MCP3208 on CE1
    assert values["house_battery", "power"] == (pytest.approx(6.0, abs=0.01), "W")  # INA226Model: 12 V, 0.5 A
    assert values["charger", "current"] == (0.5, "A")  # INA260Model's default, 1.25 mA steps
    # The UART sensors on the fake node's serial ports, at their models' defaults.
    assert values["balcony", "pm2_5"] == (12, "µg/m³")  # PMS5003 on /dev/ttyUSB0
    assert values["street", "pm10"] == (261.8, "µg/m³")  # SDS011: the control protocol's example frame
    assert values["living_room_co2", "carbon_dioxide"] == (544, "ppm")  # MH-Z19B: the manual's example


SIM = '[[sensor]]\nname = "a"\ntype = "sim"\ninterval_s = 1\n'
PLUGINS = '[plugins]\ndirs = []\n'


@pytest.mark.parametrize(("text", "message"), [
    (PLUGINS + SIM.replace("interval_s = 1", "interval_s = inf"),
     "sensor[0].interval_s: expected a finite number > 0, found inf"),
    ("", "sensor: expected at least one [[sensor]] table, found none (an empty or cut-short file?)"),
    (PLUGINS + '[buffer]\npath = ""\n' + SIM, 'buffer.path: expected the path of the buffer file, found ""'),
    (PLUGINS + '[mqtt]\nusername = "u"\npassword_file = "{tmp}/pw"\n' + SIM,
     "mqtt.password_file: {tmp}/pw: mode 0644 lets other users read the password; chmod 600 it"),
    (PLUGINS + '[mqtt.tls]\nca_file = "{tmp}/ca.pem"\n' + SIM,
     "mqtt.tls.ca_file: cannot load CA certificates from {tmp}/ca.pem: No such file or directory"),
    (PLUGINS + '[batch]\nencoding = "senml+json"\n' + SIM.replace('"a"', '"Küche 1"'),
     'sensor[0].name: expected a name of A-Z a-z 0-9 - : . _ only (RFC 8428 §4.5.1, '
     'batch.encoding = "senml+json"), found "Küche 1"'),
], ids=["inf", "empty", "buffer-path", "password-0644", "ca-missing", "senml-name"])
def test_check_refuses_what_run_refuses(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o644)
    cfg = tmp_path / "s.toml"
    cfg.write_text(text.replace("{tmp}", str(tmp_path)))
    line = f"sensord: {cfg}: {message.replace('{tmp}', str(tmp_path))}\n"
    check = sensord_cmd("check", "-c", str(cfg))
    assert (check.returncode, check.stderr, check.stdout) == (78, line, "")
    # `run` refuses the same file with the same line, before it opens the buffer.
    run = subprocess.run([sys.executable, "-m", "sensord", "run", "-c", str(cfg)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=20)
    assert (run.returncode, run.stderr) == (78, line)
    assert sorted(tmp_path.iterdir()) == [tmp_path / "pw", cfg]  # nothing created (cwd is tmp_path)


def test_check_reports_a_plugin_that_fails_at_import_once(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ImportError('needs libfoo')\n")
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[plugins]\ndirs = ["{tmp_path}"]\n' + SIM)
    out = sensord_cmd("check", "-c", str(cfg))
    assert out.returncode == 78
    assert out.stderr.count('cannot load plugin "broken"') == 1, out.stderr
    assert f'cannot load plugin "broken" ({tmp_path}/broken.py): ImportError: needs libfoo' in out.stderr
    assert out.stdout.startswith(f"{cfg}: OK")
