"""The canonical encoding of directory documents: msgpack over fixed-order arrays.

Documents use only arrays, unsigned integers, byte strings and UTF-8 strings. msgpack
always packs these in their shortest form, so an object has exactly one encoding; `unpack`
enforces this by re-encoding what it decoded and comparing, which rejects non-minimal
integers, maps, floats and any other second spelling of the same value.

The `field_*` helpers check the type and range of one decoded field and raise
`MalformedDocumentError` naming the field; they reject `bool` where an integer is expected.
"""

from __future__ import annotations

import re
from typing import Any

import msgpack  # type: ignore[import-untyped]

from directory.errors import (
    DocumentTooLargeError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
)

UINT64_MAX = (1 << 64) - 1
MAX_EPOCH = (1 << 63) - 1
"""The largest epoch number a document may carry (what SQLite's signed 64-bit integers hold)."""


def pack(obj: Any) -> bytes:
    """The canonical encoding of a tree of lists, ints, bytes and strs."""
    encoded: bytes = msgpack.packb(obj, use_bin_type=True)
    return encoded


def unpack(data: bytes, *, what: str, max_size: int, check_canonical: bool = True) -> Any:
    """Decode canonical msgpack `data` of at most `max_size` bytes; `what` names the document
    in error messages. With `check_canonical=False` the caller checks the form itself."""
    if not isinstance(data, bytes):
        raise MalformedDocumentError(f"{what}: expected bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise DocumentTooLargeError(f"{what}: {len(data)} bytes, more than the limit of {max_size}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_map_len=0,  # documents have no maps
            max_ext_len=0,  # nor extension types
        )
    except Exception as error:  # msgpack raises many types; all mean "not a document"
        raise MalformedDocumentError(
            f"{what}: not valid msgpack ({type(error).__name__})"
        ) from None
    if not check_canonical:
        return obj
    try:
        again = pack(obj)
    except Exception:  # an object msgpack can read but not write back
        raise NonCanonicalEncodingError(f"{what}: not in canonical encoding") from None
    if again != data:
        raise NonCanonicalEncodingError(f"{what}: not in canonical encoding")
    return obj


def array_header(length: int) -> bytes:
    """The canonical msgpack header of an array of `length` elements."""
    if length < 16:
        return bytes([0x90 | length])
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def bin_header(length: int) -> bytes:
    """The canonical msgpack header of a byte string of `length` bytes."""
    if length < 1 << 8:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 1 << 16:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def field_array(
    value: Any, what: str, size: int | None = None, *, max_size: int | None = None
) -> list[Any]:
    """An array, of exactly `size` elements or at most `max_size`."""
    if type(value) is not list:
        raise MalformedDocumentError(f"{what}: expected an array")
    if size is not None and len(value) != size:
        raise MalformedDocumentError(f"{what}: expected {size} elements, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise MalformedDocumentError(f"{what}: more than {max_size} elements")
    return value


def field_bytes(value: Any, what: str, size: int) -> bytes:
    """A byte string of exactly `size` bytes."""
    if type(value) is not bytes or len(value) != size:
        raise MalformedDocumentError(f"{what}: expected {size} bytes")
    return value


def field_blob(value: Any, what: str, max_size: int) -> bytes:
    """A byte string of at most `max_size` bytes."""
    if type(value) is not bytes or len(value) > max_size:
        raise MalformedDocumentError(f"{what}: expected at most {max_size} bytes")
    return value


def field_epoch(value: Any, what: str) -> int:
    """An epoch number: an integer in [0, MAX_EPOCH]."""
    return field_int(value, what, 0, MAX_EPOCH)


def field_int(value: Any, what: str, low: int = 0, high: int = UINT64_MAX) -> int:
    """An integer in [low, high]."""
    if type(value) is not int or not low <= value <= high:
        raise MalformedDocumentError(f"{what}: expected an integer in [{low}, {high}]")
    return value


def field_str(
    value: Any, what: str, max_length: int, pattern: re.Pattern[str] | None = None
) -> str:
    """A non-empty string of at most `max_length` characters, matching `pattern` if given."""
    if type(value) is not str or not 1 <= len(value) <= max_length:
        raise MalformedDocumentError(f"{what}: expected a string of 1 to {max_length} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise MalformedDocumentError(f"{what}: contains characters that are not allowed")
    return value


def field_tag(value: Any, what: str, expected: str) -> None:
    """The type tag at the front of every document."""
    if type(value) is not str or value != expected:
        raise MalformedDocumentError(f"{what}: expected type tag {expected!r}")
