"""The Sphinx packet format: pure, synchronous, no I/O.

Headers follow the Katzenpost NIKE-Sphinx construction over X25519 byte for byte; payloads
are LIONESS-encrypted. See docs/SPEC.md section 1 for the byte layout and the API.
"""

from sphinx_packets.commands import (
    NextNodeHop,
    NodeDelay,
    Recipient,
    RoutingCommand,
    SurbReply,
)
from sphinx_packets.errors import (
    DelayTooLongError,
    GeometryError,
    InvalidArgumentError,
    InvalidCommandError,
    InvalidKeyError,
    InvalidMACError,
    InvalidPacketError,
    InvalidSURBError,
    PathError,
    PayloadTagError,
    ReplayError,
    SphinxError,
)
from sphinx_packets.geometry import Geometry
from sphinx_packets.header import UnwrappedHeader, unwrap_header
from sphinx_packets.keys import NodeKeys, SphinxKey
from sphinx_packets.packet import create_packet, unwrap
from sphinx_packets.path import PathHop
from sphinx_packets.primitives import generate_keypair, replay_tag
from sphinx_packets.results import Deliver, DeliverSurbReply, Forward, UnwrapResult
from sphinx_packets.surb import (
    SURB,
    SURBKeys,
    create_surb_reply,
    decrypt_surb_payload,
    new_surb,
)

__all__ = [
    "SURB",
    "DelayTooLongError",
    "Deliver",
    "DeliverSurbReply",
    "Forward",
    "Geometry",
    "GeometryError",
    "InvalidArgumentError",
    "InvalidCommandError",
    "InvalidKeyError",
    "InvalidMACError",
    "InvalidPacketError",
    "InvalidSURBError",
    "NextNodeHop",
    "NodeDelay",
    "NodeKeys",
    "PathError",
    "PathHop",
    "PayloadTagError",
    "Recipient",
    "ReplayError",
    "RoutingCommand",
    "SURBKeys",
    "SphinxError",
    "SphinxKey",
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
