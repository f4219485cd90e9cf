"""Authority configuration (TOML), key files, and the `trimix authority` commands."""

from __future__ import annotations

import os
import socket
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from directory.authority_config import SAMPLE_CONFIG, load_authority_config, parse_authority_config
from directory.errors import ConfigError
from directory.keyfile import read_key_file, write_key_file
from directory.signatures import SigningKey
from trimix.cli import main

KEY_A = "11" * 32
KEY_B = "22" * 32


def _document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "authority": {"key_file": "a.key", "data_dir": "data", "listen": "127.0.0.1:8440"},
        "epoch": {"origin": 1_700_000_000, "length_seconds": 5},
        "parameters": {"mean_delay_ms": 80, "lambda_p": 1.5, "layers": 4},
        "geometry": {"hops": 5, "user_payload_size": 2640},
        "authorities": [
            {"public_key": KEY_A, "url": "http://127.0.0.1:8440"},
            {"public_key": KEY_B, "url": "http://127.0.0.2:8440"},
        ],
    }
    document.update(overrides)
    return document


def test_a_full_configuration(tmp_path: Path) -> None:
    config = parse_authority_config(_document(nodes={"allowed": [KEY_B]}), base=tmp_path)
    assert config.key_file == tmp_path / "a.key"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8440)
    assert config.clock.origin_ms == 1_700_000_000_000
    assert config.clock.length_ms == 5000
    assert config.parameters.mean_delay_ms == 80
    assert config.parameters.lambda_p_mhz == 1500
    assert config.parameters.lambda_l_mhz == 500  # the default
    assert config.parameters.layers == 4
    assert config.allowed_nodes == frozenset({bytes.fromhex(KEY_B)})
    policy = config.policy()
    assert policy.threshold == 2
    assert [p.public_key for p in config.peers(bytes.fromhex(KEY_A))] == [bytes.fromhex(KEY_B)]


def test_the_sample_configuration_parses_once_keys_are_filled_in(tmp_path: Path) -> None:
    text = SAMPLE_CONFIG.replace('"<64 hex digits>"', f'"{KEY_A}"', 1).replace(
        '"<64 hex digits>"', f'"{KEY_B}"', 1
    )
    path = tmp_path / "authority.toml"
    path.write_text(text)
    config = load_authority_config(path)
    assert config.clock.length_ms == 20 * 60 * 1000
    assert len(config.authorities) == 2


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"authority": {"key_file": "a.key", "data_dir": "d", "listen": "8440"}}, "host:port"),
        ({"authorities": []}, "at least one"),
        ({"authorities": [{"public_key": "zz", "url": "http://x"}]}, "hex"),
        ({"authorities": [{"public_key": KEY_A, "url": "ftp://x"}]}, "http"),
        (
            {
                "authorities": [
                    {"public_key": KEY_A, "url": "http://x"},
                    {"public_key": KEY_A, "url": "http://y"},
                ]
            },
            "twice",
        ),
        ({"parameters": {"layers": 0}}, "layers"),
        ({"parameters": {"lambda_p": -1}}, "lambda_p"),
        ({"geometry": {"hops": 99}}, "geometry"),
        ({"epoch": {"length_seconds": 0.5}}, "epoch length"),
        ({"epoch": {"origin": "yesterday"}}, "number"),
    ],
)
def test_invalid_configurations_say_what_is_wrong(
    overrides: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_authority_config(_document(**overrides), base=tmp_path)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[authority\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_authority_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_authority_config(tmp_path / "missing.toml")


def test_key_files(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    key = SigningKey.generate()
    write_key_file(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path).public_key == key.public_key
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_key_file(path, SigningKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_key_file(path)
    os.chmod(path, 0o600)
    path.write_text("not hex")
    with pytest.raises(ConfigError, match="hex seed"):
        read_key_file(path)
    path.write_text("00" * 16)
    with pytest.raises(ConfigError, match="32-byte"):
        read_key_file(path)


def test_keygen_command(tmp_path: Path) -> None:
    path = tmp_path / "authority.key"
    result = CliRunner().invoke(main, ["authority", "keygen", "--key-file", str(path)])
    assert result.exit_code == 0, result.output
    key = read_key_file(path)
    assert f'public_key = "{key.public_key.hex()}"' in result.output
    tomllib.loads(
        result.output[result.output.rindex("[[authorities]]") :].replace("<host>:<port>", "h:1")
    )
    again = CliRunner().invoke(main, ["authority", "keygen", "--key-file", str(path)])
    assert again.exit_code != 0 and "refusing to overwrite" in again.output
    assert read_key_file(path).public_key == key.public_key


def test_run_with_a_bad_configuration_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "authority.toml"
    path.write_text("[authority]\nlisten = 'nowhere'\n")
    result = CliRunner().invoke(main, ["authority", "run", "--config", str(path)])
    assert result.exit_code == 1
    assert "Error" in result.output and "Traceback" not in result.output


def test_run_help_shows_a_sample_configuration() -> None:
    result = CliRunner().invoke(main, ["authority", "run", "--help"])
    assert result.exit_code == 0
    assert "[[authorities]]" in result.output and "length_seconds" in result.output


def test_run_on_a_port_in_use_fails_cleanly(tmp_path: Path) -> None:
    key = SigningKey.generate()
    write_key_file(tmp_path / "authority.key", key)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "authority.toml").write_text(
            f"""
[authority]
key_file = "authority.key"
data_dir = "data"
listen = "127.0.0.1:{port}"

[[authorities]]
public_key = "{key.public_key.hex()}"
url = "http://127.0.0.1:{port}"
"""
        )
        result = CliRunner().invoke(
            main, ["authority", "run", "--config", str(tmp_path / "authority.toml")]
        )
    assert result.exit_code == 1
    assert "cannot serve" in result.output and "Traceback" not in result.output
