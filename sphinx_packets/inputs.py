"""Checks on what callers pass in: bytes-like values of a fixed size, and integers.

`bytes`, `bytearray` and `memoryview` are accepted alike and returned as `bytes`. Anything
else (None, str, int, float, bool, ...) raises the `SphinxError` subclass the caller names.
Messages name the type and the size, never the value: a value may be a key.
"""

from __future__ import annotations

from sphinx_packets.errors import SphinxError


def exact_bytes(data: object, size: int, what: str, error: type[SphinxError]) -> bytes:
    """`data` as bytes if it is bytes-like and exactly `size` bytes long; else `error`."""
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise error(f"{what} must be bytes, not {type(data).__name__}")
        data = bytes(data)
    if len(data) != size:
        raise error(f"{what} must be {size} bytes, not {len(data)}")
    return data


def checked_int(value: object, low: int, high: int, what: str, error: type[SphinxError]) -> int:
    """`value` if it is an `int` (not a bool) in `[low, high]`; else `error`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise error(f"{what} must be between {low} and {high}, not {value}")
    return value
