"""A real Home Assistant core, headless, for tests against a test broker.

`HomeAssistant(workdir, mqtt_host=..., mqtt_port=...)` writes a minimal config directory (no
`default_config`: `http` on a free loopback port, `api`, `logger`; bootstrap still adds its
DEFAULT_INTEGRATIONS such as `frontend` and `onboarding`), pre-writes the MQTT integration's config
entry pointing at the broker with discovery on prefix `homeassistant`, and runs `hass` from
`.venv-ha` (made by `.ci/ha-env`) as a subprocess with `--skip-pip`, logging to `home-assistant.log`.
It gets an access token without a human through the onboarding API (create the owner user, trade
the auth code at `/auth/token`) and then reads HA's state machine over REST and its registries
over the websocket API (through `.venv-ha`'s python, which has aiohttp; sensord's `.venv` has not).

Only the standard library is imported here, so the module loads under sensord's Python 3.11.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from sensord.testing.broker import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".venv-ha"
INSTALL_HINT = "the Home Assistant test install is missing: run .ci/ha-env (or make test-ha)"

# HA's log lines: "2026-02-10 12:00:00.123 WARNING (MainThread) [homeassistant.components.mqtt.x] text"
_LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) \((?P<thread>[^)]*)\) \[(?P<logger>[^\]]+)\] (?P<text>.*)$")
_MQTT_LOGGERS = ("homeassistant.components.mqtt", "homeassistant.helpers.template",
                 "homeassistant.components.sensor", "homeassistant.components.binary_sensor",
                 "homeassistant.helpers.entity", "homeassistant.helpers.device_registry",
                 "homeassistant.helpers.entity_registry")

_WS_QUERY = r"""
import asyncio, json, sys
import aiohttp

async def main(url, token, commands):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": token})
        reply = await ws.receive_json()
        if reply["type"] != "auth_ok":
            raise SystemExit(f"websocket auth failed: {reply}")
        results = []
        for number, command in enumerate(commands, 1):
            await ws.send_json({"id": number, **command})
            while (reply := await ws.receive_json())["id"] != number:
                pass
            if not reply["success"]:
                raise SystemExit(f"websocket {command}: {reply['error']}")
            results.append(reply["result"])
        print(json.dumps(results))

asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())))
"""


class HomeAssistantError(RuntimeError):
    """Home Assistant did not start, answer or stop in time; the message ends with its log's tail."""


