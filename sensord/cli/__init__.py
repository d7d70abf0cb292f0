"""Command line: `sensord check | read | plugins`. The only module that prints.

Exit codes: 0 success, 1 a sensor failed to open or read, 2 usage error, 73 (EX_CANTCREAT) the
buffer file cannot be written (read-only file system, permissions), 74 (EX_IOERR) `run` stopped with
readings it could not store, 78 (EX_CONFIG) a config or plugin error. systemd's
`RestartPreventExitStatus=73 78` stops a crash loop on what only an operator can fix.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__, startup
from .. import config as cfgmod
from ..errors import BufferUnwritable, ConfigError, PluginError, SensordError
from ..hardware import Hardware

if TYPE_CHECKING:
    from ..plugins import PluginHost
    from ..sensor import Reading

EX_OK, EX_FAIL, EX_USAGE, EX_CANTCREAT, EX_CONFIG = 0, 1, 2, 73, 78
BRIDGE_ENV_VAR = "SENSORD_BRIDGE_CONFIG"
log = logging.getLogger("sensord")


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size()` gives it to argparse: $COLUMNS, else
    the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80 if sys.__stdout__ else 80
    except (ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, its width found without importing shutil (3 ms of `sensord
    check`, with zlib, bz2 and lzma): argparse makes one for each option it adds, to check it."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)  # argparse takes 2 off the terminal's width too


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensord", formatter_class=_Formatter,
        description="Sensor-node daemon: reads sensors through plugins and publishes them over MQTT.",
        epilog=f"Config: -c FILE, else ${cfgmod.ENV_VAR}, else {cfgmod.DEFAULT_PATH}. "
               "Exit codes: 0 ok, 1 sensor failure, 2 usage, 73 buffer not writable, "
               "74 readings lost at stop, 78 config or plugin error.")
    parser.add_argument("--version", action="version", version=f"sensord {__version__}")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="informational logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        p.add_argument("-c", "--config", metavar="FILE", help="config file (TOML)")
        return p

    fake_help = "use the simulated chips of sensord.testing instead of real hardware"
    p = add("check", "validate the config, load plugins and print a summary")
    p.add_argument("--open", action="store_true", help="also open (probe) every enabled sensor")
    p.add_argument("--fake", action="store_true", help=fake_help)
    p.set_defaults(func=cmd_check)

    p = add("read", "read each enabled sensor (or the named ones) once and print the readings")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per reading per line: sensor, quantity, value, unit, ts")
    p.add_argument("sensors", nargs="*", metavar="SENSOR", help="sensor names (default: all enabled)")
    p.add_argument("--fake", action="store_true", help=fake_help)
    p.set_defaults(func=cmd_read)

    p = add("plugins", "list plugins, their versions and sensor types, and plugins that failed")
    p.set_defaults(func=cmd_plugins)

    p = add("run", "run the daemon: read sensors, batch, buffer on disk, publish over MQTT")
    p.add_argument("--fake", action="store_true", help=fake_help)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("decode", help="decode one batch payload (a file, or - for stdin) into JSON lines",
                       description="Decode one batch payload in any sensord encoding (detected from its first bytes) "
                                   "and print one JSON object per reading, with the keys of `sensord listen`.",
                       formatter_class=_Formatter)
    p.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="payload file (default: stdin)")
    p.add_argument("-c", "--config", metavar="FILE",
                   help="load the plugins of this config's [plugins] section, for their encodings")
    p.set_defaults(func=cmd_decode)

    p = add("detect", "scan an I2C bus (and 1-Wire) and print [[sensor]] blocks for the chips found")
    p.add_argument("--bus", type=int, default=1, metavar="N", help="I2C bus: /dev/i2c-N (default 1)")
    p.add_argument("--fake", action="store_true",
                   help="scan a fake bus holding one of each built-in and plugin chip model")
    p.set_defaults(func=cmd_detect)

    p = add("buffer", "show the offline buffer: pending batches, readings, bytes, oldest age, dropped")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_buffer)

    p = sub.add_parser("listen", help="subscribe to nodes' batches and print one JSON line per reading",
                       description="Subscribe to sensord batches and print one JSON object per reading per line "
                                   "(node, sensor, quantity, value, unit, ts, seq). Survives broker restarts: "
                                   "reconnects with backoff and says so in one line on stderr.",
                       formatter_class=_Formatter)
    p.add_argument("-c", "--config", metavar="FILE",
                   help="take broker, prefix and node from this config (options below override it)")
    p.add_argument("--host", help="broker host (default: from the config, else localhost)")
    p.add_argument("--port", type=int, help="broker port (default: from the config, else 1883)")
    p.add_argument("--prefix", help="topic prefix (default: sensord)")
    p.add_argument("--node", help="only this node (default: every node)")
    p.add_argument("--count", type=int, metavar="N", help="exit 0 after N readings")
    p.add_argument("--timeout", type=float, metavar="S", help="exit 0 after S seconds")
    p.add_argument("--status", action="store_true", help='also print status changes as {"node": ..., "status": ...}; '
                   "after a reconnect, a retained status that changed meanwhile")
    p.add_argument("--session", metavar="NAME",
                   help="use a persistent session (QoS 1, kept 24 h): batches published while listen is away, "
                        "or the broker restarts, are delivered when it is back")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("bridge", help="server side: write every node's readings, once, as line protocol, "
                                      "JSON lines or plain retained topics",
                       description="Subscribe to the batches, status and meta of every node (or those listed), "
                                   "decode them and write each reading once: InfluxDB line protocol (stdout for "
                                   "Telegraf's inputs.execd, or a file), JSON lines, and retained per-channel "
                                   "topics. Configured by the [bridge], [mqtt] and [plugins] tables of its own "
                                   "file (config/bridge.example.toml).",
                       formatter_class=_Formatter)
    p.add_argument("-c", "--config", metavar="FILE",
                   help=f"bridge config file (default: ${BRIDGE_ENV_VAR}, else /etc/sensord/bridge.toml)")
    p.set_defaults(func=cmd_bridge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EX_USAGE
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, PluginError) as exc:
        if args.debug:
            log.exception("details")
        print(f"sensord: {exc}", file=sys.stderr)
        return EX_CONFIG
    except BufferUnwritable as exc:  # a read-only file system or permissions: restarting won't help
        print(f"sensord: {exc}", file=sys.stderr)
        return EX_CANTCREAT
    except SensordError as exc:
        if args.debug:
            log.exception("details")
        print(f"sensord: {exc}", file=sys.stderr)
        return EX_FAIL
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> startup.Loaded:
    return startup.load(cfgmod.resolve_path(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    # The same checks as `run` and a reload make. A plugin that failed to load was logged (once)
    # where it failed; it makes the exit code 78.
    loaded = startup.load_runnable(cfgmod.resolve_path(args.config))
    cfg = loaded.config
    enabled = cfg.enabled_sensors
    print(f"{cfg.file}: OK")
    print(f"  node {cfg.node.id}, broker {cfg.mqtt.host}:{cfg.mqtt.port} ({cfg.mqtt.mode}), "
          f"buffer {cfg.buffer.path}")
    from ..mqtt.reconnect import describe_policy  # here: the other commands need no MQTT library

    for line in describe_policy(cfg.mqtt):
        print(f"  {line}")
    print(f"  plugins: {', '.join(p.name for p in loaded.plugins.loaded)}")
    print(f"  sensors: {len(cfg.sensors)} ({len(enabled)} enabled)")
    for spec in cfg.sensors:
        state = "" if spec.enabled else ", disabled"
        print(f"    {spec.name}: {spec.type} every {spec.interval_s:g} s{state}")
    _print_entities(loaded)
    code = EX_CONFIG if loaded.plugins.failed else EX_OK
    if args.open:
        hardware = startup.make_hardware(cfg, fake=args.fake, host=loaded.plugins)
        try:
            for spec in enabled:
                sensor = startup.build_sensor(spec, loaded, hardware)
                try:
                    sensor.open()
                    channels = ", ".join(f"{c.quantity}" + (f" [{c.unit}]" if c.unit else "")
                                         for c in sensor.channels())
                    print(f"  opened {spec.name}: {channels}")
                    sensor.close()
                except Exception as exc:  # report every sensor, not just the first failure
                    print(f"sensord: {sensor.describe()}: cannot open: {exc}", file=sys.stderr)
                    code = max(code, EX_FAIL)
        finally:
            hardware.close()
    return code


def _print_entities(loaded: startup.Loaded) -> None:
    """What Home Assistant discovery announces: entity id, device class, unit (as declared before
    the sensors open; a driver may add a channel once it knows its chip)."""
    cfg = loaded.config
    ha = cfg.homeassistant
    if not ha.discovery:
        print("  Home Assistant discovery: off ([homeassistant] discovery = false)")
        return
    from ..homeassistant import discovery_topic

    entities = startup.announced_entities(loaded, keys=False)  # it shows no state key: no hashing
    print(f"  Home Assistant discovery: {startup.counted(len(entities), 'entity').replace('entitys', 'entities')} "
          f"of device \"{cfg.node.id}\" on {discovery_topic(ha.discovery_prefix, cfg.node.id)}")
    width = max(len(e.entity_id(cfg.node.id)) for e in entities)
    for e in entities:
        extra = "  diagnostic" if e.diagnostic else ""
        print(f"    {e.entity_id(cfg.node.id):<{width}}  {e.device_class or '-':<15} {e.unit or '-'}{extra}".rstrip())


def cmd_read(args: argparse.Namespace) -> int:
    import json  # in each command that prints JSON: `check` needs none

    loaded = _load(args)
    cfg = loaded.config
    by_name = {s.name: s for s in cfg.sensors}
    if args.sensors:
        for name in args.sensors:
            if name not in by_name:
                import difflib  # here: only an error's did-you-mean needs it (0.2 MiB)

                close = difflib.get_close_matches(name, list(by_name), n=1)
                hint = f', did you mean "{close[0]}"?' if close else ""
                print(f'sensord: no sensor "{name}" in {cfg.file}{hint}', file=sys.stderr)
                return EX_USAGE
        specs = [by_name[n] for n in args.sensors]
    else:
        specs = list(cfg.enabled_sensors)
    import asyncio  # here, not at the top: `check` starts faster without it

    hardware = startup.make_hardware(cfg, fake=args.fake, host=loaded.plugins)
    try:
        results = asyncio.run(_read_all(specs, loaded, hardware))
    finally:
        hardware.close()
    code = EX_OK
    for spec, outcome, ts in results:
        if isinstance(outcome, BaseException):
            print(f"sensord: {outcome}", file=sys.stderr)
            code = EX_FAIL
            continue
        for r in outcome:
            if args.json:
                print(json.dumps({"sensor": spec.name, "quantity": r.quantity, "value": r.value,
                                  "unit": r.unit, "ts": round(ts, 3)}, ensure_ascii=False))
            else:
                print(f"{spec.name:<16} {r.quantity:<20} {r.value!s:>12} {r.unit}".rstrip())
    sys.stdout.flush()
    return code


async def _read_all(specs: Sequence[cfgmod.SensorSpec], loaded: startup.Loaded,
                    hardware: Hardware) -> list[tuple[cfgmod.SensorSpec, Any, float]]:
    import asyncio
    import time

    from ..scheduler import Worker, call_with_timeout, read_with_timeout

    async def one(spec: cfgmod.SensorSpec) -> tuple[cfgmod.SensorSpec, Any, float]:
        ts = time.time()
        worker = Worker(spec.name)
        try:
            sensor = startup.build_sensor(spec, loaded, hardware)
            await call_with_timeout(sensor, worker, sensor.open, spec.timeout_s, "open")
            ts = time.time()
            readings: list[Reading] = await read_with_timeout(sensor, worker, spec.timeout_s)
            worker.submit(sensor.close)
            return spec, readings, ts
        except Exception as exc:  # report each sensor's failure, keep reading the others
            if isinstance(exc, SensordError):
                return spec, exc, ts
            return spec, SensordError(f'sensor "{spec.name}" ({spec.type}): {type(exc).__name__}: {exc}'), ts
        finally:
            worker.stop()

    return list(await asyncio.gather(*(one(s) for s in specs)))


def cmd_plugins(args: argparse.Namespace) -> int:
    path = cfgmod.resolve_path(args.config)
    if args.config or os.path.exists(path):
        plugins_cfg = cfgmod.parse_plugins(cfgmod.read_toml(path), path)
    else:
        plugins_cfg = cfgmod.PluginsConfig()
    from ..plugins import get_plugin_manager

    host = get_plugin_manager(dirs=plugins_cfg.dirs, disabled=plugins_cfg.disabled)
    types_by_plugin: dict[str, list[str]] = {}
    for type_name, plugin in sorted(host.sensor_plugin.items()):
        types_by_plugin.setdefault(plugin, []).append(type_name)
    for info in host.loaded:
        types = ", ".join(types_by_plugin.get(info.name, [])) or "-"
        print(f"{info.name:<16} {info.version or '-':<10} {info.source:<12} {types}")
    for name in sorted(plugins_cfg.disabled):
        print(f"{name:<16} {'-':<10} {'disabled':<12} -")
    for info in host.failed:
        print(f"{info.name:<16} {info.version or '-':<10} {'FAILED':<12} {info.origin}: {info.error}")
    return EX_CONFIG if host.failed else EX_OK


def cmd_run(args: argparse.Namespace) -> int:
    path = cfgmod.resolve_path(args.config)
    loaded = startup.load_runnable(path)  # a plugin that failed to load is logged there, and run goes on
    if loaded.config.mqtt.tls is None:
        from ..deferred import defer_openssl

        defer_openssl()  # before asyncio: OpenSSL only if a reload turns TLS on (sensord/deferred.py)
    import asyncio

    from ..daemon import run_daemon

    if not args.debug and not args.verbose:
        logging.getLogger().setLevel(logging.INFO)  # a daemon says what it does; journald keeps it
    hardware = startup.make_hardware(loaded.config, fake=args.fake, host=loaded.plugins)
    return asyncio.run(run_daemon(path, loaded, hardware=hardware))


def _plugin_host(config: str | None) -> PluginHost:
    """Built-in, entry-point and drop-in plugins as `-c FILE` (else the default config file, if
    there is one) configures them: for commands that need plugins but not the rest of a config."""
    from ..plugins import get_plugin_manager

    path = cfgmod.resolve_path(config)
    plugins_cfg = (cfgmod.parse_plugins(cfgmod.read_toml(path), path)
                   if config or os.path.exists(path) else cfgmod.PluginsConfig())
    return get_plugin_manager(dirs=plugins_cfg.dirs, disabled=plugins_cfg.disabled)


def cmd_decode(args: argparse.Namespace) -> int:
    import json

    from ..encoding import DecodeError, decode
    from .rows import reading_rows

    name = "stdin" if args.file == "-" else args.file
    try:
        payload = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()  # noqa: SIM115
    except OSError as exc:
        print(f"sensord: {name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAIL
    try:
        batch = decode(payload, _plugin_host(args.config).encodings)
    except DecodeError as exc:
        print(f"sensord: {name}: {exc}", file=sys.stderr)
        return EX_FAIL
    for row in reading_rows(batch):
        print(json.dumps(row, ensure_ascii=False))
    return EX_OK


def cmd_detect(args: argparse.Namespace) -> int:
    from ..detect import identify, scan, sensor_block, suggest_name, toml_block

    host = _plugin_host(args.config)
    if args.fake:
        from ..testing.fakenode import fake_node_hardware

        hardware = fake_node_hardware(host)
    else:
        hardware = Hardware()
    try:
        try:
            bus = hardware.i2c(args.bus)
        except OSError as exc:
            print(f"sensord: cannot open /dev/i2c-{args.bus}: {exc.strerror or exc} (is I2C enabled, "
                  f"e.g. with raspi-config, and are you in group i2c?)", file=sys.stderr)
            return EX_FAIL
        buses = [(args.bus, bus)]
        if args.fake and args.bus == 1:
            from ..testing.fakenode import SPARE_BUSES

            for number in SPARE_BUSES:
                with contextlib.suppress(OSError):  # only there when a chip model did not fit before
                    buses.append((number, hardware.i2c(number)))
        kind = " (fake: one of each built-in and plugin chip model)" if args.fake else ""
        for number, each in buses:
            found = identify(each, scan(each), host.sensor_types.values(), sleep=hardware.sleep)
            print(f"## I2C bus {number}{kind}: {startup.counted(len(found), 'chip')}\n")
            for chip in found:
                print(toml_block(chip, suggest_name(chip), bus=number))
        if "ds18b20" in host.sensor_types:
            from sensord_plugins.ds18b20 import list_devices

            for device in list_devices(hardware.w1_root):
                print(sensor_block(f"ds18b20_{device[3:]}", "ds18b20", {"device": device}))
        from ..sysfs import KernelSensor

        for cls in host.sensor_types.values():
            if issubclass(cls, KernelSensor):
                found_here = cls.detect(hardware)
                if found_here:
                    print(f"## {cls.kind} devices in {hardware.sysfs.path(cls.class_dir)}: "
                          f"{startup.counted(len(found_here), 'device')}\n")
                for name, keys in found_here:
                    print(sensor_block(name, cls.type_name, keys))
    finally:
        hardware.close()
    return EX_OK


def cmd_buffer(args: argparse.Namespace) -> int:
    import json
    import time

    from ..buffer import Buffer
    from ..errors import BufferStorageError

    path = cfgmod.resolve_path(args.config)
    cfg = startup.load(path).config
    if not os.path.exists(cfg.buffer.path):
        print(f"sensord: no buffer at {cfg.buffer.path} (nothing was buffered yet)", file=sys.stderr)
        return EX_FAIL
    try:
        with Buffer.open(cfg.buffer.path, max_bytes=cfg.buffer.max_bytes) as buf:
            st = buf.stats()
    except BufferStorageError as exc:
        print(f"sensord: {exc}", file=sys.stderr)
        if "in use" in str(exc):
            print("sensord: the daemon holds the buffer while it runs; its figures are in "
                  "`systemctl status sensord` and in the retained meta topic", file=sys.stderr)
        return EX_FAIL
    age = None if st.oldest_created is None else max(0.0, time.time() - st.oldest_created)
    figures = {"path": cfg.buffer.path, "pending_batches": st.pending_batches,
               "pending_readings": st.pending_readings, "pending_bytes": st.pending_bytes,
               "staged_readings": st.staged_readings, "oldest_age_s": None if age is None else round(age, 1),
               "dropped_batches": st.dropped_batches, "dropped_readings": st.dropped_readings,
               "next_seq": st.next_seq}
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:<18} {'-' if value is None else value}")
    return EX_OK


def cmd_listen(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from .listen import listen

    mqtt = None
    if args.config:
        loaded = startup.load(args.config)
        cfg, encodings = loaded.config, loaded.plugins.encodings
        mqtt = cfg.mqtt
        host, port, prefix, node = cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.topic_prefix, cfg.node.id
    else:
        host, port, prefix, node = "localhost", 1883, "sensord", None
        encodings = _plugin_host(None).encodings
    host = args.host or host
    port = args.port or port
    prefix = args.prefix or prefix
    node = args.node or node
    if args.count is not None and args.count < 1:
        print("sensord: --count must be at least 1", file=sys.stderr)
        return EX_USAGE

    def emit(obj: dict[str, Any]) -> None:
        print(json.dumps(obj, ensure_ascii=False), flush=True)

    return asyncio.run(listen(host=host, port=port, prefix=prefix, node=node, count=args.count,
                              timeout_s=args.timeout, status=args.status, emit=emit, mqtt=mqtt,
                              encodings=encodings, session=args.session))


def cmd_bridge(args: argparse.Namespace) -> int:
    import asyncio

    from ..bridge import DEFAULT_BRIDGE_PATH, parse_bridge_config
    from ..bridge.runner import run_bridge
    from ..plugins import get_plugin_manager

    path = args.config or os.environ.get(BRIDGE_ENV_VAR) or DEFAULT_BRIDGE_PATH
    file = parse_bridge_config(cfgmod.read_toml(path), path)
    encodings = get_plugin_manager(dirs=file.plugins.dirs, disabled=file.plugins.disabled).encodings
    return asyncio.run(run_bridge(file, encodings=encodings))


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except BrokenPipeError:
        # `sensord read | head`: stop quietly, like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EX_FAIL)
    # The process ends now. Without this the interpreter's last collections free, one by one,
    # every module-level object that sits in a reference cycle (functions and their globals,
    # classes): 12-16 ms of `sensord check`, more than its config parsing; the kernel takes the
    # memory back at once. atexit handlers (logging's flush), stdout's flush and the finalisers of
    # objects freed by reference counting still run; each command has closed what it opened.
    gc.freeze()
    sys.exit(code)
