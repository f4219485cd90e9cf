"""`trimix sphinx ...`: packet-format tools."""

from __future__ import annotations

import click


@click.group()
def sphinx() -> None:
    """Sphinx packet-format tools."""
