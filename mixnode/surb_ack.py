"""SURB-ACKs at the exit gateway: how a sender learns that its packet was stored.

The user payload of every forward packet a client sends is

    SURB-ACK (geometry.surb_size bytes; all zero = none) ‖ frame (the rest)

When the exit gateway has stored the frame in the recipient's mailbox (and only then), it
answers on the SURB-ACK: a SURB reply with an all-zero payload, sent to the SURB's first hop.
The reply travels the path the sender chose back to the sender's own mailbox, where its SURB
id tells the sender which packet arrived. The gateway learns nothing of the sender: the SURB
is opaque to it. A geometry whose user payload cannot hold a SURB carries no SURB-ACKs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sphinx_packets import Geometry, SphinxError, create_surb_reply


@dataclass(frozen=True, slots=True)
class AckPacket:
    """A SURB-ACK ready to go: send `packet` to node `first_hop`."""

    first_hop: bytes = field(repr=False)
    packet: bytes = field(repr=False)


def carries_surb_acks(geometry: Geometry) -> bool:
    return geometry.user_payload_size > geometry.surb_size


def split_surb_ack(geometry: Geometry, user_payload: bytes) -> tuple[bytes | None, bytes]:
    """(the SURB-ACK, or None when the field is all zero; the frame)."""
    if not carries_surb_acks(geometry):
        return None, user_payload
    size = geometry.surb_size
    surb = user_payload[:size]
    return (None if not any(surb) else bytes(surb)), user_payload[size:]


def ack_packet(geometry: Geometry, surb: bytes) -> AckPacket | None:
    """The reply on `surb`, or None if it is not even shaped like a SURB (a malformed
    SURB-ACK is the sender's loss: it will retransmit)."""
    try:
        first_hop, packet = create_surb_reply(geometry, surb, bytes(geometry.user_payload_size))
    except SphinxError:
        return None
    return AckPacket(first_hop, packet)
