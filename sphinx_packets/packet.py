"""Whole packets: a Sphinx header and a LIONESS-encrypted payload of fixed size.

    packet  = header ‖ payload
    payload = LIONESS_{k_0}( … LIONESS_{k_n-1}( 0^32 ‖ user payload ) … )

Each hop decrypts the payload with the LIONESS key derived from its payload key; the last
hop of a forward packet checks the 32 zero bytes at the front, which any change to the
payload on the way destroys.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from sphinx_packets import lioness
from sphinx_packets.commands import NextNodeHop, NodeDelay, Recipient, RoutingCommand, SurbReply
from sphinx_packets.errors import (
    InvalidCommandError,
    InvalidPacketError,
    PathError,
    PayloadTagError,
)
from sphinx_packets.geometry import PAYLOAD_TAG_SIZE, Geometry, exact_bytes
from sphinx_packets.header import PathHop, create_header, unwrap_header
from sphinx_packets.primitives import Rng, macs_equal

ZERO_TAG = bytes(PAYLOAD_TAG_SIZE)


@dataclass(frozen=True, slots=True)
class Forward:
    """Hold the packet `delay_ms`, then send `packet` to `next_node_id`."""

    next_node_id: bytes
    delay_ms: int
    packet: bytes
    replay_tag: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """A forward packet has arrived: store `payload` (verified) in mailbox `recipient`."""

    recipient: bytes
    payload: bytes
    replay_tag: bytes


@dataclass(frozen=True, slots=True)
class DeliverSurbReply:
    """A reply on SURB `surb_id` has arrived for mailbox `recipient`; `payload` is still
    encrypted for the SURB's creator (`decrypt_surb_payload` opens it)."""

    recipient: bytes
    surb_id: bytes
    payload: bytes
    replay_tag: bytes


UnwrapResult = Forward | Deliver | DeliverSurbReply


def create_packet(
    geometry: Geometry,
    path: Sequence[PathHop],
    payload: bytes,
    rng: Rng = os.urandom,
) -> bytes:
    """A forward packet carrying `payload` (exactly `geometry.user_payload_size` bytes) along
    `path`; the last hop's commands must name a `Recipient`."""
    if not isinstance(payload, bytes) or len(payload) != geometry.user_payload_size:
        raise InvalidPacketError(
            f"the user payload must be exactly {geometry.user_payload_size} bytes"
        )
    if not path or not any(isinstance(c, Recipient) for c in path[-1].commands):
        raise PathError("the last hop of a forward path must carry a Recipient command")
    header, keys = create_header(geometry, path, rng)
    body = ZERO_TAG + payload
    for hop_keys in reversed(keys):
        body = lioness.encrypt(lioness.lioness_key(hop_keys.payload_encryption), body)
    return header + body


def unwrap(geometry: Geometry, private_key: bytes, packet: bytes) -> UnwrapResult:
    """Process a whole packet at one hop. Raises a `SphinxError` subclass on any bad input;
    the caller checks `replay_tag` against its replay filter."""
    packet = exact_bytes(packet, geometry.packet_size, "a packet")
    split = geometry.header_size
    header = unwrap_header(geometry, private_key, packet[:split])
    body = lioness.decrypt(lioness.lioness_key(header.payload_key), packet[split:])
    next_hop, delay, recipient, surb_reply = _classify(header.commands)
    if next_hop is not None:
        assert header.next_header is not None
        return Forward(next_hop.node_id, delay, header.next_header + body, header.replay_tag)
    assert recipient is not None
    if surb_reply is not None:
        return DeliverSurbReply(
            recipient.recipient_id, surb_reply.surb_id, body, header.replay_tag
        )
    if not macs_equal(body[:PAYLOAD_TAG_SIZE], ZERO_TAG):
        raise PayloadTagError("payload integrity tag is wrong (the payload was modified)")
    return Deliver(recipient.recipient_id, body[PAYLOAD_TAG_SIZE:], header.replay_tag)


def _classify(
    commands: tuple[RoutingCommand, ...],
) -> tuple[NextNodeHop | None, int, Recipient | None, SurbReply | None]:
    """Check that a hop's commands make sense together and pick them out."""
    next_hop: NextNodeHop | None = None
    recipient: Recipient | None = None
    surb_reply: SurbReply | None = None
    delay: NodeDelay | None = None
    for command in commands:
        if isinstance(command, NextNodeHop):
            if next_hop is not None:
                raise InvalidCommandError("more than one next-hop command")
            next_hop = command
        elif isinstance(command, Recipient):
            if recipient is not None:
                raise InvalidCommandError("more than one recipient command")
            recipient = command
        elif isinstance(command, SurbReply):
            if surb_reply is not None:
                raise InvalidCommandError("more than one SURB-reply command")
            surb_reply = command
        else:
            if delay is not None:
                raise InvalidCommandError("more than one delay command")
            delay = command
    if next_hop is not None:
        if recipient is not None or surb_reply is not None:
            raise InvalidCommandError("a hop cannot both forward and deliver")
    elif recipient is None:
        raise InvalidCommandError("neither a next hop nor a recipient")
    return next_hop, delay.delay_ms if delay is not None else 0, recipient, surb_reply
