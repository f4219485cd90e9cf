"""The relay index: which votes an authority held when the votes closed.

After the vote deadline every authority serves this index (`GET /v1/relay/{epoch}`) and the
votes in it (`GET /v1/vote/{epoch}/{digest}`); the others fetch the votes they lack or hold
in another version. A vote is signed by its author, so any authority can serve it, and two
different ones by one author are evidence of equivocation.

Encoding: `["trimix-relay-index-v1", epoch, [[authority_key, digest(vote)], ...]]`, in
ascending order, at most two entries per authority (a second one is the equivocation).
"""

from __future__ import annotations

from collections.abc import Iterable

from directory.canonical import (
    field_array,
    field_bytes,
    field_epoch,
    field_tag,
    pack,
    unpack,
)
from directory.errors import MalformedDocumentError
from directory.signatures import MAX_AUTHORITIES, PUBLIC_KEY_SIZE

RELAY_INDEX_TAG = "trimix-relay-index-v1"
DIGEST_SIZE = 32
MAX_RELAY_ENTRIES = 2 * MAX_AUTHORITIES
MAX_RELAY_INDEX_SIZE = 64 + MAX_RELAY_ENTRIES * 72


def encode_relay_index(epoch: int, entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The index of `(authority_key, vote digest)` pairs."""
    return pack([RELAY_INDEX_TAG, epoch, sorted([key, d] for key, d in entries)])


def decode_relay_index(data: bytes, epoch: int) -> list[tuple[bytes, bytes]]:
    body = unpack(data, what="relay index", max_size=MAX_RELAY_INDEX_SIZE)
    field_array(body, "relay index", 3)
    field_tag(body[0], "relay index", RELAY_INDEX_TAG)
    if field_epoch(body[1], "relay index epoch") != epoch:
        raise MalformedDocumentError(f"relay index: not for epoch {epoch}")
    entries = []
    for entry in field_array(body[2], "relay index entries", max_size=MAX_RELAY_ENTRIES):
        field_array(entry, "relay index entry", 2)
        entries.append(
            (
                field_bytes(entry[0], "relay index key", PUBLIC_KEY_SIZE),
                field_bytes(entry[1], "relay index digest", DIGEST_SIZE),
            )
        )
    return entries
