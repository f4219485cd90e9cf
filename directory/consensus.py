"""`Consensus`: the network for one epoch as a majority of the authorities agreed on it, and
`SignedConsensus`: its bytes with the authorities' detached signatures.

Encoding of the consensus body (docs/SPEC.md §2), a fixed-order array:

    ["trimix-consensus-v1", epoch, valid_after_ms, fresh_until_ms, valid_until_ms,
     parameters, geometry_hash, [[node_id, ...] per layer], [gateway node_id, ...],
     [descriptor, ...]]

Node ids within a layer, the gateways and the descriptors (each embedded as its own
`[body, signature]` array, so its canonical bytes appear unchanged) are in ascending
node-id order. The signed consensus is

    ["trimix-signed-consensus-v1", body_bytes, [[authority_key, signature], ...]]

with `body_bytes` the canonical encoding of the body as a byte string, and the signatures
(each over `body_bytes`) in ascending key order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from directory.canonical import (
    bin_header,
    field_array,
    field_blob,
    field_bytes,
    field_int,
    field_tag,
    pack,
    unpack,
)
from directory.descriptor import NodeDescriptor, Role, descriptors_from_arrays
from directory.errors import (
    DuplicateSignatureError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
)
from directory.parameters import Parameters, parameters_from_array
from directory.signatures import NODE_ID_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from directory.vote import GEOMETRY_HASH_SIZE, MAX_DESCRIPTORS

CONSENSUS_TAG = "trimix-consensus-v1"
SIGNED_CONSENSUS_TAG = "trimix-signed-consensus-v1"
MAX_CONSENSUS_SIZE = 16 * 1024 * 1024
MAX_SIGNATURES = 64
_ARRAY_OF_THREE = b"\x93"


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
    field_array(body, "consensus", 10)
    field_tag(body[0], "consensus", CONSENSUS_TAG)
    epoch = field_int(body[1], "consensus epoch")
    valid_after = field_int(body[2], "consensus valid-after")
    fresh_until = field_int(body[3], "consensus fresh-until")
    valid_until = field_int(body[4], "consensus valid-until")
    if not valid_after < fresh_until <= valid_until:
        raise MalformedDocumentError(
            "consensus: valid-after < fresh-until <= valid-until does not hold"
        )
    parameters = parameters_from_array(body[5])
    geometry_hash = field_bytes(body[6], "consensus geometry hash", GEOMETRY_HASH_SIZE)
    raw_layers = field_array(body[7], "consensus layers", parameters.layers)
    raw_gateways = field_array(body[8], "consensus gateways", max_size=MAX_DESCRIPTORS)
    embedded = field_array(body[9], "consensus descriptors", max_size=MAX_DESCRIPTORS)

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

    A key that signs twice raises `DuplicateSignatureError`. Signatures are not verified
    here (see `verify_consensus`)."""
    outer = unpack(
        data, what="signed consensus", max_size=MAX_CONSENSUS_SIZE, check_canonical=False
    )
    field_array(outer, "signed consensus", 3)
    field_tag(outer[0], "signed consensus", SIGNED_CONSENSUS_TAG)
    body = field_blob(outer[1], "signed consensus body", MAX_CONSENSUS_SIZE)
    raw = field_array(outer[2], "signed consensus signatures", max_size=MAX_SIGNATURES)
    # The canonical-form check, without re-encoding the (large) body: everything around it
    # must be exactly what `pack` would write.
    prefix = _ARRAY_OF_THREE + pack(SIGNED_CONSENSUS_TAG) + bin_header(len(body))
    suffix = pack(raw)
    if (
        len(data) != len(prefix) + len(body) + len(suffix)
        or not data.startswith(prefix)
        or not data.endswith(suffix)
    ):
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
