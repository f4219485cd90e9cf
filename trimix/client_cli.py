"""`trimix client run`: the client as a local daemon with a WebSocket API for apps."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import click
import trio

from mixclient import Client, ClientConfig, ClientConfigError, ClientError
from mixclient.ws_server import ClientWebSocketServer
from mixnode.node_config import NodeConfigError, host_port


@click.group()
def client() -> None:
    """The client daemon for apps in any language (docs/CLIENT_API.md)."""


@client.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True),
              required=True, help="The client's TOML configuration.")
@click.option("--listen", default="127.0.0.1:8765", show_default=True,
              help="Where the WebSocket API listens (keep it local: whoever connects can "
                   "send as this client).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def run(config_path: Path, listen: str, verbose: bool) -> None:
    """Run the client and its WebSocket API until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ClientConfig.from_toml(config_path)
        host, port = host_port(listen, "--listen")
    except (ClientConfigError, NodeConfigError) as error:
        raise click.ClickException(str(error)) from None
    try:
        trio.run(_run, config, host, port)
    except ClientError as error:
        raise click.ClickException(str(error)) from None


async def _run(config: ClientConfig, host: str, port: int) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with Client(config) as mix_client, trio.open_nursery() as nursery:
            server = ClientWebSocketServer(mix_client)
            bound = await nursery.start(server.serve, host, port)
            click.echo(f"address   {mix_client.address}")
            click.echo(f"websocket ws://{host}:{bound}/", nl=True)
            async for _ in signals:
                click.echo("stopping")
                nursery.cancel_scope.cancel()
                break
