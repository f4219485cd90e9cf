"""Key files: a secret as hex text, created with mode 0600 (never through a symbolic link)
and refused when others can read them. Authorities keep their Ed25519 seed this way; nodes
(mixnode.key_ring) keep their link and Sphinx keys with the same functions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from directory.errors import ConfigError
from directory.signatures import SEED_SIZE, SigningKey


def write_secret_file(
    path: Path,
    secret: bytes,
    *,
    overwrite: bool = False,
    error: type[Exception] = ConfigError,
) -> None:
    """Write `secret` as hex to a new file readable by its owner only. A symbolic link at
    `path` is refused, also with `overwrite`: the key would land wherever it points."""
    if path.is_symlink():
        raise error(f"{path} is a symbolic link; refusing to write a key through it")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise error(f"{path} exists; refusing to overwrite a key") from None
    except OSError as problem:
        raise error(f"cannot write key file {path}: {problem.strerror}") from None
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, secret.hex().encode() + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_secret_file(
    path: Path, size: int, *, what: str = "key", error: type[Exception] = ConfigError
) -> bytes:
    """Read a secret written by `write_secret_file`: `size` bytes, or `error`."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as problem:
        raise error(f"cannot read key file {path}: {problem.strerror}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        text = os.read(descriptor, 4 * size + 8).decode("ascii", "replace").strip()
    finally:
        os.close(descriptor)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"key file {path} is accessible by others; chmod 600 it")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise error(f"key file {path} does not hold a hex {what}") from None
    if len(secret) != size:
        raise error(f"key file {path} does not hold a {size}-byte {what}")
    return secret


def write_key_file(path: Path, key: SigningKey, *, overwrite: bool = False) -> None:
    """Write an Ed25519 key's seed (see `write_secret_file`)."""
    write_secret_file(path, key.seed, overwrite=overwrite)


def read_key_file(path: Path) -> SigningKey:
    """Read a key file written by `write_key_file`."""
    return SigningKey.from_seed(read_secret_file(path, SEED_SIZE, what="seed"))
