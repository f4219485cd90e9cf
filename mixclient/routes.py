"""Routes through the network, chosen from the consensus (sans-I/O, rng injected).

Every path a client builds has the shape DESIGN.md gives a forward packet (a SURB-ACK's
path lacks the start gateway, see below):

    start gateway -> one mix of layer 1 -> ... -> one mix of layer L -> end gateway

with `Recipient(mailbox id)` on the end gateway's hop. Each mix is drawn uniformly from its
layer, independently per route. Every hop, gateways included, gets a `NodeDelay`
drawn from Exp(mean = consensus `mean_delay_ms`) and capped at the consensus
`max_delay_ms` (`mixnode.loop_cover.draw_delay_ms`, the draw the nodes use for their own
loops). Sphinx keys are the hops' keys for `consensus.epoch`. With the default 3 layers a
path has 5 hops, `Geometry.default().hops`.

The uses differ only in which gateways and which mailbox:

- forward packet: own (entry) gateway -> ... -> recipient's gateway, recipient's mailbox
  (`forward_route`);
- loop: own gateway -> ... -> own gateway, own mailbox (`loop_route`);
- SURB-ACK: layer 1 -> ... -> own gateway, own mailbox (`surb_route` without a first hop):
  the exit gateway that answers on it sends the reply straight to the layer-1 mix, as
  `mixnode.surb_ack` does;
- reply SURB for an anonymous message: the recipient's gateway (through which the replier
  sends) -> ... -> own gateway, own mailbox (`surb_route(..., first_hop_id=...)`).

`sphinx_packets.new_surb` adds the `SurbReply` command to a SURB path's last hop itself.

`Route.delay_ms` is the sum of the drawn delays: the time a packet spends held by nodes, from
which `reliability` derives its retransmission timeout.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from directory.consensus import Consensus
from directory.descriptor import Role
from mixnode.loop_cover import draw_delay_ms
from sphinx_packets import NodeDelay, PathHop, Recipient

MAILBOX_ID_SIZE = 32


class RouteError(Exception):
    """No route can be built from this consensus (an unknown gateway, an empty layer, a
    node without a Sphinx key for the epoch). The message names no node or mailbox."""


@dataclass(frozen=True, slots=True)
class Route:
    """A path for `sphinx_packets.create_packet` or `new_surb`, and its delays."""

    hops: tuple[PathHop, ...]
    delays_ms: tuple[int, ...]
    """The delay written into each hop, in path order."""

    @property
    def delay_ms(self) -> int:
        """The sum of the delays drawn: how long the nodes hold the packet in total."""
        return sum(self.delays_ms)

    @property
    def first_hop(self) -> bytes:
        """The node id the packet (or the reply on the SURB) is first sent to."""
        return self.hops[0].node_id


def choose_route(
    consensus: Consensus,
    entry_gateway_id: bytes | None,
    exit_gateway_id: bytes,
    rng: random.Random,
    *,
    mailbox_id: bytes,
) -> Route:
    """A route from `entry_gateway_id` (None: from the first layer) through one uniformly
    chosen mix per layer to `exit_gateway_id`, delivering to `mailbox_id` there; every hop's
    delay drawn anew. Raises `RouteError` when the consensus cannot carry it."""
    if not isinstance(mailbox_id, bytes) or len(mailbox_id) != MAILBOX_ID_SIZE:
        raise RouteError(f"a mailbox id must be {MAILBOX_ID_SIZE} bytes")
    if entry_gateway_id is not None:
        _require_gateway(consensus, entry_gateway_id, "the entry gateway")
    _require_gateway(consensus, exit_gateway_id, "the exit gateway")
    if not consensus.layers or any(not layer for layer in consensus.layers):
        raise RouteError("the consensus has an empty mix layer")
    mixes = [rng.choice(layer) for layer in consensus.layers]
    start = [] if entry_gateway_id is None else [entry_gateway_id]
    node_ids = [*start, *mixes, exit_gateway_id]
    parameters = consensus.parameters
    delays = tuple(
        draw_delay_ms(rng, parameters.mean_delay_ms, parameters.max_delay_ms) for _ in node_ids
    )
    last = len(node_ids) - 1
    hops = []
    for index, (node_id, delay) in enumerate(zip(node_ids, delays, strict=True)):
        commands = (
            (NodeDelay(delay),) if index < last else (Recipient(mailbox_id), NodeDelay(delay))
        )
        hops.append(PathHop(node_id, _sphinx_key(consensus, node_id), commands))
    return Route(tuple(hops), delays)


def forward_route(
    consensus: Consensus,
    own_gateway_id: bytes,
    recipient_gateway_id: bytes,
    recipient_mailbox_id: bytes,
    rng: random.Random,
) -> Route:
    """The path of a packet to another client's mailbox."""
    return choose_route(
        consensus, own_gateway_id, recipient_gateway_id, rng, mailbox_id=recipient_mailbox_id
    )


def loop_route(
    consensus: Consensus, own_gateway_id: bytes, own_mailbox_id: bytes, rng: random.Random
) -> Route:
    """The path of a loop cover packet: through every layer and back to the own mailbox."""
    return choose_route(consensus, own_gateway_id, own_gateway_id, rng, mailbox_id=own_mailbox_id)


def surb_route(
    consensus: Consensus,
    own_gateway_id: bytes,
    own_mailbox_id: bytes,
    rng: random.Random,
    *,
    first_hop_id: bytes | None = None,
) -> Route:
    """The path of a SURB (for `sphinx_packets.new_surb`) back to the own mailbox: from the
    first layer (a SURB-ACK), or from gateway `first_hop_id` (a reply SURB, used by a
    replier whose gateway that is)."""
    return choose_route(consensus, first_hop_id, own_gateway_id, rng, mailbox_id=own_mailbox_id)


def _require_gateway(consensus: Consensus, node_id: bytes, what: str) -> None:
    try:
        descriptor = consensus.descriptor(node_id)
    except (KeyError, TypeError):
        raise RouteError(f"{what} is not in the consensus of epoch {consensus.epoch}") from None
    if descriptor.role is not Role.GATEWAY:
        raise RouteError(f"{what} is not a gateway in the consensus of epoch {consensus.epoch}")


def _sphinx_key(consensus: Consensus, node_id: bytes) -> bytes:
    try:
        return consensus.descriptor(node_id).sphinx_key(consensus.epoch)
    except KeyError:
        raise RouteError(f"a hop has no Sphinx key for epoch {consensus.epoch}") from None
