"""sensord/bridge/config.py: the bridge's own TOML file, validated like the node's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sensord.bridge import parse_bridge_config
from sensord.config import read_toml
from sensord.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "config" / "bridge.example.toml"


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_bridge_config(tomllib.loads(text), "bridge.toml")


def test_example_file_parses_to_the_defaults() -> None:
    file = parse_bridge_config(read_toml(str(EXAMPLE)), str(EXAMPLE))
    assert file.bridge == parse("").bridge
    assert file.bridge.line_protocol == "-" and file.bridge.client_id == "sensord-bridge"
    assert file.mqtt.topic_prefix == "sensord"


def test_every_commented_key_of_the_example_is_a_real_key() -> None:
    text = EXAMPLE.read_text()
    uncommented = "\n".join(line.replace("# ", "", 1) if line.strip().startswith("# ") and "=" in line else line
                            for line in text.splitlines())
    file = parse(uncommented)
    assert file.bridge.nodes == ("barn", "greenhouse-1")


def test_bridge_table_is_read() -> None:
    file = parse('[bridge]\nout_prefix = "plain"\nline_protocol = "/tmp/x.lp"\nnodes = ["a"]\n'
                 '[mqtt]\nport = 1884\ntopic_prefix = "farm/sensors"\n')
    assert file.bridge.out_prefix == "plain" and file.bridge.nodes == ("a",)
    assert file.mqtt.port == 1884 and file.mqtt.topic_prefix == "farm/sensors"


@pytest.mark.parametrize(("text", "message"), [
    ("[bridg]\n", "bridge.toml: bridg: unknown section for a bridge config, did you mean \"bridge\"?"),
    ("[node]\nid = 'x'\n", "bridge.toml: node: unknown section for a bridge config"),
    ("[bridge]\nout_prefx = 'a'\n", "bridge.toml: bridge.out_prefx: unknown key, did you mean \"out_prefix\"?"),
    ("[bridge]\nsession_expiry_s = -1\n", "bridge.toml: bridge.session_expiry_s: expected"),
    ("[bridge]\nnodes = ['a/b']\n", "bridge.toml: bridge.nodes[0]: expected a node id without"),
    ("[bridge]\nout_prefix = 'a/#'\n", "bridge.toml: bridge.out_prefix: expected a topic without wildcards"),
    ("[bridge]\nshared_group = 'g/1'\n", "bridge.toml: bridge.shared_group: expected a name without"),
    ("[bridge]\njson_lines = '-'\n", "bridge.toml: bridge.json_lines: line_protocol already writes to stdout"),
    ("[bridge]\nline_protocol = ''\n", "bridge.toml: bridge.line_protocol: every output is off"),
    ("[bridge]\nline_protocol = 'a'\njson_lines = 'a'\n", "bridge.toml: bridge.json_lines: expected another file"),
    ("[mqtt]\nprot = 1\n", "bridge.toml: mqtt.prot: unknown key, did you mean \"port\"?"),
])
def test_errors_name_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value).startswith(message), str(info.value)


def test_cli_help_and_a_config_error_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sensord.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bridge", "--help"])
    assert info.value.code == 0
    assert "[bridge], [mqtt] and [plugins]" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")
    bad = tmp_path / "bridge.toml"
    bad.write_text("[bridge]\nout_prefx = 'a'\n")
    assert main(["bridge", "-c", str(bad)]) == 78
    assert f"sensord: {bad}: bridge.out_prefx: unknown key" in capsys.readouterr().err
