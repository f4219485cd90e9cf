"""The `trimix` command line: help, version, and the packet-format self-test."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from trimix import __version__
from trimix.cli import main


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "sphinx" in result.output


def test_version_as_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trimix", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_sphinx_selftest_unwraps_every_hop() -> None:
    result = CliRunner().invoke(main, ["sphinx", "selftest", "--rounds", "3"])
    assert result.exit_code == 0, result.output
    assert "packet 3148 B" in result.output
    assert result.output.count("unwrap at hop") == 5
    assert "selftest passed" in result.output
