"""`trimix authority ...`: directory authority keys and daemon."""

from __future__ import annotations

from pathlib import Path

import click

from directory.authority_config import SAMPLE_CONFIG, load_authority_config
from directory.errors import ConfigError, DirectoryError
from directory.keyfile import read_key_file, write_key_file
from directory.signatures import SigningKey
from trimix.daemon_runner import configure_logging, run_until_signal

DATABASE_NAME = "authority.sqlite3"


@click.group()
def authority() -> None:
    """Directory authority: generate its key, run the daemon."""


@authority.command()
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("authority.key"),
    show_default=True,
    help="Where to write the Ed25519 key (created with mode 0600).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(key_file: Path, force: bool) -> None:
    """Generate an authority's Ed25519 identity key and print its public key."""
    key = SigningKey.generate()
    try:
        write_key_file(key_file, key, overwrite=force)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {key_file}")
    click.echo("add this authority to every [[authorities]] list:")
    click.echo("")
    click.echo("[[authorities]]")
    click.echo(f'public_key = "{key.public_key.hex()}"')
    click.echo('url = "http://<host>:<port>"')


def _epilog() -> str:
    sample = SAMPLE_CONFIG.replace("\n\n", "\n\n\b\n")
    return "\b\nA sample authority.toml:\n\n\b\n" + sample


@authority.command(epilog=_epilog())
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The authority's TOML configuration.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(config_path: Path, log_level: str) -> None:
    """Run a directory authority until SIGTERM or SIGINT."""
    # The daemon's imports (Trio, hypercorn, httpx) are paid only by this command.
    from directory.authority import AuthorityDaemon
    from directory.authority_core import AuthorityCore
    from directory.storage import AuthorityStore

    configure_logging(log_level)
    try:
        config = load_authority_config(config_path)
        key = read_key_file(config.key_file)
        store = AuthorityStore(config.data_dir / DATABASE_NAME)
    except (DirectoryError, OSError) as error:
        raise click.ClickException(str(error)) from None
    try:
        core = AuthorityCore(key, config.policy(), store)
    except DirectoryError as error:
        store.close()
        raise click.ClickException(str(error)) from None
    daemon = AuthorityDaemon(
        core,
        config.peers(key.public_key),
        listen_host=config.listen_host,
        listen_port=config.listen_port,
        request_seconds=config.request_seconds,
        connection_limits=config.connection_limits,
    )
    try:
        run_until_signal(daemon)
    finally:
        store.close()

