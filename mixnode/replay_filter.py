"""Replay filters: one persistent Bloom filter of replay tags per Sphinx key epoch.

A mix drops a packet whose replay tag (SHA-512/256(α)) it has seen under the same key. The
set of tags lives in a Bloom filter in a file mapped with ``MAP_SHARED``: a bit set by
``add`` is in the kernel's page cache the moment the store instruction retires, so it
survives SIGKILL of the process (the kernel writes the page back on its own). It does not
survive a crash of the machine unless ``flush`` (msync) ran since; the daemon flushes on a
clean stop.

The filter is *blocked* (Putze, Sanders and Singler, "Cache-, hash- and space-efficient
Bloom filters", 2007): a tag's k bits all lie in one 512-bit block, a single cache line, so
checking and recording a tag costs one memory access instead of k. (With k bits spread over a
filter of tens of MiB, each of them is a cache and TLB miss: about 0.25 µs apiece on the
2-core VM, 11 µs per packet for 2 × 20 of them, against under 1 µs for one block.)

Sizing: for n expected items in b blocks of B = 512 bits the false-positive rate is

    p(b, k) = Σ_i Poisson(i; n / b) · (1 − (1 − 1/B)^(k·i))^k

(a block holds Poisson(n/b) items; the rest is the classic estimate for one block). The
filter takes the fewest blocks b, with the best k for them (1 ≤ k ≤ 28), for which p(b, k)
is at most the target. The price of locality is memory: at the default rate of 1e-6 it takes
38.5 bits per expected tag with k = 16, against 28.8 bits and k = 20 for a filter without
blocks. A node forwarding 5,000 packets/s whose key lives 3 epochs of 20 minutes sees
n = 5,000 × 3,600 = 18·10⁶ tags, so its filter is 1,353,972 blocks: an 82.6 MiB file
(written out in full when created), one per live key.

The block and the bits come from BLAKE2b-512 keyed with a random 16-byte salt stored in the
file, read as little-endian integers: the first 64 bits modulo b choose the block, then
the low 9 bits of each of the next k 16-bit words choose a bit in it (bit j of a block is
bit j mod 8 of its byte j div 8). An attacker who does not know the salt cannot grind α
values whose tags pile onto a few bits to pollute the filter.

File layout (header integers big-endian), ``HEADER_SIZE`` bytes of header, then the b blocks
of 64 bytes (m = 512·b bits)::

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
VERSION = 2
"""Version 1 spread a tag's bits over the whole filter; its files are refused."""
HEADER_SIZE = 128
SALT_SIZE = 16
DEFAULT_FALSE_POSITIVE_RATE = 1e-6
BLOCK_BITS = 512
BLOCK_BYTES = BLOCK_BITS // 8
MAX_HASHES = 28
"""k 16-bit words after the 64-bit block index fill the 512-bit digest."""
MAX_BITS = 1 << 40  # 128 GiB: far beyond any sane load, still a bound on what `open` maps

_DIGEST = struct.Struct("<Q28H")

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
    """The size of a blocked Bloom filter for `expected_items` at `false_positive_rate`:
    `bits` (a multiple of 512) and `hashes` (k, the bits set per tag)."""

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
        unblocked = -expected_items * math.log(false_positive_rate) / (ln2 * ln2)
        low = high = max(1, math.ceil(unblocked / BLOCK_BITS))
        while _best_hashes(expected_items / high)[0] > false_positive_rate:
            if high * BLOCK_BITS > MAX_BITS:
                raise ReplayFilterError(f"a filter of over {MAX_BITS} bits would be needed")
            low, high = high, high * 2
        while low < high:  # the fewest blocks that reach the rate
            middle = (low + high) // 2
            if _best_hashes(expected_items / middle)[0] <= false_positive_rate:
                high = middle
            else:
                low = middle + 1
        bits = high * BLOCK_BITS
        if bits > MAX_BITS:
            raise ReplayFilterError(f"a filter of {bits} bits is larger than the cap {MAX_BITS}")
        return cls(
            bits,
            _best_hashes(expected_items / high)[1],
            expected_items,
            false_positive_rate,
        )

    @property
    def blocks(self) -> int:
        return self.bits // BLOCK_BITS

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + self.bits // 8


