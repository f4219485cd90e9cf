"""`trimix client run`: the client as a local daemon with a WebSocket API for apps."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import click
import trio

from mixclient import Client, ClientConfig, ClientConfigError, ClientError
from mixclient.ws_access import (
    ApiAccessError,
    ApiToken,
    allowed_origin,
    load_or_create_token,
)
from mixclient.ws_server import ClientWebSocketServer
from mixnode.node_config import NodeConfigError, host_port
from trimix.daemon_runner import _first_leaf, configure_logging, run_until_signal


@click.group()
def client() -> None:
    """The client daemon for apps in any language (docs/CLIENT_API.md)."""


@client.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True),
              required=True, help="The client's TOML configuration.")
@click.option("--listen", default="127.0.0.1:8765", show_default=True,
              help="Where the WebSocket API listens (keep it local: whoever connects with "
                   "the token can send and read messages as this client).")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="The file with the token apps must present (created, mode 0600, if "
                   "absent).  [default: ws.token in the client's state directory]")
@click.option("--allow-origin", "allowed_origins", multiple=True, metavar="ORIGIN",
              help="A web origin (scheme://host[:port]) whose pages may use the API; "
                   "repeatable. By default no web page may.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def run(
    config_path: Path,
    listen: str,
    token_file: Path | None,
    allowed_origins: tuple[str, ...],
    verbose: bool,
) -> None:
    """Run the client and its WebSocket API until Ctrl-C or SIGTERM.

    Apps present the token in the token file, as `Authorization: Bearer TOKEN` or in the
    URL (ws://127.0.0.1:8765/?token=TOKEN); see docs/CLIENT_API.md."""
    configure_logging("INFO" if verbose else "WARNING")
    try:
        config = ClientConfig.from_toml(config_path)
        host, port = host_port(listen, "--listen")
        origins = frozenset(allowed_origin(origin) for origin in allowed_origins)
        if token_file is None:
            token_file = config.state_dir / "ws.token"
            config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        access = ApiAccess(load_or_create_token(token_file), token_file, origins)
    except OSError as error:
        raise click.ClickException(
            f"cannot create the state directory: {error.strerror}"
        ) from None
    except (ClientConfigError, NodeConfigError, ApiAccessError) as error:
        raise click.ClickException(str(error)) from None
    if not _is_loopback(host):
        click.echo(f"warning: {host} is not a loopback address: the API has no TLS, so "
                   "whoever can watch that network sees the token and the messages", err=True)
    try:
        run_until_signal(ClientDaemon(config, host, port, access))
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    except BaseExceptionGroup as group:
        client_errors, others = group.split(ClientError)
        if client_errors is None or others is not None:
            raise
        raise click.ClickException(str(_first_leaf(client_errors))) from None


@dataclass(frozen=True)
class ApiAccess:
    """The token apps must present, where it is kept, and the web origins allowed."""

    token: ApiToken
    token_file: Path
    allowed_origins: frozenset[str]


class ClientDaemon:
    """The client and its WebSocket server, for `run_until_signal`."""

    def __init__(self, config: ClientConfig, host: str, port: int, access: ApiAccess) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.access = access
        self._stop = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Listen first: a port in use fails at once, before the client connects.
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        try:
            async with Client(self.config) as mix_client, trio.open_nursery() as nursery:
                server = ClientWebSocketServer(
                    mix_client, self.access.token, allowed_origins=self.access.allowed_origins
                )
                await nursery.start(server.serve, listeners)
                bound = listeners[0].socket.getsockname()[1]
                shown = f"[{self.host}]" if ":" in self.host else self.host
                click.echo(f"address   {mix_client.address}")
                click.echo(f"websocket ws://{shown}:{bound}/")
                click.echo(f"token     {self.access.token_file}")
                task_status.started()
                await self._stop.wait()
                click.echo("stopping")
                nursery.cancel_scope.cancel()
        finally:
            for listener in listeners:
                await listener.aclose()

    def stop(self) -> None:
        self._stop.set()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
