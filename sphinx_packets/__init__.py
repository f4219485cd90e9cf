"""The Sphinx packet format: pure, synchronous, no I/O.

Headers follow the Katzenpost NIKE-Sphinx construction over X25519 byte for byte; payloads
are LIONESS-encrypted. See docs/SPEC.md for the byte layout.
"""

from sphinx_packets.commands import NextNodeHop, NodeDelay, Recipient, RoutingCommand, SurbReply
from sphinx_packets.errors import (
    GeometryError,
    InvalidCommandError,
    InvalidKeyError,
    InvalidMACError,
    InvalidPacketError,
    InvalidSURBError,
    PathError,
    PayloadTagError,
    SphinxError,
)
from sphinx_packets.geometry import Geometry
from sphinx_packets.header import PathHop, UnwrappedHeader, unwrap_header
from sphinx_packets.packet import (
    Deliver,
    DeliverSurbReply,
    Forward,
    UnwrapResult,
    create_packet,
    unwrap,
)
from sphinx_packets.primitives import generate_keypair, replay_tag
from sphinx_packets.surb import SURBKeys, create_surb_reply, decrypt_surb_payload, new_surb

__all__ = [
    "Deliver",
    "DeliverSurbReply",
    "Forward",
    "Geometry",
    "GeometryError",
    "InvalidCommandError",
    "InvalidKeyError",
    "InvalidMACError",
    "InvalidPacketError",
    "InvalidSURBError",
    "NextNodeHop",
    "NodeDelay",
    "PathError",
    "PathHop",
    "PayloadTagError",
    "Recipient",
    "RoutingCommand",
    "SURBKeys",
    "SphinxError",
    "SurbReply",
    "UnwrapResult",
    "UnwrappedHeader",
    "create_packet",
    "create_surb_reply",
    "decrypt_surb_payload",
    "generate_keypair",
    "new_surb",
    "replay_tag",
    "unwrap",
    "unwrap_header",
]
