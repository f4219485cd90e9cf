"""`Geometry`: the fixed shape of every packet, from which every size is derived."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack

from sphinx_packets.errors import GeometryError
from sphinx_packets.inputs import checked_int

NIKE_X25519 = "x25519"
SPRP_LIONESS = "lioness-chacha20-blake2b256"

AD_SIZE = 2
"""Additional data at the front of the header: version bytes, always `00 00`."""
GROUP_ELEMENT_SIZE = 32
"""Size of α, an X25519 public element."""
MAC_SIZE = 32
"""Size of γ, the full HMAC-SHA256 output."""
NODE_ID_SIZE = 32
"""Size of a node id, BLAKE2b-256 of the node's identity public key."""
RECIPIENT_ID_SIZE = 32
SURB_ID_SIZE = 16
PAYLOAD_KEY_SIZE = 48
"""The per-hop payload key taken from the KDF; LIONESS keys are derived from it."""
PAYLOAD_TAG_SIZE = 32
"""Zero bytes at the front of the plaintext payload: the integrity tag checked at the end."""

NEXT_NODE_HOP_SIZE = 1 + NODE_ID_SIZE + MAC_SIZE
SURB_REPLY_SIZE = 1 + SURB_ID_SIZE
PER_HOP_ROUTING_INFO_SIZE = NEXT_NODE_HOP_SIZE + SURB_REPLY_SIZE
"""One hop's slot of β: room for a next-hop command and a SURB-reply command (82 bytes)."""

MAX_HOPS = 32
MAX_USER_PAYLOAD_SIZE = 1 << 20

_SUPPORTED_NIKES = frozenset({NIKE_X25519})
_SUPPORTED_SPRPS = frozenset({SPRP_LIONESS})


@dataclass(frozen=True, slots=True)
class Geometry:
    """The shape of every packet of one network.

    `hops` is the maximum path length (shorter paths are padded to it), `user_payload_size`
    the number of bytes the layer above gets in each packet. Every other size is derived.
    Nodes and clients agree on a geometry through `hash()`, which the consensus carries.
    """

    hops: int
    user_payload_size: int
    nike: str = NIKE_X25519
    sprp: str = SPRP_LIONESS

    def __post_init__(self) -> None:
        checked_int(self.hops, 1, MAX_HOPS, "hops", GeometryError)
        checked_int(
            self.user_payload_size, 1, MAX_USER_PAYLOAD_SIZE, "user_payload_size", GeometryError
        )
        _check_name(self.nike, _SUPPORTED_NIKES, "NIKE")
        _check_name(self.sprp, _SUPPORTED_SPRPS, "SPRP")

    @classmethod
    def default(cls) -> Geometry:
        """5 hops, X25519, LIONESS; 2,640 user bytes: 2,048 of data, a 556-byte SURB-ACK
        and 36 bytes of client framing; a packet of 3,148 bytes."""
        return cls(hops=5, user_payload_size=2640)

    @property
    def per_hop_routing_info_size(self) -> int:
        return PER_HOP_ROUTING_INFO_SIZE

    @property
    def routing_info_size(self) -> int:
        """Size of β."""
        return self.hops * PER_HOP_ROUTING_INFO_SIZE

    @property
    def header_size(self) -> int:
        return AD_SIZE + GROUP_ELEMENT_SIZE + self.routing_info_size + MAC_SIZE

    @property
    def payload_size(self) -> int:
        """The encrypted payload on the wire: zero tag and user payload."""
        return PAYLOAD_TAG_SIZE + self.user_payload_size

    @property
    def packet_size(self) -> int:
        return self.header_size + self.payload_size

    @property
    def surb_size(self) -> int:
        """A SURB: header, first hop's node id, and the key the replier encrypts with."""
        return self.header_size + NODE_ID_SIZE + PAYLOAD_KEY_SIZE

    def canonical_bytes(self) -> bytes:
        """The canonical encoding: a fixed-order msgpack array."""
        return msgpack.packb(
            ["trimix-geometry-v1", self.hops, self.user_payload_size, self.nike, self.sprp],
            use_bin_type=True,
        )

    def hash(self) -> bytes:
        """BLAKE2b-256 of `canonical_bytes()`: what the consensus carries."""
        return hashlib.blake2b(self.canonical_bytes(), digest_size=32).digest()


def _check_name(value: object, supported: frozenset[str], what: str) -> None:
    if not isinstance(value, str) or value not in supported:
        # The value is not echoed: messages never hold what a caller passed in.
        raise GeometryError(f"unsupported {what}: supported are {sorted(supported)}")


def require_geometry(value: object) -> Geometry:
    """`value` if it is a `Geometry`; else `GeometryError` (for the public functions)."""
    if not isinstance(value, Geometry):
        raise GeometryError(f"a Geometry is needed, not {type(value).__name__}")
    return value
