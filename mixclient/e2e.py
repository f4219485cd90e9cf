"""End-to-end encryption of whole messages: HPKE (RFC 9180) base mode, single shot.

Gateways and mixes never see plaintext: a message is sealed to the recipient's public key
before it is fragmented (mixclient.fragments), and opened after reassembly.

Suites (the number is what an address carries, mixclient.address):

    1  X25519            DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (default)
    2  MLKEM768_X25519   the ML-KEM-768 + X25519 hybrid KEM, HKDF-SHA256, ChaCha20-Poly1305

HPKE comes from `cryptography.hazmat.primitives.hpke` (no primitive is written here). A sealed
message is what `Suite.encrypt` returns: the KEM encapsulation ‖ the AEAD ciphertext and its
16-byte tag (`seal_overhead(suite)` bytes more than the plaintext: 48 for X25519, 1,136 for
the hybrid). `info` binds the context (e.g. b"trimix message v1") into the key schedule; the
same `info` must be given to open.

Byte layouts (all fixed size per suite):

    public key    X25519: 32 raw bytes
                  hybrid: ML-KEM-768 encapsulation key 1,184 ‖ X25519 public key 32
    private key   suite u8 ‖ X25519: 32 raw bytes
                           hybrid: ML-KEM-768 seed (d ‖ z) 64 ‖ X25519 private key 32

Randomness: key generation and encapsulation draw from the operating system inside
`cryptography`, which offers no way to inject an rng; everything else here is deterministic.
No key appears in a repr or an error message; every failure is an `E2EError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

X25519_KEY_SIZE = 32
MLKEM768_PUBLIC_KEY_SIZE = 1184
MLKEM768_SEED_SIZE = 64
AEAD_TAG_SIZE = 16


class E2EError(Exception):
    """A message could not be sealed or opened (wrong key, tampering, malformed input)."""


class E2ESuite(IntEnum):
    """The HPKE suites a client can be addressed with."""

    X25519 = 1
    MLKEM768_X25519 = 2


DEFAULT_SUITE = E2ESuite.X25519

_KEMS = {
    E2ESuite.X25519: hpke.KEM.X25519,
    E2ESuite.MLKEM768_X25519: hpke.KEM.MLKEM768_X25519,
}
_PUBLIC_KEY_SIZES = {
    E2ESuite.X25519: X25519_KEY_SIZE,
    E2ESuite.MLKEM768_X25519: MLKEM768_PUBLIC_KEY_SIZE + X25519_KEY_SIZE,
}
_PRIVATE_KEY_SIZES = {
    E2ESuite.X25519: X25519_KEY_SIZE,
    E2ESuite.MLKEM768_X25519: MLKEM768_SEED_SIZE + X25519_KEY_SIZE,
}

_PrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
_PublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey


def suite_from_int(value: object) -> E2ESuite:
    """The suite numbered `value`; `E2EError` for an unknown number or a non-integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise E2EError(f"a suite is an integer, not {type(value).__name__}")
    try:
        return E2ESuite(value)
    except ValueError:
        known = ", ".join(f"{s.value} ({s.name})" for s in E2ESuite)
        raise E2EError(f"unknown end-to-end suite {value}: known are {known}") from None


def public_key_size(suite: E2ESuite) -> int:
    """Bytes of a public key of `suite`."""
    return _PUBLIC_KEY_SIZES[suite_from_int(suite)]


def seal_overhead(suite: E2ESuite) -> int:
    """How many bytes `seal` adds to a plaintext for `suite`."""
    return _KEMS[suite_from_int(suite)].enc_length() + AEAD_TAG_SIZE


MAX_SEAL_OVERHEAD = max(seal_overhead(s) for s in E2ESuite)
"""The largest `seal_overhead` of any suite (1,136 bytes, the hybrid's)."""


def _hpke_suite(suite: E2ESuite) -> hpke.Suite:
    return hpke.Suite(_KEMS[suite], hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _as_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise E2EError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _sized(value: object, size: int, what: str) -> bytes:
    data = _as_bytes(value, what)
    if len(data) != size:
        raise E2EError(f"{what} must be {size} bytes, not {len(data)}")
    return data


def _load_public_key(suite: E2ESuite, raw: bytes) -> _PublicKey:
    try:
        if suite is E2ESuite.X25519:
            return x25519.X25519PublicKey.from_public_bytes(raw)
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_KEY_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_KEY_SIZE:]),
        )
    except (ValueError, TypeError):
        raise E2EError(f"not a valid {suite.name} public key") from None


