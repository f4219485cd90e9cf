"""The `trimix` command line: one group, one sub-group per part of the system.

Each sub-command's module is imported only when that command runs (or when help lists the
commands): `trimix node run` does not load the simulator's SciPy and matplotlib, which took
2.5 s of CPU per daemon, 27 s for the 11 processes a testnet starts at once.
"""

from __future__ import annotations

import importlib

import click

from trimix import __version__

COMMANDS = {
    "sphinx": "trimix.sphinx_cli:sphinx",
    "simulate": "trimix.simulate_cli:simulate",
    "authority": "trimix.authority_cli:authority",
    "node": "trimix.node_cli:node",
    "testnet": "trimix.testnet_cli:testnet",
    "client": "trimix.client_cli:client",
    "send": "trimix.message_cli:send",
    "receive": "trimix.message_cli:receive",
}
"""Command name → `module:attribute` of its click command, in the order help lists them."""


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trimix")
def main() -> None:
    """trimix: a metadata-minimizing mixnet transport layer."""
