"""A node's keys on disk: the X25519 link key, and the Sphinx key of each epoch.

Every key is a file holding its 32 bytes as hex, created with mode 0600 (never through a
symbolic link) and refused when others can read it. Sphinx keys are generated ahead: the
descriptor uploaded for epoch e publishes the keys of e, e+1 and e+2, and a key is written
to disk before it is published, so a node killed and restarted never loses a key that clients
may still use. A node unwraps with the keys of the previous, current and next epoch (packets
in flight across a boundary, clients whose clock runs ahead) and deletes older ones, together
with their replay filters (`ReplayFilters.retire_before`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from directory import keyfile
from directory.errors import ConfigError
from sphinx_packets import NodeKeys, SphinxKey
from sphinx_packets.primitives import x25519_public

KEY_SIZE = 32
SPHINX_KEY_DIR = "sphinx-keys"
KEYS_PUBLISHED_AHEAD = 3
"""A descriptor for epoch e holds the Sphinx keys of e, e+1 and e+2."""

Rng = Callable[[int], bytes]


class KeyFileError(ConfigError):
    """A key file is missing, unreadable, malformed or readable by others."""


def write_secret_file(path: Path, secret: bytes, *, overwrite: bool = False) -> None:
    """Write `secret` as hex to a new file readable by its owner only (no symlinks)."""
    keyfile.write_secret_file(path, secret, overwrite=overwrite, error=KeyFileError)


def read_secret_file(path: Path, size: int = KEY_SIZE) -> bytes:
    """Read a key written by `write_secret_file`."""
    return keyfile.read_secret_file(path, size, error=KeyFileError)


class LinkKey:
    """A node's (or client's) static X25519 key for Noise links."""

    __slots__ = ("_private", "public_key")

    def __init__(self, private_key: bytes) -> None:
        if len(private_key) != KEY_SIZE:
            raise KeyFileError("a link key is 32 bytes")
        self._private = bytes(private_key)
        self.public_key = x25519_public(self._private)

    @classmethod
    def generate(cls, *, rng: Rng = os.urandom) -> LinkKey:
        return cls(rng(KEY_SIZE))

    @property
    def private_key(self) -> bytes:
        return self._private

    def __repr__(self) -> str:
        return f"LinkKey(public_key={self.public_key.hex()[:16]}…)"


class SphinxKeyRing:
    """The Sphinx keys of consecutive epochs, one file each in `directory`."""

    def __init__(self, directory: Path, *, rng: Rng = os.urandom) -> None:
        self.directory = directory
        self._rng = rng
        self._keys: dict[int, SphinxKey] = {}
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in directory.glob("*.key"):
            if path.stem.isdigit():
                epoch = int(path.stem)
                self._keys[epoch] = _sphinx_key(epoch, read_secret_file(path))

    def ensure(self, first_epoch: int, count: int = KEYS_PUBLISHED_AHEAD) -> None:
        """Generate and persist the keys of `first_epoch` … `first_epoch + count - 1` that
        do not exist yet."""
        for epoch in range(first_epoch, first_epoch + count):
            if epoch not in self._keys:
                key = SphinxKey.generate(epoch, rng=self._rng)
                write_secret_file(self._path(epoch), key.private_key)
                self._keys[epoch] = key

    def public_keys(self, first_epoch: int, count: int = KEYS_PUBLISHED_AHEAD) -> tuple[bytes, ...]:
        """The public keys a descriptor for `first_epoch` publishes (`ensure` them first)."""
        return tuple(self._keys[e].public_key for e in range(first_epoch, first_epoch + count))

    def node_keys(self, epoch: int) -> NodeKeys:
        """The keys to unwrap with during `epoch`: current first, then previous and next."""
        order = (epoch, epoch - 1, epoch + 1)
        return NodeKeys(tuple(self._keys[e] for e in order if e in self._keys))

    def epochs(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def retire_before(self, epoch: int) -> None:
        """Delete the keys of epochs before `epoch`."""
        for old in [e for e in self._keys if e < epoch]:
            del self._keys[old]
            self._path(old).unlink(missing_ok=True)

    def _path(self, epoch: int) -> Path:
        return self.directory / f"{epoch}.key"


def _sphinx_key(epoch: int, private_key: bytes) -> SphinxKey:
    return SphinxKey(epoch=epoch, private_key=private_key, public_key=x25519_public(private_key))
