"""`Equivocation`: evidence that an authority signed two different votes for one epoch.

Encoding: `["trimix-equivocation-v1", vote_a, vote_b]`, the two votes' canonical bytes as
byte strings, `vote_a < vote_b`. Anyone holding the pinned keys can check it: both votes
verify, are by the same authority, for the same epoch, and differ. An authority holding such
evidence leaves that authority's votes out of the epoch (`directory.compute`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from directory.canonical import field_array, field_blob, field_tag, pack, unpack
from directory.errors import MalformedDocumentError
from directory.vote import MAX_VOTE_SIZE, decode_vote

EQUIVOCATION_TAG = "trimix-equivocation-v1"
MAX_EQUIVOCATION_SIZE = 2 * MAX_VOTE_SIZE + 64


@dataclass(frozen=True, slots=True)
class Equivocation:
    epoch: int
    authority_key: bytes
    first: bytes = field(repr=False)
    second: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return pack([EQUIVOCATION_TAG, self.first, self.second])


def equivocation(
    one: bytes, other: bytes, *, authorities: Collection[bytes] | None = None
) -> Equivocation:
    """Evidence from two votes (`MalformedDocumentError` if they are not two different,
    valid votes by one authority for one epoch)."""
    first, second = sorted((one, other))
    if first == second:
        raise MalformedDocumentError("equivocation: the two votes are the same")
    a = decode_vote(first, authorities=authorities)
    b = decode_vote(second, authorities=authorities)
    if a.authority_key != b.authority_key or a.epoch != b.epoch:
        raise MalformedDocumentError("equivocation: the votes are by two authorities or epochs")
    return Equivocation(a.epoch, a.authority_key, first, second)


def decode_equivocation(
    data: bytes, *, authorities: Collection[bytes] | None = None
) -> Equivocation:
    """Decode and check equivocation evidence."""
    body = unpack(data, what="equivocation", max_size=MAX_EQUIVOCATION_SIZE)
    field_array(body, "equivocation", 3)
    field_tag(body[0], "equivocation", EQUIVOCATION_TAG)
    first = field_blob(body[1], "equivocation vote", MAX_VOTE_SIZE)
    second = field_blob(body[2], "equivocation vote", MAX_VOTE_SIZE)
    if not first < second:
        raise MalformedDocumentError("equivocation: the votes are not in order")
    return equivocation(first, second, authorities=authorities)
