"""Replay filters: one persistent Bloom filter of replay tags per Sphinx key epoch.

A mix drops a packet whose replay tag (SHA-512/256(α)) it has seen under the same key. The
set of tags lives in a Bloom filter in a file mapped with ``MAP_SHARED``: a bit set by
``add`` is in the kernel's page cache the moment the store instruction retires, so it
survives SIGKILL of the process (the kernel writes the page back on its own). It does not
survive a crash of the machine unless ``flush`` (msync) ran since; the daemon flushes on a
clean stop.

Sizing (the standard optimum for n items at false-positive rate p)::

    m = ceil(-n · ln p / (ln 2)²)   bits, rounded up to whole bytes
    k = round(m / n · ln 2)          hash functions

``DEFAULT_FALSE_POSITIVE_RATE`` is 1e-6 at the expected load: one honest packet in a
million is dropped as a "replay" once the filter holds its expected number of tags. That
is ≈ 28.8 bits and k = 20 per expected tag. A node forwarding 5,000 packets/s whose key
lives 3 epochs of 20 minutes sees n = 5,000 × 3,600 = 18·10⁶ tags, so its filter is
m ≈ 5.18·10⁸ bits: a 61.7 MiB file (written out in full when created), one per live key.

Bit indexes come from BLAKE2b-128 keyed with a random 16-byte salt stored in the file
(enhanced double hashing over its two 64-bit halves), so an attacker who does not know the
salt cannot grind α values whose tags pile onto a few bits to pollute the filter.

File layout (integers big-endian), ``HEADER_SIZE`` bytes of header then ``ceil(m/8)`` bytes::

    magic "TMXBLOOM" 8 | version u16 | k u16 | m u64 | expected items u64 |
    false-positive rate f64 | salt 16 | BLAKE2b-128 of the preceding 60 bytes 16 | zeros
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

Rng = Callable[[int], bytes]

MAGIC = b"TMXBLOOM"
VERSION = 1
HEADER_SIZE = 128
SALT_SIZE = 16
DEFAULT_FALSE_POSITIVE_RATE = 1e-6
MAX_HASHES = 64
MAX_BITS = 1 << 40  # 128 GiB: far beyond any sane load, still a bound on what `open` maps

_FIELDS = struct.Struct(">8sHHQQd16s")
_CHECKSUM_SIZE = 16
_HEADER_USED = _FIELDS.size + _CHECKSUM_SIZE
_FILE_NAME = re.compile(r"replay-(\d+)\.bloom")
_PARTIAL_SUFFIX = ".partial"

assert _HEADER_USED <= HEADER_SIZE


class ReplayFilterError(Exception):
    """A replay filter file is missing, corrupt or truncated, or a filter is misused."""


@dataclass(frozen=True, slots=True)
class BloomParameters:
    """The size of a Bloom filter for `expected_items` at `false_positive_rate`."""

    bits: int
    hashes: int
    expected_items: int
    false_positive_rate: float

    @classmethod
    def for_load(cls, expected_items: int, false_positive_rate: float) -> BloomParameters:
        if not isinstance(expected_items, int) or expected_items < 1:
            raise ReplayFilterError("expected_items must be a positive integer")
        if not 0.0 < false_positive_rate < 1.0:
            raise ReplayFilterError("false_positive_rate must be between 0 and 1 (exclusive)")
        ln2 = math.log(2)
        bits = math.ceil(-expected_items * math.log(false_positive_rate) / (ln2 * ln2))
        bits = -(-bits // 8) * 8
        hashes = min(MAX_HASHES, max(1, round(bits / expected_items * ln2)))
        if bits > MAX_BITS:
            raise ReplayFilterError(f"a filter of {bits} bits is larger than the cap {MAX_BITS}")
        return cls(bits, hashes, expected_items, false_positive_rate)

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + self.bits // 8


def _encode_header(parameters: BloomParameters, salt: bytes) -> bytes:
    fields = _FIELDS.pack(
        MAGIC,
        VERSION,
        parameters.hashes,
        parameters.bits,
        parameters.expected_items,
        parameters.false_positive_rate,
        salt,
    )
    checksum = hashlib.blake2b(fields, digest_size=_CHECKSUM_SIZE).digest()
    return (fields + checksum).ljust(HEADER_SIZE, b"\0")


def _decode_header(header: bytes, file_size: int) -> tuple[BloomParameters, bytes]:
    """Check a header against the file's size; raise `ReplayFilterError` on any defect."""
    if len(header) < HEADER_SIZE:
        raise ReplayFilterError("replay filter file is truncated (shorter than its header)")
    fields = header[: _FIELDS.size]
    magic, version, hashes, bits, expected, rate, salt = _FIELDS.unpack(fields)
    if magic != MAGIC:
        raise ReplayFilterError("not a replay filter file (bad magic)")
    if version != VERSION:
        raise ReplayFilterError(f"unsupported replay filter version {version}")
    checksum = header[_FIELDS.size : _HEADER_USED]
    if hashlib.blake2b(fields, digest_size=_CHECKSUM_SIZE).digest() != checksum:
        raise ReplayFilterError("replay filter header is corrupt (checksum mismatch)")
    if any(header[_HEADER_USED:HEADER_SIZE]):
        raise ReplayFilterError("replay filter header is corrupt (reserved bytes set)")
    if not (1 <= hashes <= MAX_HASHES and 8 <= bits <= MAX_BITS and bits % 8 == 0):
        raise ReplayFilterError("replay filter header is corrupt (impossible m or k)")
    if expected < 1 or not 0.0 < rate < 1.0:
        raise ReplayFilterError("replay filter header is corrupt (impossible sizing)")
    parameters = BloomParameters(bits, hashes, expected, rate)
    if file_size != parameters.file_size:
        raise ReplayFilterError(
            f"replay filter file has {file_size} bytes, its header says {parameters.file_size}"
            " (truncated or corrupt)"
        )
    return parameters, salt


