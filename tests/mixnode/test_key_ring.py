"""Node key files: Sphinx keys generated ahead, persisted, rotated; link keys; no leaks."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from mixnode.key_ring import (
    KeyFileError,
    LinkKey,
    SphinxKeyRing,
    read_secret_file,
    write_secret_file,
)


def test_keys_are_generated_ahead_persisted_and_retired(tmp_path: Path) -> None:
    rng = random.Random(3)
    ring = SphinxKeyRing(tmp_path / "keys", rng=rng.randbytes)
    ring.ensure(10, 4)
    assert ring.epochs() == (10, 11, 12, 13)
    published = ring.public_keys(10)
    assert len(published) == 3
    for path in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = SphinxKeyRing(tmp_path / "keys")
    assert reopened.public_keys(10) == published
    keys = reopened.node_keys(11)
    assert [k.epoch for k in keys.keys] == [11, 10, 12]
    reopened.retire_before(11)
    assert reopened.epochs() == (11, 12, 13)
    assert not (tmp_path / "keys" / "10.key").exists()
    assert all(k.private_key.hex() not in repr(keys) for k in keys.keys)


def test_secret_files_refuse_overwrite_symlinks_and_loose_modes(tmp_path: Path) -> None:
    secret = os.urandom(32)
    path = tmp_path / "link.key"
    write_secret_file(path, secret)
    assert read_secret_file(path) == secret
    with pytest.raises(KeyFileError, match="exists"):
        write_secret_file(path, secret)
    target = tmp_path / "elsewhere"
    (tmp_path / "sneaky.key").symlink_to(target)
    with pytest.raises(KeyFileError):
        write_secret_file(tmp_path / "sneaky.key", secret)
    assert not target.exists()
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600") as raised:
        read_secret_file(path)
    assert secret.hex() not in str(raised.value)
    bad = tmp_path / "bad.key"
    write_secret_file(bad, b"short")
    with pytest.raises(KeyFileError, match="32-byte"):
        read_secret_file(bad)


def test_link_key_repr_shows_no_secret() -> None:
    key = LinkKey.generate()
    assert key.private_key.hex() not in repr(key)
    assert key.private_key.hex()[:16] not in repr(key)
