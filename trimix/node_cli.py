"""`trimix node ...`: mix node and gateway keys and daemon."""

from __future__ import annotations

from pathlib import Path

import click

from directory.errors import DirectoryError
from directory.keyfile import read_key_file, write_key_file
from directory.signatures import SigningKey, node_id
from mixnode.key_ring import KeyFileError, LinkKey, read_secret_file, write_secret_file
from mixnode.node_config import SAMPLE_CONFIG, NodeConfigError, load_node_config
from trimix.daemon_runner import configure_logging, run_until_signal


@click.group()
def node() -> None:
    """Mix node or gateway: generate its keys, run the daemon."""


@node.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("node-data"),
    show_default=True,
    help="The node's data directory (node.data_dir in its configuration).",
)
def keygen(data_dir: Path) -> None:
    """Generate a node's identity (Ed25519) and link (X25519) keys, mode 0600, and print
    what the authorities' operators need to list the node."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = SigningKey.generate()
    link = LinkKey.generate()
    try:
        write_key_file(data_dir / "identity.key", identity)
        write_secret_file(data_dir / "link.key", link.private_key)
    except (DirectoryError, KeyFileError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {data_dir / 'identity.key'} and {data_dir / 'link.key'}")
    click.echo(f"node id:      {node_id(identity.public_key).hex()}")
    click.echo(f"identity key: {identity.public_key.hex()}")
    click.echo("")
    click.echo("send the identity key and the role to every authority's operator, who adds:")
    click.echo("")
    click.echo("[[nodes]]")
    click.echo(f'identity_key = "{identity.public_key.hex()}"')
    click.echo('role = "mix"   # or "gateway"')


def _epilog() -> str:
    sample = SAMPLE_CONFIG.replace("\n\n", "\n\n\b\n")
    return "\b\nA sample node.toml:\n\n\b\n" + sample


@node.command(epilog=_epilog())
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The node's TOML configuration.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(config_path: Path, log_level: str) -> None:
    """Run a mix node or gateway until SIGTERM or SIGINT."""
    from mixnode.node_daemon import NodeDaemon

    configure_logging(log_level)
    try:
        config = load_node_config(config_path)
        identity = read_key_file(config.identity_key_file)
        link = LinkKey(read_secret_file(config.link_key_file))
        daemon = NodeDaemon(config, identity, link)
    except (NodeConfigError, DirectoryError, KeyFileError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot start: {error.strerror}") from None
    run_until_signal(daemon)
