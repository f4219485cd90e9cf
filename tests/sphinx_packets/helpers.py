"""Building blocks for the packet-format tests: deterministic randomness, nodes and paths."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sphinx_packets import (
    Forward,
    Geometry,
    NodeDelay,
    PathHop,
    Recipient,
    RoutingCommand,
    SphinxKey,
    UnwrapResult,
    unwrap,
)
from sphinx_packets.geometry import PER_HOP_ROUTING_INFO_SIZE
from sphinx_packets.primitives import (
    derive_packet_keys,
    header_mac,
    header_stream,
    x25519,
)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """A deterministic stand-in for `os.urandom`."""
    source = random.Random(seed)
    return source.randbytes


@dataclass(frozen=True)
class Node:
    node_id: bytes
    key: SphinxKey

    @property
    def private_key(self) -> bytes:
        return self.key.private_key

    @property
    def public_key(self) -> bytes:
        return self.key.public_key


def make_nodes(count: int, rng: Callable[[int], bytes], epoch: int = 1) -> list[Node]:
    nodes = []
    for _ in range(count):
        key = SphinxKey.generate(epoch, rng=rng)
        nodes.append(Node(rng(32), key))
    return nodes


def forward_path(
    nodes: list[Node], recipient: bytes, delays: list[int] | None = None
) -> list[PathHop]:
    """A path through `nodes` to mailbox `recipient`; `delays[i]` is hop i's delay (the last
    hop's too, when given)."""
    delays = delays or [0] * len(nodes)
    hops = [
        PathHop(n.node_id, n.public_key, (NodeDelay(delays[i]),)) for i, n in enumerate(nodes[:-1])
    ]
    last = nodes[-1]
    last_commands: tuple[RoutingCommand, ...] = (Recipient(recipient),)
    if len(delays) == len(nodes) and delays[-1]:
        last_commands += (NodeDelay(delays[-1]),)
    hops.append(PathHop(last.node_id, last.public_key, last_commands))
    return hops


def walk(geometry: Geometry, nodes: list[Node], packet: bytes) -> UnwrapResult:
    """Unwrap at every hop in turn (each with its bare private key); the last hop's result."""
    result: UnwrapResult | None = None
    for node in nodes:
        result = unwrap(geometry, node.private_key, packet)
        if isinstance(result, Forward):
            packet = result.packet
    assert result is not None
    return result


SMALL_GEOMETRY = Geometry(hops=5, user_payload_size=256)


def reseal(geometry: Geometry, private_key: bytes, packet: bytes, slot: bytes) -> bytes:
    """`packet` with this hop's 82-byte command slot replaced by `slot` and the header MAC
    recomputed, as someone holding the node's key could: a header whose MAC verifies at the
    node but whose commands are whatever `slot` says."""
    assert len(slot) == PER_HOP_ROUTING_INFO_SIZE
    alpha = packet[2:34]
    keys = derive_packet_keys(x25519(private_key, alpha))
    mac_start = geometry.header_size - 32
    beta = packet[34:mac_start]
    stream = header_stream(keys, bytes(len(beta)))
    plain = bytes(a ^ b for a, b in zip(beta, stream, strict=True))
    new_plain = slot + plain[len(slot) :]
    new_beta = bytes(a ^ b for a, b in zip(new_plain, stream, strict=True))
    mac = header_mac(keys.header_mac, packet[:2] + alpha + new_beta)
    return packet[:34] + new_beta + mac + packet[geometry.header_size :]
