"""Ed25519 signing keys and detached signatures (RFC 8032, via `cryptography`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from directory.errors import ConfigError

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
NODE_ID_SIZE = 32
MAX_AUTHORITIES = 64
"""The most authorities a network may pin (and signatures a consensus may carry)."""


def node_id(identity_public_key: bytes) -> bytes:
    """A node's id: BLAKE2b-256 of its Ed25519 identity public key (as in Sphinx routing)."""
    return hashlib.blake2b(identity_public_key, digest_size=NODE_ID_SIZE).digest()


def digest(data: bytes) -> bytes:
    """BLAKE2b-256 of `data`: how documents are referred to by hash."""
    return hashlib.blake2b(data, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key, held as its 32-byte seed."""

    seed: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(repr=False, compare=False)
    public_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if type(seed) is not bytes or len(seed) != SEED_SIZE:
            raise ConfigError(f"an Ed25519 seed is {SEED_SIZE} bytes")
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(seed=seed, _key=key, public_key=public)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's random source."""
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls.from_seed(seed)

    def sign(self, message: bytes) -> bytes:
        """The detached 64-byte signature of `message`."""
        return self._key.sign(message)


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is `public_key`'s valid Ed25519 signature of `message`.
    Malformed keys and signatures are simply invalid."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def authority_threshold(authority_count: int, threshold: int | None = None) -> int:
    """How many of `authority_count` pinned authorities must sign a document: `threshold`
    if given, else the default majority ⌊n/2⌋ + 1. A threshold outside ⌊n/2⌋ + 1 .. n is a
    `ConfigError`: below a majority two disjoint sets of honest authorities could each sign a
    document; above n nothing could ever be signed."""
    majority = authority_count // 2 + 1
    if threshold is None:
        return majority
    if type(threshold) is not int or not majority <= threshold <= authority_count:
        raise ConfigError(
            f"the signature threshold must be in {majority}..{authority_count} "
            f"for {authority_count} authorities, not {threshold!r}"
        )
    return threshold
