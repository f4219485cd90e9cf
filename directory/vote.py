"""`Vote`: one authority's view of the network for an epoch, signed by that authority.

Encoding (docs/SPEC.md §2): `[body, signature]` where `body` is the fixed-order array

    ["trimix-vote-v1", epoch, authority_key, parameters, geometry_hash, [descriptor, ...]]

`parameters` is the array of `Parameters`; each descriptor is embedded as its own
`[body, signature]` array, and they are sorted by node id, one per node. `signature` is the
authority's Ed25519 signature of the canonical bytes of `body`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from directory.canonical import (
    field_array,
    field_bytes,
    field_int,
    field_tag,
    pack,
    unpack,
)
from directory.descriptor import NodeDescriptor, descriptors_from_arrays
from directory.errors import BadSignatureError, MalformedDocumentError, UnknownAuthorityError
from directory.parameters import Parameters, parameters_from_array
from directory.signatures import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    verify_signature,
)

VOTE_TAG = "trimix-vote-v1"
GEOMETRY_HASH_SIZE = 32
MAX_DESCRIPTORS = 10_000
MAX_VOTE_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Vote:
    """The descriptors an authority accepted for `epoch` and the parameters it proposes."""

    epoch: int
    authority_key: bytes
    parameters: Parameters
    geometry_hash: bytes
    descriptors: tuple[NodeDescriptor, ...]
    signature: bytes

    def body(self) -> list[Any]:
        return [
            VOTE_TAG,
            self.epoch,
            self.authority_key,
            self.parameters.to_array(),
            self.geometry_hash,
            [d.to_array() for d in self.descriptors],
        ]

    def signed_bytes(self) -> bytes:
        return pack(self.body())

    def to_bytes(self) -> bytes:
        return pack([self.body(), self.signature])


def sign_vote(
    signing_key: SigningKey,
    *,
    epoch: int,
    parameters: Parameters,
    geometry_hash: bytes,
    descriptors: Iterable[NodeDescriptor],
) -> Vote:
    """Build and sign a vote. The descriptors must be for `epoch`, one per node; they are
    put in node-id order."""
    by_id: dict[bytes, NodeDescriptor] = {}
    for descriptor in descriptors:
        if descriptor.epoch != epoch:
            raise MalformedDocumentError("vote: a descriptor is for another epoch")
        if by_id.setdefault(descriptor.node_id, descriptor) is not descriptor:
            raise MalformedDocumentError("vote: two descriptors for the same node")
    if len(by_id) > MAX_DESCRIPTORS:
        raise MalformedDocumentError(f"vote: more than {MAX_DESCRIPTORS} descriptors")
    field_int(epoch, "vote epoch")
    field_bytes(geometry_hash, "vote geometry hash", GEOMETRY_HASH_SIZE)
    parameters_from_array(parameters.to_array())  # the same range checks as a decoder's
    unsigned = Vote(
        epoch=epoch,
        authority_key=signing_key.public_key,
        parameters=parameters,
        geometry_hash=geometry_hash,
        descriptors=tuple(by_id[key] for key in sorted(by_id)),
        signature=b"",
    )
    return replace(unsigned, signature=signing_key.sign(unsigned.signed_bytes()))


def decode_vote(data: bytes, *, authorities: Collection[bytes] | None = None) -> Vote:
    """Decode a vote and check the authority's signature over it (`BadSignatureError`).

    With `authorities`, a vote by any other key is refused (`UnknownAuthorityError`) before
    its signature and descriptors cost anything. The descriptors' own signatures are not
    checked here: the consensus computation checks each distinct descriptor it includes
    once."""
    outer = unpack(data, what="vote", max_size=MAX_VOTE_SIZE)
    field_array(outer, "vote", 2)
    body, signature = outer
    field_array(body, "vote", 6)
    field_tag(body[0], "vote", VOTE_TAG)
    epoch = field_int(body[1], "vote epoch")
    authority_key = field_bytes(body[2], "vote authority key", PUBLIC_KEY_SIZE)
    parameters = parameters_from_array(body[3])
    geometry_hash = field_bytes(body[4], "vote geometry hash", GEOMETRY_HASH_SIZE)
    embedded = field_array(body[5], "vote descriptors", max_size=MAX_DESCRIPTORS)
    field_bytes(signature, "vote signature", SIGNATURE_SIZE)
    if authorities is not None and authority_key not in authorities:
        raise UnknownAuthorityError("vote: not by a pinned authority")
    signed = data[_array_header_size(2) : len(data) - 2 - SIGNATURE_SIZE]
    if not verify_signature(authority_key, signature, signed):
        raise BadSignatureError("vote: the authority's signature does not verify")
    descriptors = descriptors_from_arrays(embedded, epoch, "vote")
    return Vote(epoch, authority_key, parameters, geometry_hash, tuple(descriptors), signature)


def _array_header_size(length: int) -> int:
    """Bytes of the msgpack header of an array of `length` elements."""
    return 1 if length < 16 else 3 if length < 1 << 16 else 5
