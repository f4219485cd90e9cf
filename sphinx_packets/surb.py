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
from sphinx_packets.errors import InvalidPacketError, InvalidSURBError, PayloadTagError
from sphinx_packets.geometry import (
    AD_SIZE,
    MAX_HOPS,
    NODE_ID_SIZE,
    PAYLOAD_KEY_SIZE,
    PAYLOAD_TAG_SIZE,
    SURB_ID_SIZE,
    Geometry,
    require_geometry,
)
from sphinx_packets.header import AD, create_header
from sphinx_packets.inputs import exact_bytes
from sphinx_packets.packet import ZERO_TAG, user_payload
from sphinx_packets.path import PathHop, check_path
from sphinx_packets.primitives import Rng, macs_equal
from sphinx_packets.redaction import redacted_repr


def _surb_bytes(data: object, size: int, what: str) -> bytes:
    return exact_bytes(data, size, what, InvalidSURBError)


@dataclass(frozen=True, slots=True, repr=False)
class SURB:
    """A SURB as the replier gets it: the header of the path back, the node id of its first
    hop, and the 48-byte key the replier encrypts with (secret). On the wire
    (`to_bytes`) it is header ‖ first hop ‖ replier key, `geometry.surb_size` bytes. The
    SURB id is inside the encrypted header: only the creator (`SURBKeys.surb_id`) and the
    last hop see it. Its `repr` shows field sizes only."""

    header: bytes
    first_hop: bytes
    replier_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.header, bytes | bytearray | memoryview):
            raise InvalidSURBError(f"a SURB header must be bytes, not {type(self.header).__name__}")
        header = bytes(self.header)
        if header[:AD_SIZE] != AD:
            raise InvalidSURBError("a SURB header must start with the version 00 00")
        first_hop = _surb_bytes(self.first_hop, NODE_ID_SIZE, "a SURB's first hop")
        replier_key = _surb_bytes(self.replier_key, PAYLOAD_KEY_SIZE, "a SURB's replier key")
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "first_hop", first_hop)
        object.__setattr__(self, "replier_key", replier_key)

    __repr__ = redacted_repr

    def to_bytes(self) -> bytes:
        return self.header + self.first_hop + self.replier_key

    @classmethod
    def from_bytes(cls, geometry: Geometry, data: bytes) -> SURB:
        """Parse a SURB of `geometry.surb_size` bytes; `InvalidSURBError` otherwise."""
        require_geometry(geometry)
        data = _surb_bytes(data, geometry.surb_size, "a SURB")
        split = geometry.header_size
        return cls(data[:split], data[split : split + NODE_ID_SIZE], data[split + NODE_ID_SIZE :])


@dataclass(frozen=True, slots=True, repr=False)
class SURBKeys:
    """What the SURB's creator keeps to read the reply: the SURB id it drew, the replier key
    and every hop's payload key (all secret; `repr` shows their sizes only)."""

    surb_id: bytes
    replier_key: bytes
    hop_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        surb_id = _surb_bytes(self.surb_id, SURB_ID_SIZE, "a SURB id")
        replier_key = _surb_bytes(self.replier_key, PAYLOAD_KEY_SIZE, "a replier key")
        if not isinstance(self.hop_keys, tuple | list) or not 1 <= len(self.hop_keys) <= MAX_HOPS:
            raise InvalidSURBError(f"SURB keys need 1 to {MAX_HOPS} hop keys")
        hop_keys = tuple(_surb_bytes(k, PAYLOAD_KEY_SIZE, "a hop key") for k in self.hop_keys)
        object.__setattr__(self, "surb_id", surb_id)
        object.__setattr__(self, "replier_key", replier_key)
        object.__setattr__(self, "hop_keys", hop_keys)

    __repr__ = redacted_repr

    def to_bytes(self) -> bytes:
        """surb id (16) ‖ replier key (48) ‖ hop keys (48 each): for the creator's storage."""
        return self.surb_id + self.replier_key + b"".join(self.hop_keys)

    @classmethod
    def from_bytes(cls, data: bytes) -> SURBKeys:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidSURBError(f"SURB keys must be bytes, not {type(data).__name__}")
        data = bytes(data)
        keys_size = len(data) - SURB_ID_SIZE
        if not 2 <= keys_size // PAYLOAD_KEY_SIZE <= MAX_HOPS + 1 or keys_size % PAYLOAD_KEY_SIZE:
            raise InvalidSURBError("SURB keys have the wrong length")
        keys = [
            data[i : i + PAYLOAD_KEY_SIZE] for i in range(SURB_ID_SIZE, len(data), PAYLOAD_KEY_SIZE)
        ]
        return cls(data[:SURB_ID_SIZE], keys[0], tuple(keys[1:]))


