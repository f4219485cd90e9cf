"""Whole packets: a Sphinx header and a LIONESS-encrypted payload of fixed size.

    packet  = header ‖ payload
    payload = LIONESS_{k_0}( … LIONESS_{k_n-1}( 0^32 ‖ user payload ) … )

Each hop decrypts the payload with the LIONESS key derived from its payload key; the last
hop of a forward packet checks the 32 zero bytes at the front, which any change to the
payload on the way destroys.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from sphinx_packets import lioness
from sphinx_packets.commands import MAX_DELAY_MS, classify_commands
from sphinx_packets.errors import (
    DelayTooLongError,
    InvalidArgumentError,
    InvalidPacketError,
    PayloadTagError,
    ReplayError,
    SphinxError,
)
from sphinx_packets.geometry import PAYLOAD_TAG_SIZE, Geometry, require_geometry
from sphinx_packets.header import (
    create_header,
    next_header,
    read_commands,
    verify_header,
)
from sphinx_packets.inputs import checked_int, exact_bytes
from sphinx_packets.keys import UnwrapKeys, key_candidates
from sphinx_packets.path import PathHop, check_path
from sphinx_packets.primitives import Rng, macs_equal, replay_tag
from sphinx_packets.results import Deliver, DeliverSurbReply, Forward, UnwrapResult

ZERO_TAG = bytes(PAYLOAD_TAG_SIZE)


def user_payload(geometry: Geometry, payload: object) -> bytes:
    """`payload` as bytes if it is exactly `geometry.user_payload_size` bytes."""
    return exact_bytes(payload, geometry.user_payload_size, "the user payload", InvalidPacketError)


def create_packet(
    geometry: Geometry,
    path: Sequence[PathHop],
    payload: bytes,
    *,
    rng: Rng = os.urandom,
) -> bytes:
    """A forward packet (`geometry.packet_size` bytes) carrying `payload` (exactly
    `geometry.user_payload_size` bytes) along `path`, whose last hop carries a `Recipient`.
    The path is checked hop by hop first (`PathError` naming the hop). `rng` is a test hook.
    """
    require_geometry(geometry)
    payload = user_payload(geometry, payload)
    hops = check_path(geometry, path)
    header, keys = create_header(geometry, hops, rng)
    body = ZERO_TAG + payload
    for hop_keys in reversed(keys):
        body = lioness.encrypt(lioness.lioness_key(hop_keys.payload_encryption), body)
    return header + body


def unwrap(
    geometry: Geometry,
    keys: UnwrapKeys,
    packet: bytes,
    *,
    is_replay: Callable[[bytes], bool] | None = None,
    max_delay_ms: int | None = None,
    is_replay_in_epoch: Callable[[bytes, int | None], bool] | None = None,
) -> UnwrapResult:
    """Process a whole packet (`geometry.packet_size` bytes) at one hop.

    `keys` is a bare 32-byte private key or the node's `SphinxKey`s (`NodeKeys`, tried in
    order; each miss costs one X25519, one HKDF and one HMAC).

    In order: the version and header MAC are checked (errors carry `replay_tag=None`); then
    `is_replay(tag)` is called, and a true answer raises `ReplayError` before any further
    work; then the commands are decoded and checked, and a `NodeDelay` above `max_delay_ms`
    raises `DelayTooLongError` before any payload work; then the payload is decrypted.
    Every error from the MAC on carries `replay_tag` and `key_epoch`, as the result does.
    The delay cap is the caller's policy (a node passes the consensus maximum): this layer
    only enforces the value it is given, and none when it is None.

    `is_replay_in_epoch(tag, key_epoch)` is the same check told which key's MAC verified
    (None for a bare key): a copy of a packet verifies under the same key, so a node with one
    replay filter per key need ask only that key's filter. Give one of the two, not both.
    """
    require_geometry(geometry)
    candidates = key_candidates(keys)
    if max_delay_ms is not None:
        checked_int(max_delay_ms, 0, MAX_DELAY_MS, "max_delay_ms", InvalidArgumentError)
    if is_replay is not None and not callable(is_replay):
        raise InvalidArgumentError("is_replay must be a callable taking the replay tag")
    if is_replay_in_epoch is not None:
        if not callable(is_replay_in_epoch) or is_replay is not None:
            raise InvalidArgumentError(
                "is_replay_in_epoch must be a callable (tag, epoch), given without is_replay"
            )
    header_size = geometry.header_size
    packet = exact_bytes(
        packet, header_size + geometry.payload_size, "a packet", InvalidPacketError
    )
    verified = verify_header(geometry, candidates, packet)
    tag = replay_tag(verified.alpha)
    epoch = verified.key_epoch
    try:
        if is_replay is not None and is_replay(tag):
            raise ReplayError("is_replay recognised the packet's replay tag")
        if is_replay_in_epoch is not None and is_replay_in_epoch(tag, epoch):
            raise ReplayError("is_replay_in_epoch recognised the packet's replay tag")
        commands, next_beta = read_commands(geometry, verified, packet)
        hop = classify_commands(commands)
        delay_ms = hop.delay_ms
        if max_delay_ms is not None and delay_ms > max_delay_ms:
            raise DelayTooLongError(
                f"the hop's delay of {delay_ms} ms exceeds the maximum of {max_delay_ms} ms"
            )
        next_hop = hop.next_hop
        if next_hop is not None:
            forward = next_header(verified, next_beta, next_hop.mac)
            body = _decrypt_body(verified.keys.payload_encryption, packet, header_size)
            return Forward(next_hop.node_id, delay_ms, forward + body, tag, epoch)
        body = _decrypt_body(verified.keys.payload_encryption, packet, header_size)
        assert hop.recipient is not None  # classify_commands: no next hop means a recipient
        recipient_id = hop.recipient.recipient_id
        if hop.surb_reply is not None:
            return DeliverSurbReply(
                recipient_id, hop.surb_reply.surb_id, body, tag, epoch, delay_ms
            )
        if not macs_equal(body[:PAYLOAD_TAG_SIZE], ZERO_TAG):
            raise PayloadTagError("payload integrity tag is wrong (the payload was modified)")
        return Deliver(recipient_id, body[PAYLOAD_TAG_SIZE:], tag, epoch, delay_ms)
    except SphinxError as error:
        error.replay_tag, error.key_epoch = tag, epoch
        raise


def _decrypt_body(payload_key: bytes, packet: bytes, header_size: int) -> bytes:
    return lioness.decrypt(lioness.lioness_key(payload_key), packet[header_size:])
