"""The client configuration: the TOML a testnet writes parses back; bad settings are named."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio
import trio.testing

from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from mixclient import Client, DirectoryUnavailableError
from mixclient.client_config import ClientConfig, ClientConfigError, client_config_toml
from mixclient.e2e import E2ESuite
from sphinx_packets import Geometry


def write(tmp_path: Path, **kwargs: object) -> Path:
    text = client_config_toml(
        state_dir=Path("state"),
        clock=EpochClock(origin_ms=1_700_000_000_000, length_ms=6000),
        geometry=Geometry.default(),
        authorities=(AuthorityEndpoint(bytes(range(32)), "http://127.0.0.1:1"),),
        **kwargs,  # type: ignore[arg-type]
    )
    path = tmp_path / "client.toml"
    path.write_text(text)
    return path


def test_a_written_configuration_reads_back(tmp_path: Path) -> None:
    path = write(tmp_path, gateway=bytes(32), suite="mlkem768-x25519")
    config = ClientConfig.from_toml(path)
    assert config.state_dir == tmp_path / "state"
    assert config.gateway == bytes(32) and config.suite is E2ESuite.MLKEM768_X25519
    assert config.clock.length_ms == 6000 and config.geometry == Geometry.default()
    assert config.authorities[0].url == "http://127.0.0.1:1"


async def test_a_client_whose_authorities_do_not_answer_gives_up_with_a_clear_error(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
    port = listener.getsockname()[1]
    path = write(tmp_path)
    path.write_text(
        path.read_text().replace("http://127.0.0.1:1", f"http://127.0.0.1:{port}")
        .replace("[client]", "[client]\nstartup_timeout = 30")
    )
    config = ClientConfig.from_toml(path)
    assert config.startup_timeout == 30.0
    try:
        with pytest.raises(
            DirectoryUnavailableError,
            match="no verified consensus within 30 s.*last answer: .*connection failed",
        ):
            async with Client(config):
                pass
    finally:
        listener.close()
    assert trio.current_time() >= 30.0  # it waited out its bound, retrying meanwhile


def test_the_poll_interval_follows_the_consensus_rates(tmp_path: Path) -> None:
    config = ClientConfig.from_toml(write(tmp_path))
    assert config.poll_interval(2.0, 0.5) == pytest.approx(4 / 8)  # the floor of 8 frames/s
    assert config.poll_interval(200.0, 2.0) == pytest.approx(4 / 404)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('suite = "x25519"', 'suite = "rsa"'), "client.suite"),
        (lambda t: t.replace("[client]", '[client]\ngateway = "zz"'), "client.gateway"),
        (lambda t: t.replace("[client]", "[client]\ncolour = 1"), "client.colour"),
        (lambda t: t.replace("[client]", "[client]\nfetch_per_second = 0"), "fetch_per_second"),
        (lambda t: t.replace("[client]", "[client]\nstartup_timeout = -1"), "startup_timeout"),
        (lambda t: t.replace("[[authorities]]", "[[nothing]]"), "authorities"),
        (lambda t: t.replace("[client]", "[elsewhere]"), "[client]"),
        (lambda t: t + "\n[[[", "not valid TOML"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, edit: object, message: str) -> None:
    path = write(tmp_path)
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    with pytest.raises(ClientConfigError, match=message.replace("[", r"\[")):
        ClientConfig.from_toml(path)
