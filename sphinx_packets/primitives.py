"""The cryptographic primitives of the NIKE-Sphinx construction over X25519.

Thin wrappers around libsodium (raw X25519 through `nacl.bindings`), `cryptography`
(HKDF-Expand, AES-256-CTR, ChaCha20) and `hashlib`; nothing here is a new primitive.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.exceptions import CryptoError

from sphinx_packets.errors import InvalidKeyError
from sphinx_packets.geometry import GROUP_ELEMENT_SIZE, PAYLOAD_KEY_SIZE
from sphinx_packets.inputs import exact_bytes

Rng = Callable[[int], bytes]
"""Randomness source: takes a byte count, returns that many random bytes (`os.urandom`)."""

KDF_INFO = b"katzenpost-kdf-v0-hkdf-sha256"
KDF_OUTPUT_SIZE = 32 + 32 + 16 + PAYLOAD_KEY_SIZE + 32
_ZERO_NONCE = bytes(16)
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True)
class PacketKeys:
    """The keys one hop derives from its shared secret (none of them shows in `repr`)."""

    header_mac: bytes = field(repr=False)
    header_encryption: bytes = field(repr=False)
    header_encryption_iv: bytes = field(repr=False)
    payload_encryption: bytes = field(repr=False)
    blinding_factor_seed: bytes = field(repr=False)


def derive_packet_keys(shared_secret: bytes) -> PacketKeys:
    """HKDF-SHA256 Expand only (the shared secret is the PRK), 160 bytes sliced
    MAC 32 | header key 32 | header IV 16 | payload key 48 | blinding seed 32."""
    okm = HKDFExpand(_SHA256, KDF_OUTPUT_SIZE, KDF_INFO).derive(shared_secret)
    return PacketKeys(okm[0:32], okm[32:64], okm[64:80], okm[80:128], okm[128:160])


def x25519(scalar: bytes, element: bytes) -> bytes:
    """Raw X25519 (libsodium clamps the scalar). A low-order element is an `InvalidKeyError`."""
    try:
        return crypto_scalarmult(scalar, element)
    except (CryptoError, ValueError, TypeError) as error:
        raise InvalidKeyError("group element is invalid or of low order") from error


def x25519_public(private_key: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key (bytes-like)."""
    private_key = exact_bytes(
        private_key, GROUP_ELEMENT_SIZE, "an X25519 private key", InvalidKeyError
    )
    return crypto_scalarmult_base(private_key)


def generate_keypair(*, rng: Rng = os.urandom) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair (private, public); `rng` is a test hook."""
    private_key = exact_bytes(
        rng(GROUP_ELEMENT_SIZE), GROUP_ELEMENT_SIZE, "rng output", InvalidKeyError
    )
    return private_key, x25519_public(private_key)


def blinding_factor(seed: bytes) -> bytes:
    """The first 32 bytes of the ChaCha20 keystream (zero nonce) keyed by `seed`; X25519
    clamps it when it is used as a scalar."""
    return (
        Cipher(algorithms.ChaCha20(seed, _ZERO_NONCE), None)
        .encryptor()
        .update(bytes(GROUP_ELEMENT_SIZE))
    )


def header_stream(keys: PacketKeys, data: bytes) -> bytes:
    """`data` XOR the AES-256-CTR keystream of the hop's header key and IV."""
    return (
        Cipher(algorithms.AES(keys.header_encryption), modes.CTR(keys.header_encryption_iv))
        .encryptor()
        .update(data)
    )


def header_mac(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256, all 32 bytes."""
    return hmac.digest(key, data, "sha256")


def macs_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two MACs."""
    return hmac.compare_digest(a, b)


def replay_tag(alpha: bytes) -> bytes:
    """SHA-512/256 of the 32-byte group element α: what a replay filter remembers."""
    alpha = exact_bytes(alpha, GROUP_ELEMENT_SIZE, "α", InvalidKeyError)
    return hashlib.new("sha512_256", alpha).digest()
