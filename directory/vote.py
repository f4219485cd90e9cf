"""`Vote`: one authority's view of the network for an epoch, signed by that authority.

Encoding (docs/SPEC.md §2): `[body, signature]` where `body` is the fixed-order array

    ["trimix-vote-v2", epoch, authority_key, parameters, geometry_hash, commitment,
     [descriptor, ...]]

`parameters` is the array of `Parameters`; `commitment` binds the authority to the reveal
it publishes once the votes closed (`directory.shared_random`); each descriptor is embedded
as its own `[body, signature]` array, sorted by node id, one per node. `signature` is the
authority's Ed25519 signature of the canonical bytes of `body`.

Decoding is bounded before it is authenticated: the signer's key and the epoch are read
from the first bytes (`read_vote_prefix`), a key that is not pinned is refused before
anything else, the signature is checked over the body's bytes before they are unpacked,
and the descriptors are unpacked one at a time, each within a window of the largest
descriptor, so no input can make the decoder build more than one descriptor's worth of
objects at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

import msgpack  # type: ignore[import-untyped]

from directory.canonical import (
    array_header,
    field_bytes,
    field_epoch,
    field_tag,
    pack,
)
from directory.descriptor import (
    MAX_DESCRIPTOR_SIZE,
    NodeDescriptor,
    descriptor_from_array,
)
from directory.errors import (
    BadSignatureError,
    DocumentTooLargeError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
    UnknownAuthorityError,
)
from directory.parameters import Parameters, parameters_from_array
from directory.shared_random import COMMITMENT_SIZE
from directory.signatures import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    verify_signature,
)

VOTE_TAG = "trimix-vote-v2"
BODY_FIELDS = 7
GEOMETRY_HASH_SIZE = 32
MAX_DESCRIPTORS = 10_000
MAX_VOTE_SIZE = 16 * 1024 * 1024
VOTE_PREFIX_SIZE = 64
"""Bytes enough to hold a vote's envelope up to and including the authority key."""
_SIGNATURE_TRAILER = b"\xc4\x40"  # bin 8 header of the 64-byte signature
_HEADER_WINDOW = 512
"""Bytes enough for every body field before the descriptors."""


@dataclass(frozen=True, slots=True)
class Vote:
    """The descriptors an authority accepted for `epoch`, the parameters it proposes and its
    commitment to this epoch's reveal."""

    epoch: int
    authority_key: bytes
    parameters: Parameters
    geometry_hash: bytes
    commitment: bytes
    descriptors: tuple[NodeDescriptor, ...]
    signature: bytes

    def body(self) -> list[Any]:
        return [
            VOTE_TAG,
            self.epoch,
            self.authority_key,
            self.parameters.to_array(),
            self.geometry_hash,
            self.commitment,
            [d.to_array() for d in self.descriptors],
        ]

    def signed_bytes(self) -> bytes:
        return pack(self.body())

    def to_bytes(self) -> bytes:
        return pack([self.body(), self.signature])


@dataclass(frozen=True, slots=True)
class VotePrefix:
    """What the first bytes of a vote say: its epoch and its signer."""

    epoch: int
    authority_key: bytes