def new_surb(
    geometry: Geometry, path: Sequence[PathHop], *, rng: Rng = os.urandom
) -> tuple[SURB, SURBKeys]:
    """A SURB for `path`, a path back to the creator's mailbox whose last hop carries a
    `Recipient` (and maybe a `NodeDelay`) but no `SurbReply`: this function draws the
    16-byte SURB id and adds that command. Returns the SURB (to give away) and the keys (to
    keep). The path is checked hop by hop first (`PathError` naming the hop)."""
    require_geometry(geometry)
    surb_id = _surb_bytes(rng(SURB_ID_SIZE), SURB_ID_SIZE, "rng output")
    hops = check_path(geometry, path, surb_id=surb_id)
    header, keys = create_header(geometry, hops, rng)
    replier_key = _surb_bytes(rng(PAYLOAD_KEY_SIZE), PAYLOAD_KEY_SIZE, "rng output")
    hop_keys = tuple(k.payload_encryption for k in keys)
    return SURB(header, hops[0].node_id, replier_key), SURBKeys(surb_id, replier_key, hop_keys)


def create_surb_reply(
    geometry: Geometry, surb: SURB | bytes, payload: bytes
) -> tuple[bytes, bytes]:
    """Answer on `surb` (a `SURB` or its bytes) with `payload` (exactly
    `geometry.user_payload_size` bytes): returns (first hop's node id, packet of
    `geometry.packet_size` bytes). The hops' commands are inside the encrypted header and
    were checked by `new_surb`; here the SURB's shape is checked (`InvalidSURBError`)."""
    require_geometry(geometry)
    if isinstance(surb, SURB):
        if len(surb.header) != geometry.header_size:
            raise InvalidSURBError(f"a SURB header must be {geometry.header_size} bytes")
    elif isinstance(surb, bytes | bytearray | memoryview):
        surb = SURB.from_bytes(geometry, surb)
    else:
        raise InvalidSURBError(f"a SURB must be a SURB or bytes, not {type(surb).__name__}")
    payload = user_payload(geometry, payload)
    body = lioness.encrypt(lioness.lioness_key(surb.replier_key), ZERO_TAG + payload)
    return surb.first_hop, surb.header + body


def decrypt_surb_payload(
    geometry: Geometry, keys: SURBKeys, surb_id: bytes, payload: bytes
) -> bytes:
    """Open a SURB reply's payload (`DeliverSurbReply.payload`, `geometry.payload_size`
    bytes) with the creator's keys; returns the replier's `geometry.user_payload_size`
    bytes. `surb_id` is the id the reply arrived with (`DeliverSurbReply.surb_id`): keys of
    another SURB raise `InvalidSURBError`; a modified payload raises `PayloadTagError`."""
    require_geometry(geometry)
    if not isinstance(keys, SURBKeys):
        raise InvalidSURBError(f"SURB keys must be SURBKeys, not {type(keys).__name__}")
    surb_id = _surb_bytes(surb_id, SURB_ID_SIZE, "a SURB id")
    if not macs_equal(keys.surb_id, surb_id):
        raise InvalidSURBError("these SURB keys belong to another SURB id")
    body = exact_bytes(payload, geometry.payload_size, "a SURB reply payload", InvalidPacketError)
    for hop_key in reversed(keys.hop_keys):
        body = lioness.encrypt(lioness.lioness_key(hop_key), body)
    body = lioness.decrypt(lioness.lioness_key(keys.replier_key), body)
    if not macs_equal(body[:PAYLOAD_TAG_SIZE], ZERO_TAG):
        raise PayloadTagError("reply payload integrity tag is wrong (modified, or other keys)")
    return body[PAYLOAD_TAG_SIZE:]
