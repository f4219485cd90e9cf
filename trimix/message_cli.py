"""`trimix send ADDRESS` and `trimix receive`: messages from the shell, against a running
network (a client configuration written by `trimix testnet --clients N`, for example)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import click
import trio

from mixclient import (
    AddressError,
    Client,
    ClientConfig,
    ClientConfigError,
    ClientError,
    ReceivedMessage,
)

CONFIG = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, exists=True), required=True,
    help="The client's TOML configuration (its state directory holds its address).",
)


@click.command()
@click.argument("address")
@CONFIG
@click.option("--anonymous", is_flag=True, help="Send without any address of this client.")
@click.option("--reply-surbs", type=click.IntRange(0, 100), default=2, show_default=True,
              help="With --anonymous: SURBs the recipient may answer through.")
@click.option("--wait-reply", type=float, default=0.0, metavar="SECONDS",
              help="Then wait this long for one message (the reply) and print it.")
def send(
    address: str, config_path: Path, anonymous: bool, reply_surbs: int, wait_reply: float
) -> None:
    """Send what stdin holds (1 byte to 1 MiB) to ADDRESS; return when it is acknowledged."""
    data = sys.stdin.buffer.read()
    config = _config(config_path)
    try:
        trio.run(_send, config, address, data, anonymous, reply_surbs, wait_reply)
    except (AddressError, ClientError, ValueError) as error:
        raise click.ClickException(str(error)) from None


async def _send(
    config: ClientConfig, address: str, data: bytes, anonymous: bool, surbs: int, wait: float
) -> None:
    async with Client(config) as client:
        if anonymous:
            await client.send_anonymous(address, data, reply_surbs=surbs)
        else:
            await client.send(address, data)
        click.echo(f"sent {len(data)} bytes: acknowledged by the recipient's gateway", err=True)
        if wait > 0:
            with trio.move_on_after(wait):
                async for message in client.messages():
                    _print(message)
                    return
            raise click.ClickException(f"no reply within {wait:g} seconds")


@click.command()
@CONFIG
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many messages (default: run until Ctrl-C).")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Stop after this long.")
def receive(config_path: Path, count: int | None, timeout: float | None) -> None:
    """Print this client's address, then each message as it arrives."""
    config = _config(config_path)
    try:
        trio.run(_receive, config, count, timeout)
    except ClientError as error:
        raise click.ClickException(str(error)) from None


async def _receive(config: ClientConfig, count: int | None, timeout: float | None) -> None:
    async with Client(config) as client:
        click.echo(f"address {client.address}")
        received = 0
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            async for message in client.messages():
                _print(message)
                received += 1
                if count is not None and received >= count:
                    return


def _print(message: ReceivedMessage) -> None:
    origin = message.sender or f"anonymous (conversation {message.conversation})"
    try:
        text = message.data.decode("utf-8")
        shown = f"text: {text}"
    except UnicodeDecodeError:
        shown = "base64: " + base64.b64encode(message.data).decode("ascii")
    click.echo(f"message from {origin}, {len(message.data)} bytes, {shown}")


def _config(path: Path) -> ClientConfig:
    try:
        return ClientConfig.from_toml(path)
    except ClientConfigError as error:
        raise click.ClickException(str(error)) from None
