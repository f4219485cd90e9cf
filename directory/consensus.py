"""`Consensus`: the network for one epoch as a majority of the authorities agreed on it, and
`SignedConsensus`: its bytes with the authorities' detached signatures.

Encoding of the consensus body (docs/SPEC.md §2), a fixed-order array:

    ["trimix-consensus-v2", epoch, valid_after_ms, fresh_until_ms, valid_until_ms,
     parameters, geometry_hash, shared_random, [[node_id, ...] per layer],
     [gateway node_id, ...], [descriptor, ...]]

Node ids within a layer, the gateways and the descriptors (each embedded as its own
`[body, signature]` array, so its canonical bytes appear unchanged) are in ascending
node-id order. The signed consensus is

    ["trimix-signed-consensus-v1", body_bytes, [[authority_key, signature], ...]]

with `body_bytes` the canonical encoding of the body as a byte string, and the signatures
(each over `body_bytes`) in ascending key order. The envelope is taken apart by its framing
(no unpacking of the body, which may be 16 MiB) and its signature list is unpacked with
length limits, so an unauthenticated document costs no more memory than its own bytes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import msgpack  # type: ignore[import-untyped]

from directory.canonical import (
    field_array,
    field_bytes,
    field_epoch,
    field_int,
    field_tag,
    pack,
    unpack,
)
from directory.descriptor import NodeDescriptor, Role, descriptors_from_arrays
from directory.errors import (
    DocumentTooLargeError,
    DuplicateSignatureError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
)
from directory.parameters import Parameters, parameters_from_array
from directory.shared_random import SHARED_RANDOM_SIZE
from directory.signatures import (
    MAX_AUTHORITIES,
    NODE_ID_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
)
from directory.vote import GEOMETRY_HASH_SIZE, MAX_DESCRIPTORS

CONSENSUS_TAG = "trimix-consensus-v2"
SIGNED_CONSENSUS_TAG = "trimix-signed-consensus-v1"
BODY_FIELDS = 11
MAX_CONSENSUS_SIZE = 16 * 1024 * 1024
MAX_SIGNATURES = MAX_AUTHORITIES
_SIGNATURE_ENTRY_SIZE = 1 + 2 + PUBLIC_KEY_SIZE + 2 + SIGNATURE_SIZE
_MAX_SIGNATURE_LIST_SIZE = 3 + MAX_SIGNATURES * _SIGNATURE_ENTRY_SIZE
_ENVELOPE_PREFIX = b"\x93" + pack(SIGNED_CONSENSUS_TAG)


@dataclass(frozen=True, slots=True)
class Consensus:
    """The network of `epoch`: parameters, the mix layers, the gateways and every included
    node's descriptor (in node-id order)."""

    epoch: int
    valid_after_ms: int
    fresh_until_ms: int
    valid_until_ms: int
    parameters: Parameters
    geometry_hash: bytes
    shared_random: bytes
    """The authorities' shared random value of the epoch, from which the layers are dealt."""
    layers: tuple[tuple[bytes, ...], ...]
    """Node ids of the mixes of each layer, first layer first."""
    gateways: tuple[bytes, ...]
    descriptors: tuple[NodeDescriptor, ...]
    descriptor_ids: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    """The node id of each descriptor, in the same (ascending) order."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "descriptor_ids", tuple(d.node_id for d in self.descriptors))

    def descriptor(self, node_id: bytes) -> NodeDescriptor:
        """The descriptor of node `node_id`; `KeyError` if it is not in the consensus."""
        index = bisect.bisect_left(self.descriptor_ids, node_id)
        if index == len(self.descriptor_ids) or self.descriptor_ids[index] != node_id:
            raise KeyError("no such node in the consensus")
        return self.descriptors[index]

    def layer_of(self, node_id: bytes) -> int | None:
        """The 0-based layer of a mix, or None for a node that is not a mix here."""
        for index, layer in enumerate(self.layers):
            position = bisect.bisect_left(layer, node_id)
            if position < len(layer) and layer[position] == node_id:
                return index
        return None

    def body(self) -> list[Any]:
        return [
            CONSENSUS_TAG,
            self.epoch,
            self.valid_after_ms,
            self.fresh_until_ms,
            self.valid_until_ms,
            self.parameters.to_array(),
            self.geometry_hash,
            self.shared_random,
            [list(layer) for layer in self.layers],
            list(self.gateways),
            [d.to_array() for d in self.descriptors],
        ]

    def to_bytes(self) -> bytes:
        """The canonical body bytes: what the authorities sign."""
        return pack(self.body())


def decode_consensus(body_bytes: bytes) -> Consensus:
    """Decode and check the structure of a consensus body.

    The descriptors' signatures are not checked: the authorities did that before signing
    the consensus, and the authorities' signatures cover every byte of it."""
    body = unpack(body_bytes, what="consensus", max_size=MAX_CONSENSUS_SIZE)
    field_array(body, "consensus", BODY_FIELDS)
    field_tag(body[0], "consensus", CONSENSUS_TAG)
    epoch = field_epoch(body[1], "consensus epoch")
    valid_after = field_int(body[2], "consensus valid-after")
    fresh_until = field_int(body[3], "consensus fresh-until")
    valid_until = field_int(body[4], "consensus valid-until")
    if not valid_after < fresh_until <= valid_until:
        raise MalformedDocumentError(
            "consensus: valid-after < fresh-until <= valid-until does not hold"
        )
    parameters = parameters_from_array(body[5])
    geometry_hash = field_bytes(body[6], "consensus geometry hash", GEOMETRY_HASH_SIZE)
    shared_random = field_bytes(body[7], "consensus shared random", SHARED_RANDOM_SIZE)
    raw_layers = field_array(body[8], "consensus layers", parameters.layers)
    raw_gateways = field_array(body[9], "consensus gateways", max_size=MAX_DESCRIPTORS)
    embedded = field_array(body[10], "consensus descriptors", max_size=MAX_DESCRIPTORS)

    descriptors = descriptors_from_arrays(embedded, epoch, "consensus")
    mix_ids = {d.node_id for d in descriptors if d.role is Role.MIX}
    gateway_ids = {d.node_id for d in descriptors if d.role is not Role.MIX}

    layers = tuple(_sorted_ids(raw, "consensus layer") for raw in raw_layers)
    placed: set[bytes] = set()
    for layer in layers:
        placed.update(layer)
    if sum(len(layer) for layer in layers) != len(placed) or placed != mix_ids:
        raise MalformedDocumentError(
            "consensus: the layers do not hold each included mix exactly once"
        )
    if layers and max(map(len, layers)) - min(map(len, layers)) > 1:
        raise MalformedDocumentError("consensus: layer sizes differ by more than one")
    gateways = _sorted_ids(raw_gateways, "consensus gateways")
    if set(gateways) != gateway_ids:
        raise MalformedDocumentError(
            "consensus: the gateway list does not match the included gateways"
        )
    return Consensus(
        epoch=epoch,
        valid_after_ms=valid_after,
        fresh_until_ms=fresh_until,
        valid_until_ms=valid_until,
        parameters=parameters,
        geometry_hash=geometry_hash,
        shared_random=shared_random,
        layers=layers,
        gateways=gateways,
        descriptors=tuple(descriptors),
    )


