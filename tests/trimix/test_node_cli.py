"""`trimix node keygen`, `trimix node run --help` and a bad configuration."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from directory.keyfile import read_key_file
from directory.signatures import node_id
from mixnode.key_ring import read_secret_file
from trimix.cli import main


def test_keygen_writes_private_keys_and_prints_the_allowlist_entry(tmp_path: Path) -> None:
    data = tmp_path / "node-data"
    result = CliRunner().invoke(main, ["node", "keygen", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    for name in ("identity.key", "link.key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    identity = read_key_file(data / "identity.key")
    assert f'identity_key = "{identity.public_key.hex()}"' in result.output
    assert node_id(identity.public_key).hex() in result.output
    assert read_secret_file(data / "link.key").hex() not in result.output
    again = CliRunner().invoke(main, ["node", "keygen", "--data-dir", str(data)])
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def test_run_help_shows_a_sample_config() -> None:
    result = CliRunner().invoke(main, ["node", "run", "--help"])
    assert result.exit_code == 0
    assert "[node]" in result.output and "public_address" in result.output


def test_run_with_a_bad_config_is_one_clean_error(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\nname = "x"\nrole = "relay"\n')
    result = CliRunner().invoke(main, ["node", "run", "--config", str(config)])
    assert result.exit_code != 0
    assert "node.role" in result.output and "Traceback" not in result.output