@dataclass(frozen=True, slots=True, eq=False)
class E2EKeyPair:
    """A client's end-to-end key pair. `public_key` is the raw public key an address
    carries; `private_bytes()` is what the state store keeps."""

    suite: E2ESuite
    _private: _PrivateKey = field(repr=False)
    public_key: bytes = field(repr=False)
    _private_raw: bytes = field(repr=False)

    @classmethod
    def generate(cls, suite: E2ESuite = DEFAULT_SUITE) -> E2EKeyPair:
        suite = suite_from_int(suite)
        x_key = x25519.X25519PrivateKey.generate()
        if suite is E2ESuite.X25519:
            return cls._from_parts(suite, x_key, None)
        return cls._from_parts(suite, x_key, mlkem.MLKEM768PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> E2EKeyPair:
        """The key pair `private_bytes()` gave; `E2EError` if `data` is not one."""
        data = _as_bytes(data, "a private key")
        if not data:
            raise E2EError("a private key must not be empty")
        suite = suite_from_int(data[0])
        body = _sized(data[1:], _PRIVATE_KEY_SIZES[suite], f"a {suite.name} private key")
        try:
            if suite is E2ESuite.X25519:
                return cls._from_parts(
                    suite, x25519.X25519PrivateKey.from_private_bytes(body), None
                )
            return cls._from_parts(
                suite,
                x25519.X25519PrivateKey.from_private_bytes(body[MLKEM768_SEED_SIZE:]),
                mlkem.MLKEM768PrivateKey.from_seed_bytes(body[:MLKEM768_SEED_SIZE]),
            )
        except (ValueError, TypeError):
            raise E2EError(f"not a valid {suite.name} private key") from None

    @classmethod
    def _from_parts(
        cls,
        suite: E2ESuite,
        x_key: x25519.X25519PrivateKey,
        ml_key: mlkem.MLKEM768PrivateKey | None,
    ) -> E2EKeyPair:
        x_public = x_key.public_key().public_bytes_raw()
        x_private = x_key.private_bytes_raw()
        if ml_key is None:
            return cls(suite, x_key, x_public, x_private)
        private = hpke.MLKEM768X25519PrivateKey(ml_key, x_key)
        public = ml_key.public_key().public_bytes_raw() + x_public
        return cls(suite, private, public, ml_key.private_bytes_raw() + x_private)

    def private_bytes(self) -> bytes:
        """suite u8 ‖ the raw private key material (see the module docstring). Secret."""
        return bytes((self.suite,)) + self._private_raw


def seal(
    recipient_suite: E2ESuite, recipient_public_key: bytes, plaintext: bytes, *, info: bytes
) -> bytes:
    """`plaintext` encrypted to the holder of `recipient_public_key` (HPKE base mode)."""
    suite = suite_from_int(recipient_suite)
    raw = _sized(recipient_public_key, _PUBLIC_KEY_SIZES[suite], f"a {suite.name} public key")
    message = _as_bytes(plaintext, "a plaintext")
    context = _as_bytes(info, "info")
    public = _load_public_key(suite, raw)
    try:
        return _hpke_suite(suite).encrypt(message, public, info=context)
    except (ValueError, TypeError):
        raise E2EError(f"could not seal to this {suite.name} public key") from None


def open_sealed(keypair: E2EKeyPair, ciphertext: bytes, *, info: bytes) -> bytes:
    """The plaintext of a message `seal` made for `keypair` with the same `info`;
    `E2EError` if it was made for another key, with another `info`, or was changed."""
    if not isinstance(keypair, E2EKeyPair):
        raise E2EError(f"a key pair must be an E2EKeyPair, not {type(keypair).__name__}")
    sealed = _as_bytes(ciphertext, "a sealed message")
    context = _as_bytes(info, "info")
    if len(sealed) < seal_overhead(keypair.suite):
        raise E2EError(
            f"a sealed {keypair.suite.name} message is at least "
            f"{seal_overhead(keypair.suite)} bytes, not {len(sealed)}"
        )
    try:
        return _hpke_suite(keypair.suite).decrypt(sealed, keypair._private, info=context)
    except (InvalidTag, ValueError, TypeError):
        raise E2EError(
            "the message does not open: another recipient's, another context, or changed"
        ) from None