def _sorted_ids(raw: Any, what: str) -> tuple[bytes, ...]:
    field_array(raw, what, max_size=MAX_DESCRIPTORS)
    ids = tuple(field_bytes(value, f"{what} node id", NODE_ID_SIZE) for value in raw)
    if any(a >= b for a, b in pairwise(ids)):
        raise MalformedDocumentError(f"{what}: node ids not in strict ascending order")
    return ids


@dataclass(frozen=True, slots=True)
class AuthoritySignature:
    """One authority's detached Ed25519 signature of a consensus body."""

    authority_key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedConsensus:
    """A consensus body and the signatures collected for it, in authority-key order."""

    body: bytes
    signatures: tuple[AuthoritySignature, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.signatures, key=lambda s: s.authority_key))
        object.__setattr__(self, "signatures", ordered)

    def to_bytes(self) -> bytes:
        return pack(
            [
                SIGNED_CONSENSUS_TAG,
                self.body,
                [[s.authority_key, s.signature] for s in self.signatures],
            ]
        )


def decode_signed_consensus(data: bytes) -> SignedConsensus:
    """Decode the signed envelope; the body stays bytes (see `decode_consensus`).

    The envelope is read by its framing: the body is sliced out, never unpacked here, and
    only the short signature list is unpacked (with length limits). A key that signs twice
    raises `DuplicateSignatureError`. Signatures are not verified here (see
    `verify_consensus`)."""
    if not isinstance(data, bytes):
        raise MalformedDocumentError("signed consensus: expected bytes")
    if len(data) > MAX_CONSENSUS_SIZE:
        raise DocumentTooLargeError(
            f"signed consensus: {len(data)} bytes, more than the limit of {MAX_CONSENSUS_SIZE}"
        )
    if not data.startswith(_ENVELOPE_PREFIX):
        raise MalformedDocumentError("signed consensus: not a signed consensus envelope")
    start, length = _bin_frame(data, len(_ENVELOPE_PREFIX))
    body = data[start : start + length]
    rest = data[start + length :]
    if len(rest) > _MAX_SIGNATURE_LIST_SIZE:
        raise MalformedDocumentError("signed consensus: the signature list is too long")
    try:
        raw = msgpack.unpackb(
            rest,
            raw=False,
            max_array_len=MAX_SIGNATURES,
            max_map_len=0,
            max_str_len=0,
            max_bin_len=SIGNATURE_SIZE,
            max_ext_len=0,
        )
    except Exception as error:  # msgpack raises many types; all mean "not a document"
        raise MalformedDocumentError(
            f"signed consensus: malformed signature list ({type(error).__name__})"
        ) from None
    field_array(raw, "signed consensus signatures", max_size=MAX_SIGNATURES)
    if pack(raw) != rest:
        raise NonCanonicalEncodingError("signed consensus: not in canonical encoding")
    signatures = []
    for entry in raw:
        field_array(entry, "consensus signature", 2)
        signatures.append(
            AuthoritySignature(
                field_bytes(entry[0], "consensus signature key", PUBLIC_KEY_SIZE),
                field_bytes(entry[1], "consensus signature", SIGNATURE_SIZE),
            )
        )
    keys = [s.authority_key for s in signatures]
    if len(set(keys)) != len(keys):
        raise DuplicateSignatureError("signed consensus: more than one signature by the same key")
    if keys != sorted(keys):
        raise MalformedDocumentError("signed consensus: signatures not in key order")
    return SignedConsensus(body, tuple(signatures))


def _bin_frame(data: bytes, offset: int) -> tuple[int, int]:
    """Where the canonical msgpack byte string at `offset` starts, and its length."""
    marker = data[offset : offset + 1]
    sizes = {b"\xc4": 1, b"\xc5": 2, b"\xc6": 4}
    if marker not in sizes:
        raise MalformedDocumentError("signed consensus: the body is not a byte string")
    width = sizes[marker]
    start = offset + 1 + width
    if start > len(data):
        raise MalformedDocumentError("signed consensus: truncated")
    length = int.from_bytes(data[offset + 1 : start], "big")
    if start + length > len(data):
        raise MalformedDocumentError("signed consensus: truncated")
    if width > 1 and length < 1 << (8 * (width // 2)):
        raise NonCanonicalEncodingError("signed consensus: not in canonical encoding")
    return start, length