class HomeAssistant:
    """One Home Assistant process on a config directory of its own under `workdir`.

    Use as a context manager (start, then stop). `restart()` stops and starts it on the same
    directory: entities, devices and the token come back from `.storage`.
    """

    def __init__(self, workdir: Path, *, mqtt_host: str, mqtt_port: int, venv: Path = DEFAULT_VENV,
                 discovery_prefix: str = "homeassistant", start_timeout_s: float = 90.0) -> None:
        self.config_dir = Path(workdir) / "ha-config"
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.venv = Path(venv)
        self.discovery_prefix = discovery_prefix
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.config_dir / "home-assistant.log"
        self.stdout_path = self.config_dir / "hass.stdout"
        self.start_times_s: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._log_before = ""  # the logs of the runs before this one

    # -- process -------------------------------------------------------------------------------

    @property
    def launcher(self) -> Path:
        return self.venv / "bin" / "hass-py313"

    def _write_config(self) -> None:
        if (self.config_dir / "configuration.yaml").exists():
            return
        storage = self.config_dir / ".storage"
        storage.mkdir(parents=True)
        # A fixed location, time zone and unit system: nothing to detect, the same numbers everywhere.
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n"
            "  name: sensord test\n"
            "  latitude: 52.0\n  longitude: 5.0\n  elevation: 0\n"
            "  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  country: NL\n"
            "http:\n"
            "  server_host: 127.0.0.1\n"
            f"  server_port: {self.port}\n"
            "api:\n"
            "logger:\n"
            "  default: warning\n"
            "  logs:\n"
            # Debug lines name each discovery and state message, which explains a failing test;
            # mqtt_problems() looks at WARNING and above only.
            "    homeassistant.components.mqtt: debug\n"
        )
        now = "2026-01-01T00:00:00+00:00"
        entry = {
            "created_at": now, "modified_at": now,
            "data": {"broker": self.mqtt_host, "port": self.mqtt_port},
            "options": {"discovery": True, "discovery_prefix": self.discovery_prefix},
            "discovery_keys": {}, "disabled_by": None, "domain": "mqtt",
            "entry_id": uuid.uuid4().hex, "minor_version": 1, "version": 2,
            "pref_disable_new_entities": False, "pref_disable_polling": False,
            "source": "user", "subentries": [], "title": self.mqtt_host, "unique_id": None,
        }
        (storage / "core.config_entries").write_text(json.dumps(
            {"version": 1, "minor_version": 5, "key": "core.config_entries", "data": {"entries": [entry]}},
            indent=1))

    def start(self) -> None:
        """Start hass and return once it runs, answers with a token and its MQTT entry is loaded."""
        if not self.launcher.exists():
            raise HomeAssistantError(f"{self.launcher} not found; {INSTALL_HINT}")
        self._write_config()
        began = time.monotonic()
        with open(self.stdout_path, "ab") as out:
            self._proc = subprocess.Popen(
                [str(self.launcher), "-c", str(self.config_dir), "--skip-pip", "--log-no-color",
                 "--log-file", str(self.log_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, start_new_session=True)
        try:
            self._wait(lambda: self._answers(), "the HTTP API to answer")
            self._get_token()
            self._wait(lambda: self.request("GET", "/api/config")["state"] == "RUNNING", "state RUNNING")
            self._wait(self._mqtt_loaded, "the MQTT config entry to load")
        except BaseException:
            self.stop()
            raise
        self.start_times_s.append(time.monotonic() - began)

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM by PID, wait (HA writes `.storage` on the way out), SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log_before += self._read_log()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> HomeAssistant:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise HomeAssistantError(f"hass exited with {self._proc.returncode} while waiting for {what}"
                                         f"\n{self._tail()}")
            try:
                if ready():
                    return
            except (OSError, HomeAssistantError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"no {what} within {self.start_timeout_s} s\n{self._tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        with contextlib.suppress(urllib.error.HTTPError):  # any HTTP answer will do
            urllib.request.urlopen(self.base_url + "/api/onboarding", timeout=2).close()
        return True

    def _mqtt_loaded(self) -> bool:
        entries = self.request("GET", "/api/config/config_entries/entry?domain=mqtt")
        return any(entry["state"] == "loaded" for entry in entries)

    # -- auth ----------------------------------------------------------------------------------

    def _get_token(self) -> None:
        client_id = self.base_url + "/"
        if self._token is not None:
            try:
                self.request("GET", "/api/")
                return
            except HomeAssistantError:  # expired (30 minutes): trade the refresh token
                grant = {"grant_type": "refresh_token", "refresh_token": self._refresh_token,
                         "client_id": client_id}
        else:
            # Onboarding's first step makes the owner and hands out an auth code, as the UI's form does.
            user = self.request("POST", "/api/onboarding/users", {
                "client_id": client_id, "name": "Test", "username": "test",
                "password": "sensord-test", "language": "en"}, auth=False)
            grant = {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id}
        body = urllib.parse.urlencode(grant).encode()
        with urllib.request.urlopen(self.base_url + "/auth/token", body, timeout=10) as response:
            tokens = json.load(response)
        self._token = tokens["access_token"]
        self._refresh_token = tokens.get("refresh_token", self._refresh_token)

    # -- REST and websocket ----------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True, raw: bool = False) -> Any:
        """One REST call; JSON in and out (`raw=True`: the text). Errors raise HomeAssistantError."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise HomeAssistantError(f"{method} {path}: HTTP {error.code} {error.read().decode()[:500]}") from None
        return text if raw else json.loads(text)

    def states(self) -> list[dict[str, Any]]:
        """Every entity's state object (`entity_id`, `state`, `attributes`, ...) from /api/states."""
        result: list[dict[str, Any]] = self.request("GET", "/api/states")
        return result

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """One entity's state object, or None if HA has no such entity."""
        try:
            result: dict[str, Any] = self.request("GET", f"/api/states/{entity_id}")
        except HomeAssistantError as error:
            if "HTTP 404" in str(error):
                return None
            raise
        return result

    def render(self, template: str) -> str:
        """Render a Jinja template in HA (`device_id('sensor.x')`, `device_attr(...)`, ...)."""
        result: str = self.request("POST", "/api/template", {"template": template}, raw=True)
        return result

    def wait_for(self, predicate: Callable[[HomeAssistant], Any], timeout_s: float = 10.0,
                 what: str = "the condition") -> Any:
        """Poll `predicate(self)` every 50 ms until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"Home Assistant: no {what} within {timeout_s} s\n{self._tail()}")
            time.sleep(0.05)

    def websocket(self, *commands: dict[str, Any]) -> list[Any]:
        """Send websocket commands (`{"type": "config/device_registry/list"}`); return their results."""
        url = self.base_url.replace("http", "ws", 1) + "/api/websocket"
        done = subprocess.run([str(self.venv / "bin" / "python"), "-c", _WS_QUERY, url, str(self._token)],
                              input=json.dumps(commands), capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise HomeAssistantError(f"websocket query failed: {done.stderr.strip()[-1000:]}")
        result: list[Any] = json.loads(done.stdout)
        return result

    def registries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(entity registry, device registry) entries, in one websocket session."""
        entities, devices = self.websocket({"type": "config/entity_registry/list"},
                                           {"type": "config/device_registry/list"})
        return entities, devices

    # -- log -----------------------------------------------------------------------------------

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """HA's log across every start of this object (HA rewrites the file on each start)."""
        return self._log_before + self._read_log() if self.running else self._log_before

    def problems(self, loggers: tuple[str, ...] = ("",)) -> list[str]:
        """WARNING and worse log lines whose logger name starts with one of `loggers`."""
        found = []
        for line in self.log_text().splitlines():
            match = _LOG_LINE.match(line)
            if (match and match["level"] in ("WARNING", "ERROR", "CRITICAL")
                    and match["logger"].startswith(loggers)):
                found.append(line)
        return found

    def mqtt_problems(self) -> list[str]:
        """WARNING/ERROR lines from MQTT, templates, entities and registries: a test wants none."""
        return self.problems(_MQTT_LOGGERS)

    def _tail(self, lines: int = 30) -> str:
        text = self._read_log() or (self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else "")
        return "\n".join(text.splitlines()[-lines:])
