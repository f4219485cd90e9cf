"""What `unwrap` tells a node to do with a packet: forward it, or deliver it to a mailbox.

Every result carries `replay_tag` (SHA-512/256 of the packet's α, for the replay filter of
the key that matched) and `key_epoch` (that key's epoch, or None when `unwrap` was given a
bare private key). Reprs are short and hold no bytes at all (no packet, payload, node or
mailbox id, tag): a repr may end up in a log line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sphinx_packets.redaction import redacted_repr


@dataclass(frozen=True, slots=True, repr=False)
class Forward:
    """Hold the packet `delay_ms` milliseconds (as the sender chose; `unwrap` enforces a cap
    only when given `max_delay_ms`), then send `packet` (`geometry.packet_size` bytes,
    re-encrypted for the next hop) to the node `next_node_id`."""

    next_node_id: bytes
    delay_ms: int
    packet: bytes
    replay_tag: bytes
    key_epoch: int | None

    __repr__ = redacted_repr


@dataclass(frozen=True, slots=True, repr=False)
class Deliver:
    """A forward packet reached its last hop, and its zero tag verified: after `delay_ms`,
    store `payload` in the mailbox `recipient_id` (the id of the `Recipient` command).
    `payload` is the sender's plaintext user payload, `geometry.user_payload_size` bytes
    (any end-to-end encryption is the layer above's)."""

    recipient_id: bytes
    payload: bytes
    replay_tag: bytes
    key_epoch: int | None
    delay_ms: int

    __repr__ = redacted_repr


@dataclass(frozen=True, slots=True, repr=False)
class DeliverSurbReply:
    """A reply on the SURB `surb_id` reached its last hop: after `delay_ms`, store it in the
    mailbox `recipient_id`. `payload` is still encrypted for the SURB's creator,
    `geometry.payload_size` bytes (zero tag and user payload); nothing here can check it.
    The creator opens it with `decrypt_surb_payload(geometry, keys, surb_id, payload)`,
    which returns `geometry.user_payload_size` bytes."""

    recipient_id: bytes
    surb_id: bytes
    payload: bytes
    replay_tag: bytes
    key_epoch: int | None
    delay_ms: int

    __repr__ = redacted_repr


UnwrapResult = Forward | Deliver | DeliverSurbReply
