"""`trimix sphinx ...`: packet-format tools."""

from __future__ import annotations

import os
import statistics
import time

import click

from sphinx_packets import (
    Deliver,
    Forward,
    Geometry,
    NodeDelay,
    PathHop,
    Recipient,
    create_packet,
    generate_keypair,
    unwrap,
)


@click.group()
def sphinx() -> None:
    """Sphinx packet-format tools."""


@sphinx.command()
@click.option("--hops", type=click.IntRange(1, 5), default=5, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 100_000), default=300, show_default=True)
def selftest(hops: int, rounds: int) -> None:
    """Build packets over fresh keys, unwrap them hop by hop, check what arrives, and print
    sizes and median timings over ROUNDS packets."""
    geometry = Geometry.default()
    keys = [generate_keypair() for _ in range(hops)]
    ids = [os.urandom(32) for _ in range(hops)]
    recipient = os.urandom(32)
    path = [PathHop(ids[i], keys[i][1], (NodeDelay(50 * (i + 1)),)) for i in range(hops - 1)]
    path.append(PathHop(ids[-1], keys[-1][1], (Recipient(recipient),)))

    click.echo(f"geometry: {geometry.hops} hops, X25519 + LIONESS, hash {geometry.hash().hex()[:16]}…")
    click.echo(
        f"sizes: header {geometry.header_size} B, payload {geometry.payload_size} B "
        f"(user {geometry.user_payload_size} B), packet {geometry.packet_size} B, "
        f"SURB {geometry.surb_size} B"
    )
    create_times: list[float] = []
    hop_times: list[list[float]] = [[] for _ in range(hops)]
    for _ in range(rounds):
        message = os.urandom(geometry.user_payload_size)
        start = time.perf_counter()
        packet = create_packet(geometry, path, message)
        create_times.append(time.perf_counter() - start)
        for hop in range(hops):
            start = time.perf_counter()
            result = unwrap(geometry, keys[hop][0], packet)
            hop_times[hop].append(time.perf_counter() - start)
            if isinstance(result, Forward) and result.next_node_id == ids[hop + 1]:
                packet = result.packet
            elif not (
                isinstance(result, Deliver)
                and hop == hops - 1
                and (result.recipient_id, result.payload) == (recipient, message)
            ):
                raise click.ClickException(f"hop {hop + 1}: the packet did not go where it should")

    def median_us(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1e6:8.1f} µs"

    click.echo(f"create_packet, {hops} hops:   {median_us(create_times)}")
    for hop in range(hops):
        role = "forward" if hop < hops - 1 else "deliver"
        click.echo(f"unwrap at hop {hop + 1} ({role}): {median_us(hop_times[hop])}")
    click.echo(f"selftest passed: {rounds} packets delivered intact (medians shown)")
