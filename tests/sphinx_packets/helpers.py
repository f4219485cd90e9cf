"""Building blocks for the packet-format tests: deterministic randomness, nodes and paths."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sphinx_packets import Geometry, NodeDelay, PathHop, Recipient, SurbReply, generate_keypair


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """A deterministic stand-in for `os.urandom`."""
    source = random.Random(seed)
    return source.randbytes


@dataclass(frozen=True)
class Node:
    node_id: bytes
    private_key: bytes
    public_key: bytes


def make_nodes(count: int, rng: Callable[[int], bytes]) -> list[Node]:
    nodes = []
    for _ in range(count):
        private_key, public_key = generate_keypair(rng)
        nodes.append(Node(rng(32), private_key, public_key))
    return nodes


def forward_path(nodes: list[Node], recipient: bytes, delays: list[int] | None = None) -> list[PathHop]:
    delays = delays or [0] * len(nodes)
    hops = [
        PathHop(n.node_id, n.public_key, (NodeDelay(delays[i]),)) for i, n in enumerate(nodes[:-1])
    ]
    hops.append(PathHop(nodes[-1].node_id, nodes[-1].public_key, (Recipient(recipient),)))
    return hops


def surb_path(nodes: list[Node], recipient: bytes, surb_id: bytes) -> list[PathHop]:
    hops = forward_path(nodes, recipient)
    last = nodes[-1]
    hops[-1] = PathHop(last.node_id, last.public_key, (Recipient(recipient), SurbReply(surb_id)))
    return hops


SMALL_GEOMETRY = Geometry(hops=5, user_payload_size=256)
