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
from daemon_process import authority_toml

from directory.authority_config import (
    SAMPLE_CONFIG,
    load_authority_config,
    parse_authority_config,
)
from directory.descriptor import Role
from directory.errors import ConfigError, StorageError
from directory.http_server import ConnectionLimits
from directory.keyfile import read_key_file, write_key_file
from directory.parameters import ParameterRanges
from directory.signatures import SigningKey
from directory.storage import AuthorityStore
from trimix.cli import main

KEY_A = "11" * 32
KEY_B = "22" * 32
KEY_NODE = "33" * 32


AUTHORITY = {"key_file": "a.key", "data_dir": "data", "listen": "127.0.0.1:8440"}


def _document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "authority": AUTHORITY,
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
    config = parse_authority_config(
        _document(
            nodes=[{"identity_key": KEY_B, "role": "gateway"}],
            registration={"allow_loopback_addresses": True, "uploads_per_source_per_epoch": 9},
            limits={"max_connections": 40, "max_connections_per_source": 4, "request_seconds": 2},
        ),
        base=tmp_path,
    )
    assert config.key_file == tmp_path / "a.key"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8440)
    assert config.clock.origin_ms == 1_700_000_000_000
    assert config.clock.length_ms == 5000
    assert config.parameters.mean_delay_ms == 80
    assert config.parameters.lambda_p_mhz == 1500
    assert config.parameters.lambda_l_mhz == 500  # the default
    assert config.parameters.layers == 4
    assert config.allowed_nodes == {bytes.fromhex(KEY_B): Role.GATEWAY}
    assert config.allow_loopback_addresses and not config.open_registration
    assert config.uploads_per_source_per_epoch == 9
    assert config.connection_limits == ConnectionLimits(40, 4)
    assert config.request_seconds == 2
    policy = config.policy()
    assert policy.signatures_needed == 2
    assert policy.acceptable_ranges == ParameterRanges.around(config.parameters)
    assert [p.public_key for p in config.peers(bytes.fromhex(KEY_A))] == [bytes.fromhex(KEY_B)]


def test_the_sample_configuration_parses_once_keys_are_filled_in(tmp_path: Path) -> None:
    text = (
        SAMPLE_CONFIG.replace('"<64 hex digits>"', f'"{KEY_A}"', 1)
        .replace('"<64 hex digits>"', f'"{KEY_B}"', 1)
        .replace('"<64 hex digits>"', f'"{KEY_NODE}"', 1)
    )
    path = tmp_path / "authority.toml"
    path.write_text(text)
    config = load_authority_config(path)
    assert config.clock.length_ms == 20 * 60 * 1000
    assert len(config.authorities) == 2
    assert config.allowed_nodes == {bytes.fromhex(KEY_NODE): Role.MIX}
    assert not config.open_registration and not config.allow_loopback_addresses
    assert config.acceptable is not None and config.acceptable.mean_delay_ms == (20, 200)
    assert config.acceptable.lambda_p_mhz == (500, 8000)
    assert config.acceptable.lambda_l_mhz == (125, 2000)  # the default, around 0.5/s


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
        ({"nodes": {"allowed": [KEY_B]}}, r"\[\[nodes\]\] entries"),
        ({"nodes": [{"identity_key": KEY_B, "role": "relay"}]}, "mix"),
        (
            {"nodes": [{"identity_key": KEY_B, "role": "mix"}] * 2},
            "twice",
        ),
        ({"registration": {"open": "yes"}}, "true or false"),
        ({"limits": {"retain_published_epochs": 0}}, "retain_published_epochs"),
        ({"limits": {"max_connections": 0}}, "max_connections"),
        ({"authority": {**AUTHORITY, "threshold": 1}}, "threshold must be in 2..2"),
        ({"authority": {**AUTHORITY, "threshold": 3}}, "threshold must be in 2..2"),
        ({"parameters": {"lambda_p": 0}}, "own proposal"),
        ({"parameters": {"mean_delay_ms": 50, "acceptable": {"mean_delay_ms": [60, 90]}}}, "own"),
        ({"parameters": {"acceptable": {"mean_delay_ms": [90, 60]}}}, "low <= high"),
        ({"parameters": {"acceptable": {"speed": [1, 2]}}}, "unknown"),
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
        (tmp_path / "authority.toml").write_text(authority_toml(key.public_key, port))
        result = CliRunner().invoke(
            main, ["authority", "run", "--config", str(tmp_path / "authority.toml")]
        )
    assert result.exit_code == 1
    assert "cannot serve" in result.output and "Traceback" not in result.output


def test_keygen_refuses_to_write_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    link = tmp_path / "authority.key"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.key"
    dangling.symlink_to(tmp_path / "nowhere")
    for path in (link, dangling):
        for force in ([], ["--force"]):
            result = CliRunner().invoke(
                main, ["authority", "keygen", "--key-file", str(path), *force]
            )
            assert result.exit_code != 0 and "symbolic link" in result.output
    assert target.read_text() == "precious\n"
    assert not (tmp_path / "nowhere").exists()


def test_a_corrupt_database_is_a_one_line_error_at_start(tmp_path: Path) -> None:
    key = SigningKey.generate()
    write_key_file(tmp_path / "authority.key", key)
    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "authority.sqlite3"
    database.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StorageError, match="damaged or not SQLite"):
        AuthorityStore(database)
    (tmp_path / "authority.toml").write_text(authority_toml(key.public_key, 0))
    result = CliRunner().invoke(
        main, ["authority", "run", "--config", str(tmp_path / "authority.toml")]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "damaged or not SQLite" in lines[0]
