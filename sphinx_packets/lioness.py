"""LIONESS (Anderson–Biham) over ChaCha20 and keyed BLAKE2b-256: the payload's wide-block cipher.

Key: k1 32 | k2 64 | k3 32 | k4 64 (192 bytes). Block: L = first 32 bytes, R = the rest.

    encrypt: R ^= ChaCha20(L ^ k1); L ^= BLAKE2b-256(R, key=k2);
             R ^= ChaCha20(L ^ k3); L ^= BLAKE2b-256(R, key=k4)
    decrypt: the same rounds in reverse order.

ChaCha20 is the original variant with a zero nonce and counter. A change anywhere in the
block changes all of its output, which is what lets a zero tag at the front of the payload
detect tagging. Per-hop keys come from the Sphinx payload key by `lioness_key`.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from sphinx_packets.errors import InvalidKeyError, InvalidPacketError
from sphinx_packets.geometry import PAYLOAD_KEY_SIZE
from sphinx_packets.inputs import exact_bytes

KEY_SIZE = 192
HALF = 32
MIN_BLOCK_SIZE = HALF + 1
LIONESS_KDF_DOMAIN = b"trimix-lioness-key-v1"
_ZERO_NONCE = bytes(16)


def lioness_key(payload_key: bytes) -> bytes:
    """The 192-byte LIONESS key of a 48-byte Sphinx payload key:
    SHAKE-256("trimix-lioness-key-v1" ‖ payload key), 192 bytes of output."""
    payload_key = exact_bytes(payload_key, PAYLOAD_KEY_SIZE, "a payload key", InvalidKeyError)
    return hashlib.shake_256(LIONESS_KDF_DOMAIN + payload_key).digest(KEY_SIZE)


def _xor32(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(HALF, "little")


def _stream(key: bytes, data: bytes) -> bytes:
    return Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), None).encryptor().update(data)


def _hash(data: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(data, key=key, digest_size=HALF).digest()


def _split(key: bytes, block: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    key = exact_bytes(key, KEY_SIZE, "a LIONESS key", InvalidKeyError)
    if type(block) is not bytes:
        if not isinstance(block, bytes | bytearray | memoryview):
            raise InvalidPacketError(f"a LIONESS block must be bytes, not {type(block).__name__}")
        block = bytes(block)
    if len(block) < MIN_BLOCK_SIZE:
        raise InvalidPacketError(f"a LIONESS block must be at least {MIN_BLOCK_SIZE} bytes")
    return key[0:32], key[32:96], key[96:128], key[128:192], block[:HALF], block[HALF:]


def encrypt(key: bytes, block: bytes) -> bytes:
    """Encrypt one block (at least 33 bytes) under a 192-byte key."""
    k1, k2, k3, k4, left, right = _split(key, block)
    right = _stream(_xor32(left, k1), right)
    left = _xor32(left, _hash(right, k2))
    right = _stream(_xor32(left, k3), right)
    left = _xor32(left, _hash(right, k4))
    return left + right


def decrypt(key: bytes, block: bytes) -> bytes:
    """Decrypt one block (at least 33 bytes) under a 192-byte key."""
    k1, k2, k3, k4, left, right = _split(key, block)
    left = _xor32(left, _hash(right, k4))
    right = _stream(_xor32(left, k3), right)
    left = _xor32(left, _hash(right, k2))
    right = _stream(_xor32(left, k1), right)
    return left + right