class BloomReplayFilter:
    """A Bloom filter of replay tags in a memory-mapped file. One process writes a file."""

    __slots__ = ("_bits", "_closed", "_file", "_hashes", "_map", "_parameters", "_salt", "path")

    def __init__(self, path: Path, file: BinaryIO, mapped: mmap.mmap, header: bytes) -> None:
        """Use `create` or `open`."""
        parameters, salt = _decode_header(header, len(mapped))
        self.path = path
        self._file = file
        self._map = mapped
        self._parameters = parameters
        self._salt = salt
        self._bits = parameters.bits
        self._hashes = parameters.hashes
        self._closed = False

    def __repr__(self) -> str:
        return f"BloomReplayFilter({self.path.name!r}, {self._parameters.bits} bits)"

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        expected_items: int,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
        rng: Rng = os.urandom,
    ) -> BloomReplayFilter:
        """A new, empty filter at `path` (which must not exist). The file appears complete
        or not at all: it is written beside `path`, synced, then renamed into place."""
        path = Path(path)
        parameters = BloomParameters.for_load(expected_items, false_positive_rate)
        salt = rng(SALT_SIZE)
        if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
            raise ReplayFilterError(f"rng must return {SALT_SIZE} bytes")
        if path.exists():
            raise ReplayFilterError(f"a replay filter already exists at {path}")
        partial = path.with_name(path.name + _PARTIAL_SUFFIX)
        with open(partial, "wb") as out:
            out.write(_encode_header(parameters, salt))
            # Written out, not sparse: a write fault on a hole makes the file system allocate
            # a block under the packet path (measured: stalls of up to 50 ms per packet).
            zeros = bytes(1 << 20)
            left = parameters.file_size - HEADER_SIZE
            while left > 0:
                left -= out.write(zeros[: min(left, len(zeros))])
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
        _fsync_directory(path.parent)
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> BloomReplayFilter:
        """Map an existing filter; a missing, truncated or corrupt file is a `ReplayFilterError`."""
        path = Path(path)
        try:
            file = open(path, "r+b")  # noqa: SIM115 -- owned by the filter until close()
        except OSError as error:
            raise ReplayFilterError(
                f"cannot open replay filter {path}: {error.strerror}"
            ) from error
        try:
            size = os.fstat(file.fileno()).st_size
            if size < HEADER_SIZE:
                raise ReplayFilterError("replay filter file is truncated (shorter than its header)")
            mapped = mmap.mmap(file.fileno(), size, flags=mmap.MAP_SHARED)
            if hasattr(mmap, "MADV_WILLNEED"):
                mapped.madvise(mmap.MADV_WILLNEED)  # read it in now, not one fault per packet
            try:
                return cls(path, file, mapped, mapped[:HEADER_SIZE])
            except BaseException:
                mapped.close()
                raise
        except BaseException:
            file.close()
            raise

    @property
    def parameters(self) -> BloomParameters:
        return self._parameters

    def _start(self, tag: bytes) -> tuple[int, int]:
        """The first index and step of the tag's enhanced double hashing."""
        if self._closed:
            raise ReplayFilterError("the replay filter is closed")
        if not isinstance(tag, bytes) or not tag:
            raise ReplayFilterError("a replay tag must be non-empty bytes")
        digest = hashlib.blake2b(tag, key=self._salt, digest_size=16).digest()
        m = self._bits
        return int.from_bytes(digest[:8], "big") % m, int.from_bytes(digest[8:], "big") % m

    def __contains__(self, tag: object) -> bool:
        x, y = self._start(tag)  # type: ignore[arg-type]
        mapped, m = self._map, self._bits
        for i in range(self._hashes):
            if not mapped[HEADER_SIZE + (x >> 3)] & (1 << (x & 7)):
                return False
            x = (x + y) % m
            y = (y + i) % m
        return True

    def add(self, tag: bytes) -> bool:
        """Set the tag's bits; True if they were all set already (probably seen before)."""
        x, y = self._start(tag)
        mapped, m = self._map, self._bits
        present = True
        for i in range(self._hashes):
            offset = HEADER_SIZE + (x >> 3)
            bit = 1 << (x & 7)
            byte = mapped[offset]
            if not byte & bit:
                present = False
                mapped[offset] = byte | bit
            x = (x + y) % m
            y = (y + i) % m
        return present

    def flush(self) -> None:
        """msync the map: what was added survives a machine crash too (SIGKILL needs nothing)."""
        if not self._closed:
            self._map.flush()

    def close(self) -> None:
        """Flush and unmap; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._map.flush()
        finally:
            self._map.close()
            self._file.close()


class ReplayFilters:
    """One `BloomReplayFilter` per Sphinx key epoch, as ``replay-<epoch>.bloom`` in `directory`.

    ``seen`` is the ``is_replay`` the Sphinx unwrap calls right after the MAC check; after a
    packet is accepted the node calls ``record`` with the epoch of the key that opened it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        expected_items: int,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
        rng: Rng = os.urandom,
    ) -> None:
        BloomParameters.for_load(expected_items, false_positive_rate)  # validate early
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._expected_items = expected_items
        self._false_positive_rate = false_positive_rate
        self._rng = rng
        self._filters: dict[int, BloomReplayFilter] = {}

    def __repr__(self) -> str:
        return f"ReplayFilters(epochs={sorted(self._filters)})"

    def path_for(self, epoch: int) -> Path:
        if not isinstance(epoch, int) or epoch < 0:
            raise ReplayFilterError("an epoch is a non-negative integer")
        return self.directory / f"replay-{epoch}.bloom"

    @property
    def epochs(self) -> list[int]:
        """The epochs whose filters are open, in order."""
        return sorted(self._filters)

    def prepare(self, epoch: int) -> None:
        """Create `epoch`'s filter file if it does not exist, without opening it: writing a
        large filter out takes a while, so the node does this in a worker thread, and
        `ensure` then only opens it. Touches nothing but the file system."""
        path = self.path_for(epoch)
        if not path.exists():
            BloomReplayFilter.create(
                path,
                expected_items=self._expected_items,
                false_positive_rate=self._false_positive_rate,
                rng=self._rng,
            ).close()

    def ensure(self, epoch: int) -> BloomReplayFilter:
        """The filter of `epoch`'s key: already open, reopened from disk, or created."""
        existing = self._filters.get(epoch)
        if existing is not None:
            return existing
        path = self.path_for(epoch)
        if path.exists():
            replay_filter = BloomReplayFilter.open(path)
        else:
            replay_filter = BloomReplayFilter.create(
                path,
                expected_items=self._expected_items,
                false_positive_rate=self._false_positive_rate,
                rng=self._rng,
            )
        self._filters[epoch] = replay_filter
        return replay_filter

    def seen(self, tag: bytes, epoch: int | None = None) -> bool:
        """True if any live key's filter (probably) holds `tag`. With `epoch`, only that
        key's filter is asked (a third of the cost with three live keys): a replay must pass
        the MAC under the same key, so that filter is the one that counts."""
        if epoch is None:
            return any(tag in replay_filter for replay_filter in self._filters.values())
        return tag in self._open(epoch)

    def record(self, tag: bytes, epoch: int) -> bool:
        """Add `tag` to the filter of `epoch`'s key (which `ensure` opened); True if it was
        probably there already."""
        return self._open(epoch).add(tag)

    def _open(self, epoch: int) -> BloomReplayFilter:
        replay_filter = self._filters.get(epoch)
        if replay_filter is None:
            raise ReplayFilterError(f"no replay filter is open for epoch {epoch}")
        return replay_filter

    def retire_before(self, epoch: int) -> list[int]:
        """Close and delete the filters of keys older than `epoch`, open or left on disk by
        an earlier run (and any half-created file). Returns the epochs retired."""
        retired = set()
        for old in [e for e in self._filters if e < epoch]:
            self._filters.pop(old).close()
            retired.add(old)
        for path in self.directory.iterdir():
            name = path.name.removesuffix(_PARTIAL_SUFFIX)
            match = _FILE_NAME.fullmatch(name)
            if match is None or int(match.group(1)) >= epoch:
                continue
            path.unlink(missing_ok=True)
            if path.name == name:
                retired.add(int(match.group(1)))
        _fsync_directory(self.directory)
        return sorted(retired)

    def flush(self) -> None:
        for replay_filter in self._filters.values():
            replay_filter.flush()

    def close(self) -> None:
        while self._filters:
            self._filters.popitem()[1].close()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
