"""The Sphinx header: the Katzenpost NIKE-Sphinx construction over X25519, byte for byte.

    header = AD (00 00) ‖ α (32) ‖ β (hops × 82) ‖ γ (32)

Hop i shares `s = X25519(y_i, α)` with the sender and derives its `PacketKeys` from it.
It checks γ = HMAC-SHA256(mac key, AD ‖ α ‖ β), decrypts β ‖ 0^82 with AES-256-CTR, reads
its commands from the first 82 bytes and keeps the rest as the next β; the next α is α
blinded by the ChaCha20-derived factor. A path shorter than `hops` is padded with random
bytes, so that no hop can tell where on the path it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sphinx_packets.commands import (
    NextNodeHop,
    RoutingCommand,
    decode_commands,
    encode_commands,
)
from sphinx_packets.errors import InvalidKeyError, InvalidMACError, InvalidPacketError, PathError
from sphinx_packets.geometry import (
    AD_SIZE,
    GROUP_ELEMENT_SIZE,
    MAC_SIZE,
    NODE_ID_SIZE,
    PER_HOP_ROUTING_INFO_SIZE,
    Geometry,
    exact_bytes,
)
from sphinx_packets.primitives import (
    PacketKeys,
    Rng,
    blinding_factor,
    derive_packet_keys,
    generate_keypair,
    header_mac,
    header_stream,
    macs_equal,
    replay_tag,
    x25519,
)

AD = bytes(AD_SIZE)
_ALPHA_END = AD_SIZE + GROUP_ELEMENT_SIZE


@dataclass(frozen=True, slots=True)
class PathHop:
    """One hop of a path: the node's id, its Sphinx public key for the epoch, and the
    commands it is to read (a `NodeDelay` for a mix; `Recipient` and maybe `SurbReply` for
    the last hop). The next-hop command is added by the packet's creator."""

    node_id: bytes
    public_key: bytes
    commands: tuple[RoutingCommand, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, bytes) or len(self.node_id) != NODE_ID_SIZE:
            raise PathError(f"a node id must be {NODE_ID_SIZE} bytes")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != GROUP_ELEMENT_SIZE:
            raise PathError(f"a Sphinx public key must be {GROUP_ELEMENT_SIZE} bytes")
        for command in self.commands:
            if isinstance(command, NextNodeHop):
                raise PathError("the next-hop command is the packet creator's to add")


@dataclass(frozen=True, slots=True)
class UnwrappedHeader:
    """What one hop learns from a header: its commands, the header to forward (None at the
    last hop, which has no next-hop command), the payload key and the replay tag."""

    commands: tuple[RoutingCommand, ...]
    next_header: bytes | None
    payload_key: bytes
    replay_tag: bytes


def create_header(
    geometry: Geometry, path: Sequence[PathHop], rng: Rng
) -> tuple[bytes, tuple[PacketKeys, ...]]:
    """Build a header for `path`; returns it with each hop's keys (for the payload layer)."""
    hops = len(path)
    if not 1 <= hops <= geometry.hops:
        raise PathError(f"a path must have 1 to {geometry.hops} hops, not {hops}")
    slot = PER_HOP_ROUTING_INFO_SIZE
    beta_size = geometry.routing_info_size

    secret_key, alpha = generate_keypair(rng)
    alphas = [alpha]
    keys: list[PacketKeys] = []
    blindings: list[bytes] = []
    for i, hop in enumerate(path):
        if i > 0:
            alphas.append(x25519(blindings[i - 1], alphas[i - 1]))
        shared = x25519(secret_key, hop.public_key)
        for factor in blindings:
            shared = x25519(factor, shared)
        hop_keys = derive_packet_keys(shared)
        keys.append(hop_keys)
        blindings.append(blinding_factor(hop_keys.blinding_factor_seed))

    streams = [header_stream(k, bytes(beta_size + slot)) for k in keys]
    filler = b""
    for i in range(hops - 1):
        tail = streams[i][(geometry.hops - i) * slot :]
        filler = _xor(filler + bytes(slot), tail)

    last = hops - 1
    padding = rng((geometry.hops - hops) * slot)
    plain = encode_commands(path[last].commands, slot) + padding
    beta = _xor(plain, streams[last][: len(plain)]) + filler
    gamma = header_mac(keys[last].header_mac, AD + alphas[last] + beta)
    for i in range(last - 1, -1, -1):
        commands = (*path[i].commands, NextNodeHop(path[i + 1].node_id, gamma))
        plain = encode_commands(commands, slot) + beta[: beta_size - slot]
        beta = _xor(plain, streams[i][:beta_size])
        gamma = header_mac(keys[i].header_mac, AD + alphas[i] + beta)
    return AD + alphas[0] + beta + gamma, tuple(keys)


def unwrap_header(geometry: Geometry, private_key: bytes, header: bytes) -> UnwrappedHeader:
    """Process one header with a node's Sphinx private key."""
    header = exact_bytes(header, geometry.header_size, "a header")
    if not isinstance(private_key, bytes) or len(private_key) != GROUP_ELEMENT_SIZE:
        raise InvalidKeyError(f"a Sphinx private key must be {GROUP_ELEMENT_SIZE} bytes")
    if header[:AD_SIZE] != AD:
        raise InvalidPacketError("unknown header version (AD must be 00 00)")
    mac_start = geometry.header_size - MAC_SIZE
    alpha = header[AD_SIZE:_ALPHA_END]
    keys = derive_packet_keys(x25519(private_key, alpha))
    if not macs_equal(header_mac(keys.header_mac, header[:mac_start]), header[mac_start:]):
        raise InvalidMACError("header MAC does not verify (tampered, or not for this key)")
    slot = PER_HOP_ROUTING_INFO_SIZE
    decrypted = header_stream(keys, header[_ALPHA_END:mac_start] + bytes(slot))
    commands = decode_commands(decrypted[:slot])
    next_hop = next((c for c in commands if isinstance(c, NextNodeHop)), None)
    next_header = None
    if next_hop is not None:
        next_alpha = x25519(blinding_factor(keys.blinding_factor_seed), alpha)
        next_header = AD + next_alpha + decrypted[slot:] + next_hop.mac
    return UnwrappedHeader(commands, next_header, keys.payload_encryption, replay_tag(alpha))


def _xor(a: bytes, b: bytes) -> bytes:
    size = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(size, "little")
