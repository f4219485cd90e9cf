"""The Sphinx header: the Katzenpost NIKE-Sphinx construction over X25519, byte for byte.

    header = AD (00 00) ‖ α (32) ‖ β (hops × 82) ‖ γ (32)

Hop i shares `s = X25519(y_i, α)` with the sender and derives its `PacketKeys` from it.
It checks γ = HMAC-SHA256(mac key, AD ‖ α ‖ β), decrypts β ‖ 0^82 with AES-256-CTR, reads
its commands from the first 82 bytes and keeps the rest as the next β; the next α is α
blinded by the ChaCha20-derived factor. A path shorter than `hops` is padded with random
bytes, so that no hop can tell where on the path it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sphinx_packets.blinding import BlindingChain
from sphinx_packets.commands import (
    NextNodeHop,
    RoutingCommand,
    decode_commands,
    encode_commands,
)
from sphinx_packets.errors import (
    InvalidMACError,
    InvalidPacketError,
    PathError,
    SphinxError,
)
from sphinx_packets.geometry import (
    AD_SIZE,
    GROUP_ELEMENT_SIZE,
    MAC_SIZE,
    PER_HOP_ROUTING_INFO_SIZE,
    Geometry,
    require_geometry,
)
from sphinx_packets.inputs import exact_bytes
from sphinx_packets.keys import KeyCandidates, UnwrapKeys, key_candidates
from sphinx_packets.path import PathHop
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
_SLOT_ZEROS = bytes(PER_HOP_ROUTING_INFO_SIZE)


@dataclass(frozen=True, slots=True)
class UnwrappedHeader:
    """What one hop learns from a header: its commands, the header to forward (None at the
    last hop, which has no next-hop command), the 48-byte payload key (secret), the replay
    tag, and the epoch of the key that matched (None for a bare private key)."""

    commands: tuple[RoutingCommand, ...]
    next_header: bytes | None = field(repr=False)
    payload_key: bytes = field(repr=False)
    replay_tag: bytes = field(repr=False)
    key_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class VerifiedHeader:
    """A header whose MAC verified under one of a node's keys: the hop's keys, α, and the
    epoch of the key that matched."""

    keys: PacketKeys = field(repr=False)
    alpha: bytes = field(repr=False)
    key_epoch: int | None


def create_header(
    geometry: Geometry, path: tuple[PathHop, ...], rng: Rng
) -> tuple[bytes, tuple[PacketKeys, ...]]:
    """Build a header for a checked `path` (`check_path`); returns it with each hop's keys
    (for the payload layer)."""
    hops = len(path)
    if not 1 <= hops <= geometry.hops:
        raise PathError(f"a path must have 1 to {geometry.hops} hops, not {hops}")
    slot = PER_HOP_ROUTING_INFO_SIZE
    beta_size = geometry.routing_info_size

    chain = BlindingChain(*generate_keypair(rng=rng))
    alphas: list[bytes] = []
    keys: list[PacketKeys] = []
    for i, hop in enumerate(path):
        if i > 0:
            chain.blind(blinding_factor(keys[i - 1].blinding_factor_seed))
        alphas.append(chain.alpha())
        keys.append(derive_packet_keys(chain.shared_secret(hop.public_key)))

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


def verify_header(geometry: Geometry, candidates: KeyCandidates, data: bytes) -> VerifiedHeader:
    """Check the version and the MAC of the header at the front of `data` (a header or a
    whole packet, already size-checked), trying each candidate key in order. A low-order α
    is an `InvalidKeyError`; no key verifying is an `InvalidMACError`."""
    if data[:AD_SIZE] != AD:
        raise InvalidPacketError("unknown header version (AD must be 00 00)")
    mac_start = geometry.header_size - MAC_SIZE
    alpha = data[AD_SIZE:_ALPHA_END]
    signed = data[:mac_start]
    mac = data[mac_start : mac_start + MAC_SIZE]
    for epoch, private_key in candidates:
        keys = derive_packet_keys(x25519(private_key, alpha))
        if macs_equal(header_mac(keys.header_mac, signed), mac):
            return VerifiedHeader(keys, alpha, epoch)
    raise InvalidMACError(
        "header MAC does not verify (tampered, or not for this key)"
        if len(candidates) == 1
        else f"header MAC does not verify under any of the {len(candidates)} keys"
    )


def read_commands(
    geometry: Geometry, verified: VerifiedHeader, data: bytes
) -> tuple[tuple[RoutingCommand, ...], bytes]:
    """Decrypt β ‖ 0^82 of a verified header: this hop's commands, and the next β."""
    slot = PER_HOP_ROUTING_INFO_SIZE
    mac_start = geometry.header_size - MAC_SIZE
    decrypted = header_stream(verified.keys, data[_ALPHA_END:mac_start] + _SLOT_ZEROS)
    return decode_commands(decrypted[:slot]), decrypted[slot:]


def next_header(verified: VerifiedHeader, next_beta: bytes, next_mac: bytes) -> bytes:
    """The header to forward: α blinded, the next β, and the MAC from the next-hop command."""
    blinding = blinding_factor(verified.keys.blinding_factor_seed)
    return AD + x25519(blinding, verified.alpha) + next_beta + next_mac


def unwrap_header(geometry: Geometry, keys: UnwrapKeys, header: bytes) -> UnwrappedHeader:
    """Process one header with a node's Sphinx key(s) (as `unwrap` takes them), without
    checking that the commands make sense together. Errors raised after the MAC verified
    carry the replay tag and the key's epoch, as `unwrap`'s do."""
    require_geometry(geometry)
    candidates = key_candidates(keys)
    header = exact_bytes(header, geometry.header_size, "a header", InvalidPacketError)
    verified = verify_header(geometry, candidates, header)
    tag = replay_tag(verified.alpha)
    try:
        commands, next_beta = read_commands(geometry, verified, header)
        next_hop = next((c for c in commands if isinstance(c, NextNodeHop)), None)
        forward = None if next_hop is None else next_header(verified, next_beta, next_hop.mac)
    except SphinxError as error:
        error.replay_tag, error.key_epoch = tag, verified.key_epoch
        raise
    return UnwrappedHeader(
        commands, forward, verified.keys.payload_encryption, tag, verified.key_epoch
    )


def _xor(a: bytes, b: bytes) -> bytes:
    size = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(size, "little")
