"""Single-use reply blocks (SURBs): how a recipient answers without learning who asked.

The SURB's creator builds a header for a path back to its own mailbox and keeps the keys:

    SURB      = header ‖ first hop node id (32) ‖ replier key (48)
    SURB keys = surb id (16) ‖ replier key (48) ‖ the path's payload keys (48 each)

The replier encrypts `0^32 ‖ payload` with LIONESS under the replier key and sends the
header and that payload to the first hop. Every hop decrypts the payload as usual; the
creator undoes the hops by encrypting with their keys in reverse, decrypts with the replier
key and checks the zero tag.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from sphinx_packets import lioness
from sphinx_packets.commands import Recipient, SurbReply
from sphinx_packets.errors import InvalidPacketError, InvalidSURBError, PathError, PayloadTagError
from sphinx_packets.geometry import (
    NODE_ID_SIZE,
    PAYLOAD_KEY_SIZE,
    PAYLOAD_TAG_SIZE,
    SURB_ID_SIZE,
    Geometry,
)
from sphinx_packets.header import PathHop, create_header
from sphinx_packets.packet import ZERO_TAG
from sphinx_packets.primitives import Rng, macs_equal


@dataclass(frozen=True, slots=True)
class SURBKeys:
    """What the SURB's creator keeps to read the reply."""

    surb_id: bytes
    replier_key: bytes
    hop_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.surb_id) != SURB_ID_SIZE:
            raise InvalidSURBError(f"a SURB id must be {SURB_ID_SIZE} bytes")
        if len(self.replier_key) != PAYLOAD_KEY_SIZE or not self.hop_keys:
            raise InvalidSURBError("SURB keys need a replier key and at least one hop key")
        if any(len(key) != PAYLOAD_KEY_SIZE for key in self.hop_keys):
            raise InvalidSURBError(f"each hop key must be {PAYLOAD_KEY_SIZE} bytes")

    def to_bytes(self) -> bytes:
        return self.surb_id + self.replier_key + b"".join(self.hop_keys)

    @classmethod
    def from_bytes(cls, data: bytes) -> SURBKeys:
        keys_size = len(data) - SURB_ID_SIZE
        if keys_size < 2 * PAYLOAD_KEY_SIZE or keys_size % PAYLOAD_KEY_SIZE:
            raise InvalidSURBError("SURB keys have the wrong length")
        keys = [
            bytes(data[i : i + PAYLOAD_KEY_SIZE])
            for i in range(SURB_ID_SIZE, len(data), PAYLOAD_KEY_SIZE)
        ]
        return cls(bytes(data[:SURB_ID_SIZE]), keys[0], tuple(keys[1:]))


def new_surb(
    geometry: Geometry, path: Sequence[PathHop], rng: Rng = os.urandom
) -> tuple[bytes, SURBKeys]:
    """A SURB for `path`, whose last hop carries `Recipient` and `SurbReply` commands; returns
    the SURB (to give away) and the keys (to keep)."""
    if not path:
        raise PathError("a SURB path needs at least one hop")
    last = path[-1].commands
    surb_ids = [c.surb_id for c in last if isinstance(c, SurbReply)]
    if len(surb_ids) != 1 or not any(isinstance(c, Recipient) for c in last):
        raise PathError("the last hop of a SURB path must carry Recipient and SurbReply")
    header, keys = create_header(geometry, path, rng)
    replier_key = rng(PAYLOAD_KEY_SIZE)
    surb = header + path[0].node_id + replier_key
    return surb, SURBKeys(surb_ids[0], replier_key, tuple(k.payload_encryption for k in keys))


def create_surb_reply(geometry: Geometry, surb: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """Answer on `surb`: returns (first hop's node id, packet)."""
    if not isinstance(surb, bytes) or len(surb) != geometry.surb_size:
        raise InvalidSURBError(f"a SURB must be {geometry.surb_size} bytes")
    if not isinstance(payload, bytes) or len(payload) != geometry.user_payload_size:
        raise InvalidPacketError(
            f"the user payload must be exactly {geometry.user_payload_size} bytes"
        )
    split = geometry.header_size
    header = surb[:split]
    first_hop = surb[split : split + NODE_ID_SIZE]
    replier_key = surb[split + NODE_ID_SIZE :]
    body = lioness.encrypt(lioness.lioness_key(replier_key), ZERO_TAG + payload)
    return first_hop, header + body


def decrypt_surb_payload(geometry: Geometry, keys: SURBKeys, payload: bytes) -> bytes:
    """Open a SURB reply's payload (as `DeliverSurbReply.payload`) with the creator's keys."""
    if not isinstance(payload, bytes) or len(payload) != geometry.payload_size:
        raise InvalidPacketError(f"a SURB reply payload must be {geometry.payload_size} bytes")
    body = payload
    for hop_key in reversed(keys.hop_keys):
        body = lioness.encrypt(lioness.lioness_key(hop_key), body)
    body = lioness.decrypt(lioness.lioness_key(keys.replier_key), body)
    if not macs_equal(body[:PAYLOAD_TAG_SIZE], ZERO_TAG):
        raise PayloadTagError("reply payload integrity tag is wrong (modified, or other keys)")
    return body[PAYLOAD_TAG_SIZE:]
