"""The exceptions of the packet format. Malformed input raises a `SphinxError` subclass.

Every `SphinxError` has two attributes a mix node uses to account for a refused packet:

- `replay_tag`: `None` when the error was raised before the header MAC verified (the packet
  is not known to be for this node, so there is nothing to remember); otherwise the packet's
  replay tag, SHA-512/256(α), so that the node can record α of a packet it refused.
- `key_epoch`: the epoch of the `SphinxKey` whose MAC verified, or `None` (before the MAC, or
  when `unwrap` was given a bare private key).

No message ever holds key material, packet bytes or ids: only sizes, counts, types and
command names.
"""

from __future__ import annotations


class SphinxError(Exception):
    """Base of every error the packet format raises."""

    replay_tag: bytes | None
    key_epoch: int | None

    def __init__(
        self, message: str, *, replay_tag: bytes | None = None, key_epoch: int | None = None
    ) -> None:
        super().__init__(message)
        self.replay_tag = replay_tag
        self.key_epoch = key_epoch


class GeometryError(SphinxError):
    """A geometry is invalid, or an input does not fit it."""


class InvalidPacketError(SphinxError):
    """A packet, header or payload has the wrong type, size or a malformed field."""


class InvalidMACError(SphinxError):
    """The header MAC does not verify: tampered header, or not for any of the keys given."""


class InvalidCommandError(SphinxError):
    """The routing commands of a hop are malformed or do not make sense together."""


class PayloadTagError(SphinxError):
    """The payload's zero tag is wrong: the payload was tampered with (or other keys)."""


class InvalidKeyError(SphinxError):
    """A key or group element is malformed or of low order."""


class PathError(SphinxError):
    """A path does not fit the geometry or breaks the command rules. `hop_index` is the
    0-based index of the offending hop, or `None` when the path as a whole is wrong."""

    hop_index: int | None

    def __init__(self, message: str, *, hop_index: int | None = None) -> None:
        if hop_index is not None:
            message = f"path hop {hop_index}: {message}"
        super().__init__(message)
        self.hop_index = hop_index


class InvalidSURBError(SphinxError):
    """A SURB or its keys are malformed, or the keys do not belong to the SURB id."""


class ReplayError(SphinxError):
    """`unwrap`'s `is_replay` callback recognised the packet's replay tag."""


class DelayTooLongError(SphinxError):
    """A hop's `NodeDelay` exceeds the `max_delay_ms` the caller gave `unwrap`."""


class InvalidArgumentError(SphinxError):
    """An option of a call (not packet, key, path, SURB or geometry data) has the wrong type
    or value, such as `max_delay_ms` or `is_replay`."""
