"""The `trimix` command line: one group, one sub-group per part of the system."""

from __future__ import annotations

import click

from trimix import __version__
from trimix.authority_cli import authority
from trimix.client_cli import client
from trimix.message_cli import receive, send
from trimix.node_cli import node
from trimix.simulate_cli import simulate
from trimix.sphinx_cli import sphinx
from trimix.testnet_cli import testnet


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trimix")
def main() -> None:
    """trimix: a metadata-minimizing mixnet transport layer."""


main.add_command(sphinx)
main.add_command(simulate)
main.add_command(authority)
main.add_command(node)
main.add_command(testnet)
main.add_command(client)
main.add_command(send)
main.add_command(receive)
