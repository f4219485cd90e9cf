"""`trimix send` and `trimix receive` when things go wrong before any message moves: a
mistyped address, an empty or oversized stdin, a broken configuration, authorities that
accept connections and never answer. Each ends with one error line and a non-zero exit code,
never a traceback. (The commands over a real testnet: tests/trimix/test_client_apps.py.)"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from mixclient import ClientAddress, ReceivedMessage
from mixclient.client_config import client_config_toml
from mixclient.e2e import DEFAULT_SUITE, E2EKeyPair
from mixclient.envelope import EnvelopeKind
from mixclient.fragments import MAX_USER_MESSAGE_SIZE
from sphinx_packets import Geometry
from trimix.cli import main
from trimix.message_cli import describe


@pytest.fixture
def silent_authority() -> Iterator[str]:
    """A real listening socket on 127.0.0.1 that accepts connections (the kernel's backlog)
    and never answers: an authority that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture
def config(tmp_path: Path, silent_authority: str) -> Path:
    path = tmp_path / "client.toml"
    path.write_text(
        client_config_toml(
            state_dir=tmp_path / "state",
            clock=EpochClock(origin_ms=int(time.time() * 1000) - 60_000, length_ms=20_000),
            geometry=Geometry.default(),
            authorities=(AuthorityEndpoint(os.urandom(32), silent_authority),),
        )
    )
    return path


def some_address() -> str:
    keys = E2EKeyPair.generate(DEFAULT_SUITE)
    return ClientAddress(os.urandom(32), os.urandom(32), keys.suite, keys.public_key).to_string()


def run(*args: str, stdin: bytes = b"") -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.output


def test_a_mistyped_address_is_refused_before_connecting(config: Path) -> None:
    good = some_address()
    typo = good[:20] + ("a" if good[20] != "a" else "b") + good[21:]
    for wrong in (typo, good[:-1], "tmx1nope", "hello"):
        started = time.monotonic()
        code, output = run("send", wrong, "--config", str(config), stdin=b"hi")
        assert code == 1 and "Error: ADDRESS:" in output, output
        assert time.monotonic() - started < 5  # the silent authority was never asked


def test_stdin_must_hold_one_byte_to_one_mebibyte(config: Path) -> None:
    address = some_address()
    code, output = run("send", address, "--config", str(config), stdin=b"")
    assert code == 1 and "stdin was empty" in output
    code, output = run(
        "send", address, "--config", str(config), stdin=bytes(MAX_USER_MESSAGE_SIZE + 1)
    )
    assert code == 1 and "at most 1048576 bytes" in output


def test_a_broken_configuration_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "client.toml"
    broken.write_text("[client]\nstate_dir = 'x'\nsuite = 'rot13'\n")
    code, output = run("receive", "--config", str(broken))
    assert code == 1 and "client.suite" in output
    code, output = run("receive", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in output


def test_authorities_that_never_answer_end_in_a_clear_error(config: Path) -> None:
    started = time.monotonic()
    code, output = run("receive", "--config", str(config), "--connect-timeout", "1.5")
    assert code == 1 and "could not reach the network within 1.5 s" in output, output
    assert time.monotonic() - started < 20
    code, output = run(
        "send", some_address(), "--config", str(config), "--connect-timeout", "1", stdin=b"x"
    )
    assert code == 1 and "could not reach the network" in output, output


class _NoClient:
    """`ReceivedMessage.reply` is not used by `describe`: nothing stands behind it."""


@given(data=st.binary(min_size=1, max_size=300), anonymous=st.booleans())
def test_a_message_is_shown_as_text_when_it_is_utf8_else_as_base64(
    data: bytes, anonymous: bool
) -> None:
    sender = None if anonymous else "tmx1sender"
    message = ReceivedMessage(
        data=data,
        sender=sender,
        conversation="ab" * 16 if anonymous else None,
        kind=EnvelopeKind.ANONYMOUS if anonymous else EnvelopeKind.DIRECT,
        received_at=0.0,
        _client=_NoClient(),  # type: ignore[arg-type]
    )
    line = describe(message)
    head, _, shown = line.partition(" bytes, ")
    assert head.endswith(f", {len(data)}")
    assert ("anonymous (conversation " + "ab" * 16 + ")" in head) if anonymous else (
        head.startswith("message from tmx1sender,")
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert base64.b64decode(shown.removeprefix("base64: "), validate=True) == data
    else:
        assert shown == "text: " + text