def sign_vote(
    signing_key: SigningKey,
    *,
    epoch: int,
    parameters: Parameters,
    geometry_hash: bytes,
    commitment: bytes,
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
    field_epoch(epoch, "vote epoch")
    field_bytes(geometry_hash, "vote geometry hash", GEOMETRY_HASH_SIZE)
    field_bytes(commitment, "vote commitment", COMMITMENT_SIZE)
    parameters_from_array(parameters.to_array())  # the same range checks as a decoder's
    unsigned = Vote(
        epoch=epoch,
        authority_key=signing_key.public_key,
        parameters=parameters,
        geometry_hash=geometry_hash,
        commitment=commitment,
        descriptors=tuple(by_id[key] for key in sorted(by_id)),
        signature=b"",
    )
    return replace(unsigned, signature=signing_key.sign(unsigned.signed_bytes()))


def _limited_unpacker() -> Any:
    """An unpacker that builds nothing larger than a descriptor's parts."""
    return msgpack.Unpacker(
        raw=False,
        max_buffer_size=MAX_DESCRIPTOR_SIZE + _HEADER_WINDOW,
        max_array_len=16,
        max_map_len=0,
        max_str_len=256,
        max_bin_len=64,
        max_ext_len=0,
    )


def read_vote_prefix(data: bytes) -> VotePrefix | None:
    """The epoch and signer of a vote from its first bytes, or None if more bytes are needed
    (`VOTE_PREFIX_SIZE` always suffice). `MalformedDocumentError` if they cannot start a vote.

    This is how a receiver refuses an unpinned signer, or a vote for the wrong epoch,
    before reading or unpacking the rest."""
    if data[:1] not in (b"", b"\x92"):
        raise MalformedDocumentError("vote: expected [body, signature]")
    unpacker = _limited_unpacker()
    unpacker.feed(data[1:VOTE_PREFIX_SIZE])
    try:
        if unpacker.read_array_header() != BODY_FIELDS:
            raise MalformedDocumentError(f"vote: expected a body of {BODY_FIELDS} fields")
        tag, epoch, authority_key = unpacker.unpack(), unpacker.unpack(), unpacker.unpack()
    except msgpack.OutOfData:
        if len(data) >= VOTE_PREFIX_SIZE:
            raise MalformedDocumentError("vote: not a vote envelope") from None
        return None
    except MalformedDocumentError:
        raise
    except Exception as error:  # msgpack raises many types; all mean "not a vote"
        raise MalformedDocumentError(f"vote: not valid msgpack ({type(error).__name__})") from None
    field_tag(tag, "vote", VOTE_TAG)
    return VotePrefix(
        epoch=field_epoch(epoch, "vote epoch"),
        authority_key=field_bytes(authority_key, "vote authority key", PUBLIC_KEY_SIZE),
    )


def decode_vote(data: bytes, *, authorities: Collection[bytes] | None = None) -> Vote:
    """Decode a vote and check the authority's signature over it (`BadSignatureError`).

    With `authorities`, a vote by any other key is refused (`UnknownAuthorityError`) before
    its signature and descriptors cost anything. The descriptors' own signatures are not
    checked here: the consensus computation checks each distinct descriptor it includes
    once."""
    if not isinstance(data, bytes):
        raise MalformedDocumentError(f"vote: expected bytes, not {type(data).__name__}")
    if len(data) > MAX_VOTE_SIZE:
        raise DocumentTooLargeError(f"vote: {len(data)} bytes, more than the limit")
    prefix = read_vote_prefix(data)
    trailer = len(data) - len(_SIGNATURE_TRAILER) - SIGNATURE_SIZE
    if prefix is None or trailer < 1 or data[trailer : trailer + 2] != _SIGNATURE_TRAILER:
        raise MalformedDocumentError("vote: expected [body, signature]")
    if authorities is not None and prefix.authority_key not in authorities:
        raise UnknownAuthorityError("vote: not by a pinned authority")
    view = memoryview(data)
    body = view[1:trailer]
    signature = data[trailer + 2 :]
    if not verify_signature(prefix.authority_key, signature, body):
        raise BadSignatureError("vote: the authority's signature does not verify")
    return _decode_signed_body(body, prefix, signature)


def _decode_signed_body(body: memoryview, prefix: VotePrefix, signature: bytes) -> Vote:
    """The fields of an authenticated body, the descriptors one bounded window at a time."""
    header = _limited_unpacker()
    header.feed(body[:_HEADER_WINDOW])
    try:
        header.read_array_header()
        fields = [header.unpack() for _ in range(BODY_FIELDS - 1)]
        count = header.read_array_header()
    except Exception as error:
        raise MalformedDocumentError(f"vote: malformed body ({type(error).__name__})") from None
    position = header.tell()
    parameters = parameters_from_array(fields[3])
    geometry_hash = field_bytes(fields[4], "vote geometry hash", GEOMETRY_HASH_SIZE)
    commit = field_bytes(fields[5], "vote commitment", COMMITMENT_SIZE)
    if count > MAX_DESCRIPTORS:
        raise MalformedDocumentError(f"vote descriptors: more than {MAX_DESCRIPTORS} elements")
    expected = b"".join([array_header(BODY_FIELDS), *map(pack, fields), array_header(count)])
    if body[:position] != expected:
        raise NonCanonicalEncodingError("vote: not in canonical encoding")

    descriptors = []
    previous_id = b""
    for _ in range(count):
        window = body[position : position + MAX_DESCRIPTOR_SIZE]
        unpacker = _limited_unpacker()
        unpacker.feed(window)
        try:
            entry = unpacker.unpack()
        except msgpack.OutOfData:
            raise MalformedDocumentError(
                "vote: a descriptor is truncated or larger than the limit"
            ) from None
        except Exception as error:
            raise MalformedDocumentError(
                f"vote descriptor: not valid msgpack ({type(error).__name__})"
            ) from None
        size = unpacker.tell()
        if pack(entry) != window[:size]:
            raise NonCanonicalEncodingError("vote descriptor: not in canonical encoding")
        position += size
        descriptor = descriptor_from_array(entry, "vote descriptor")
        if descriptor.epoch != prefix.epoch:
            raise MalformedDocumentError("vote: a descriptor is for another epoch")
        if descriptor.node_id <= previous_id:
            raise MalformedDocumentError("vote: descriptors not in strict node-id order")
        previous_id = descriptor.node_id
        descriptors.append(descriptor)
    if position != len(body):
        raise MalformedDocumentError("vote: bytes after the descriptors")
    return Vote(
        prefix.epoch,
        prefix.authority_key,
        parameters,
        geometry_hash,
        commit,
        tuple(descriptors),
        signature,
    )