def blocked_false_positive_rate(items_per_block: float, hashes: int) -> float:
    """p(b, k) of the module docstring for n / b = `items_per_block` and k = `hashes`."""
    if items_per_block <= 0:
        return 0.0
    spread = math.sqrt(items_per_block)
    first = max(0, int(items_per_block - 12 * spread - 10))
    last = int(items_per_block + 12 * spread + 30)
    unset = 1.0 - 1.0 / BLOCK_BITS
    log_rate = math.log(items_per_block)
    total = 0.0
    for i in range(first, last + 1):
        weight = math.exp(-items_per_block + i * log_rate - math.lgamma(i + 1))
        total += weight * (1.0 - unset ** (hashes * i)) ** hashes
    return total


def _best_hashes(items_per_block: float) -> tuple[float, int]:
    """The lowest p(b, k) over k = 1 … MAX_HASHES, and that k."""
    return min(
        (blocked_false_positive_rate(items_per_block, k), k) for k in range(1, MAX_HASHES + 1)
    )


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
    if not (
        1 <= hashes <= MAX_HASHES and BLOCK_BITS <= bits <= MAX_BITS and bits % BLOCK_BITS == 0
    ):
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

    __slots__ = (
        "_blocks",
        "_closed",
        "_file",
        "_hashes",
        "_last",
        "_map",
        "_parameters",
        "_salt",
        "path",
    )

    def __init__(self, path: Path, file: BinaryIO, mapped: mmap.mmap, header: bytes) -> None:
        """Use `create` or `open`."""
        parameters, salt = _decode_header(header, len(mapped))
        self.path = path
        self._file = file
        self._map = mapped
        self._parameters = parameters
        self._salt = salt
        self._blocks = parameters.blocks
        self._hashes = parameters.hashes
        # The last tag's block offset and bit mask: a node asks for a tag, then records it.
        self._last: tuple[bytes, int, int] = (b"", 0, 0)
        self._closed = False

    def __repr__(self) -> str:
        return f"BloomReplayFilter({self.path.name!r}, {self._parameters.blocks} blocks)"

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

    def _block_and_mask(self, tag: bytes) -> tuple[int, int]:
        """The file offset of the tag's block, and its k bits in that block as an int."""
        if self._closed:
            raise ReplayFilterError("the replay filter is closed")
        if not isinstance(tag, bytes) or not tag:
            raise ReplayFilterError("a replay tag must be non-empty bytes")
        last_tag, offset, mask = self._last
        if tag == last_tag:
            return offset, mask
        words = _DIGEST.unpack(hashlib.blake2b(tag, key=self._salt, digest_size=64).digest())
        offset = HEADER_SIZE + words[0] % self._blocks * BLOCK_BYTES
        mask = 0
        for word in words[1 : self._hashes + 1]:
            mask |= 1 << (word & (BLOCK_BITS - 1))
        self._last = (tag, offset, mask)
        return offset, mask

    def __contains__(self, tag: object) -> bool:
        offset, mask = self._block_and_mask(tag)  # type: ignore[arg-type]
        block = int.from_bytes(self._map[offset : offset + BLOCK_BYTES], "little")
        return block & mask == mask

    def add(self, tag: bytes) -> bool:
        """Set the tag's bits; True if they were all set already (probably seen before)."""
        offset, mask = self._block_and_mask(tag)
        end = offset + BLOCK_BYTES
        block = int.from_bytes(self._map[offset:end], "little")
        if block & mask == mask:
            return True
        # Every byte written holds its old bits and maybe more: a SIGKILL halfway through
        # leaves a block that still holds every tag recorded before.
        self._map[offset:end] = (block | mask).to_bytes(BLOCK_BYTES, "little")
        return False

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
