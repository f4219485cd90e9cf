"""A node's Sphinx keys: one X25519 key pair per epoch, and the ordered set `unwrap` tries.

A node holds the keys of the previous, current and next epoch (packets in flight were built
with the key of the epoch their sender saw). `unwrap` tries the keys of a `NodeKeys` in
order until the header MAC verifies, and reports which one did (`key_epoch`). Each key
tried before the one that matches costs one X25519 multiplication, one HKDF and one HMAC
(about a third of an unwrap), so put the key most packets use first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sphinx_packets.errors import InvalidKeyError
from sphinx_packets.geometry import GROUP_ELEMENT_SIZE
from sphinx_packets.inputs import checked_int, exact_bytes
from sphinx_packets.primitives import Rng, generate_keypair, macs_equal, x25519_public

MAX_EPOCH = (1 << 64) - 1
MAX_NODE_KEYS = 8
"""More keys than a node ever needs (3); a bound on the work a packet that matches none costs."""

KeyCandidates = tuple[tuple[int | None, bytes], ...]
"""What `unwrap` tries, in order: (epoch or None for a bare key, private key)."""


@dataclass(frozen=True, slots=True, repr=False)
class SphinxKey:
    """A node's Sphinx key pair for `epoch`. The private key never shows in `repr`; the public
    key must be the private key's (checked on construction, one X25519 base multiplication)."""

    epoch: int
    private_key: bytes = field(repr=False, compare=False)
    public_key: bytes

    def __post_init__(self) -> None:
        checked_int(self.epoch, 0, MAX_EPOCH, "a key epoch", InvalidKeyError)
        private_key = exact_bytes(
            self.private_key, GROUP_ELEMENT_SIZE, "a Sphinx private key", InvalidKeyError
        )
        public_key = exact_bytes(
            self.public_key, GROUP_ELEMENT_SIZE, "a Sphinx public key", InvalidKeyError
        )
        if not macs_equal(x25519_public(private_key), public_key):
            raise InvalidKeyError("the Sphinx public key is not the private key's")
        object.__setattr__(self, "private_key", private_key)
        object.__setattr__(self, "public_key", public_key)

    def __repr__(self) -> str:
        return f"SphinxKey(epoch={self.epoch}, public_key={self.public_key[:4].hex()}…)"

    @classmethod
    def generate(cls, epoch: int, *, rng: Rng = os.urandom) -> SphinxKey:
        """A fresh key pair for `epoch`; `rng` is a test hook."""
        private_key, public_key = generate_keypair(rng=rng)
        return cls(epoch, private_key, public_key)

    @classmethod
    def from_private_key(cls, epoch: int, private_key: bytes) -> SphinxKey:
        """The key pair of a stored private key."""
        return cls(epoch, private_key, x25519_public(private_key))


@dataclass(frozen=True, slots=True, repr=False)
class NodeKeys:
    """The keys `unwrap` tries, in order (1 to 8 of them, of distinct epochs)."""

    keys: tuple[SphinxKey, ...]
    _candidates: KeyCandidates = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = self.keys
        if isinstance(keys, SphinxKey) or not isinstance(keys, Iterable):
            raise InvalidKeyError("NodeKeys takes a sequence of SphinxKey values")
        keys = tuple(keys)
        if not 1 <= len(keys) <= MAX_NODE_KEYS:
            raise InvalidKeyError(f"NodeKeys holds 1 to {MAX_NODE_KEYS} keys, not {len(keys)}")
        if not all(isinstance(key, SphinxKey) for key in keys):
            raise InvalidKeyError("NodeKeys holds SphinxKey values only")
        if len({key.epoch for key in keys}) != len(keys):
            raise InvalidKeyError("NodeKeys holds at most one key per epoch")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "_candidates", tuple((k.epoch, k.private_key) for k in keys))

    def __repr__(self) -> str:
        return f"NodeKeys(epochs={self.epochs})"

    def __iter__(self) -> Iterator[SphinxKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def epochs(self) -> tuple[int, ...]:
        return tuple(key.epoch for key in self.keys)

    def candidates(self) -> KeyCandidates:
        return self._candidates


UnwrapKeys = (
    bytes | bytearray | memoryview | SphinxKey | NodeKeys | tuple[SphinxKey, ...] | list[SphinxKey]
)
"""What `unwrap` accepts as `keys`: a bare 32-byte private key, one `SphinxKey`, or several
(a `NodeKeys`, or a tuple or list of `SphinxKey`)."""


def key_candidates(keys: object) -> KeyCandidates:
    """Normalise what `unwrap` was given into the keys to try; `InvalidKeyError` otherwise."""
    if isinstance(keys, NodeKeys):
        return keys.candidates()
    if isinstance(keys, bytes | bytearray | memoryview):
        private_key = exact_bytes(keys, GROUP_ELEMENT_SIZE, "a Sphinx private key", InvalidKeyError)
        return ((None, private_key),)
    if isinstance(keys, SphinxKey):
        return ((keys.epoch, keys.private_key),)
    if isinstance(keys, tuple | list):
        return NodeKeys(tuple(keys)).candidates()
    raise InvalidKeyError(
        f"keys must be a 32-byte private key, a SphinxKey or NodeKeys, not {type(keys).__name__}"
    )
