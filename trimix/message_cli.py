"""`trimix send ADDRESS` and `trimix receive`: messages from the shell, against a running
network (a client configuration written by `trimix testnet --clients N`, for example).

Both open a `mixclient.Client` for the run: it needs a consensus and its gateway, and waits
for them at most `--connect-timeout` seconds. What goes wrong (a mistyped address, a
configuration error, a network that does not answer, a message not acknowledged) ends the
command with a one-line error and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import base64
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import click
import trio

from mixclient import (
    AddressError,
    Client,
    ClientAddress,
    ClientConfig,
    ClientConfigError,
    ClientError,
    ReceivedMessage,
)
from mixclient.envelope import EnvelopeKind
from mixclient.fragments import MAX_USER_MESSAGE_SIZE

Command = Callable[..., Awaitable[None]]
"""`command(client, *args)`: what a subcommand does with its open client."""

CONFIG = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True, help="The client's TOML configuration (its state directory holds its address).",
)
CONNECT_TIMEOUT = click.option(
    "--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
    show_default=True, metavar="SECONDS",
    help="Give up if no consensus and no link to the gateway within this long.",
)


@click.command()
@click.argument("address")
@CONFIG
@click.option("--anonymous", is_flag=True, help="Send without any address of this client.")
@click.option("--reply-surbs", type=click.IntRange(0, 100), default=2, show_default=True,
              help="With --anonymous: SURBs the recipient may answer through.")
@click.option("--wait-reply", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="Then wait this long for one message (the reply) and print it.")
@CONNECT_TIMEOUT
def send(
    address: str,
    config_path: Path,
    anonymous: bool,
    reply_surbs: int,
    wait_reply: float,
    connect_timeout: float,
) -> None:
    """Send what stdin holds (1 byte to 1 MiB) to ADDRESS; return when the recipient's
    gateway has acknowledged every packet of it."""
    try:
        recipient = ClientAddress.parse(address)
    except AddressError as error:
        raise click.ClickException(f"ADDRESS: {error}") from None
    data = read_message(sys.stdin.buffer)
    config = _config(config_path)
    _run(_send, config, connect_timeout, recipient, data, anonymous, reply_surbs, wait_reply)


def read_message(stream: BinaryIO) -> bytes:
    """A message from `stream`: 1 byte to 1 MiB (reading at most one byte more)."""
    data = stream.read(MAX_USER_MESSAGE_SIZE + 1)
    if not data:
        raise click.ClickException("nothing to send: stdin was empty")
    if len(data) > MAX_USER_MESSAGE_SIZE:
        raise click.ClickException(f"a message is at most {MAX_USER_MESSAGE_SIZE} bytes (1 MiB)")
    return data


async def _send(
    client: Client,
    recipient: ClientAddress,
    data: bytes,
    anonymous: bool,
    surbs: int,
    wait: float,
) -> None:
    if anonymous:
        await client.send_anonymous(recipient, data, reply_surbs=surbs)
    else:
        await client.send(recipient, data)
    click.echo(f"sent {len(data)} bytes: acknowledged by the recipient's gateway", err=True)
    if wait > 0:
        with trio.move_on_after(wait):
            async for message in client.messages():
                click.echo(describe(message))
                return
        raise click.ClickException(f"no reply within {wait:g} seconds")


@click.command()
@CONFIG
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many messages (default: run until Ctrl-C).")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop after this long (counted once the client is connected).")
@CONNECT_TIMEOUT
def receive(
    config_path: Path, count: int | None, timeout: float | None, connect_timeout: float
) -> None:
    """Print this client's address, then each message as it arrives: its sender's address
    or "anonymous", its size, and its data (as text when it is UTF-8, else base64)."""
    config = _config(config_path)
    _run(_receive, config, connect_timeout, count, timeout)


async def _receive(client: Client, count: int | None, timeout: float | None) -> None:
    click.echo(f"address {client.address}")
    received = 0
    with trio.move_on_after(timeout if timeout is not None else math.inf):
        async for message in client.messages():
            click.echo(describe(message))
            received += 1
            if count is not None and received >= count:
                return


def describe(message: ReceivedMessage) -> str:
    """One line for a received message (sender, size, data)."""
    if message.sender is not None:
        origin = message.sender
    else:
        what = "a reply" if message.kind is EnvelopeKind.REPLY else "anonymous"
        origin = f"{what} (conversation {message.conversation})"
    try:
        shown = "text: " + message.data.decode("utf-8")
    except UnicodeDecodeError:
        shown = "base64: " + base64.b64encode(message.data).decode("ascii")
    return f"message from {origin}, {len(message.data)} bytes, {shown}"


def _run(command: Command, config: ClientConfig, connect_timeout: float, *args: object) -> None:
    """Run `command(client, *args)` with an open client; errors as one line."""
    try:
        trio.run(_with_client, command, config, connect_timeout, *args)
    except (AddressError, ClientError) as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


async def _with_client(
    command: Command, config: ClientConfig, connect_timeout: float, *args: object
) -> None:
    async with _open_client(config, connect_timeout) as client:
        await command(client, *args)


@asynccontextmanager
async def _open_client(config: ClientConfig, connect_timeout: float) -> AsyncIterator[Client]:
    """An open client, or a `ClickException` if it could not connect in time."""
    opened = False
    with trio.CancelScope(deadline=trio.current_time() + connect_timeout) as scope:
        async with Client(config) as client:
            opened = True
            scope.deadline = math.inf
            yield client
    if not opened:
        raise click.ClickException(
            f"could not reach the network within {connect_timeout:g} s (no consensus from the "
            "authorities, or no link to the gateway)"
        )


def _config(path: Path) -> ClientConfig:
    try:
        return ClientConfig.from_toml(path)
    except ClientConfigError as error:
        raise click.ClickException(str(error)) from None
