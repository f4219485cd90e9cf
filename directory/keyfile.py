"""Ed25519 key files: the 32-byte seed as hex text, created with mode 0600 and refused when
others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from directory.errors import ConfigError
from directory.signatures import SEED_SIZE, SigningKey


def write_key_file(path: Path, key: SigningKey, *, overwrite: bool = False) -> None:
    """Write `key`'s seed to a new file readable by its owner only. A symbolic link at
    `path` is refused, also with `overwrite`: the key would land wherever it points."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; refusing to write a key through it")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; refusing to overwrite a key") from None
    except OSError as error:
        raise ConfigError(f"cannot write key file {path}: {error.strerror}") from None
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, key.seed.hex().encode() + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_key_file(path: Path) -> SigningKey:
    """Read a key file written by `write_key_file`."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read key file {path}: {error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"key file {path} is accessible by others; chmod 600 it")
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"key file {path} does not hold a hex seed") from None
    if len(seed) != SEED_SIZE:
        raise ConfigError(f"key file {path} does not hold a {SEED_SIZE}-byte seed")
    return SigningKey.from_seed(seed)
