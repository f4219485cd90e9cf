"""`NodeDescriptor`: what a mix or gateway tells the authorities about itself for one epoch,
signed by its Ed25519 identity key.

Encoding (see docs/SPEC.md §2): `[body, signature]` where `body` is the fixed-order array

    ["trimix-descriptor-v2", epoch, name, role, identity_key, link_key,
     [sphinx_key_e, sphinx_key_e+1, sphinx_key_e+2], [[host, port], ...], version]

and `signature` is the identity key's Ed25519 signature of the canonical bytes of `body`.
A node states no layer preference (version 1 did): layers are dealt from the authorities'
shared random value (`directory.shared_random`), which no node can predict or choose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from directory.canonical import (
    MAX_EPOCH,
    field_array,
    field_bytes,
    field_epoch,
    field_int,
    field_str,
    field_tag,
    pack,
    unpack,
)
from directory.errors import BadSignatureError, MalformedDocumentError
from directory.signatures import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    node_id,
    verify_signature,
)

DESCRIPTOR_TAG = "trimix-descriptor-v2"
BODY_FIELDS = 9
MAX_DESCRIPTOR_SIZE = 4096
"""The largest encoded descriptor accepted, in bytes."""
SPHINX_KEYS_PER_DESCRIPTOR = 3
"""Sphinx public keys for the descriptor's epoch and the two after it."""
SPHINX_KEY_SIZE = 32
LINK_KEY_SIZE = 32
MAX_ADDRESSES = 8
MAX_NAME_LENGTH = 64
MAX_HOST_LENGTH = 253
MAX_VERSION_LENGTH = 32

NAME_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_NAME_LENGTH}}}")
HOST_PATTERN = re.compile(rf"[A-Za-z0-9.:\[\]-]{{1,{MAX_HOST_LENGTH}}}")
VERSION_PATTERN = re.compile(rf"[A-Za-z0-9.+_-]{{1,{MAX_VERSION_LENGTH}}}")


class Role(IntEnum):
    """What a node does in the network."""

    MIX = 1
    GATEWAY = 2


_ROLES = {int(role): role for role in Role}


@dataclass(frozen=True, slots=True)
class Address:
    """Where a node listens for links."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class NodeDescriptor:
    """A node's signed self-description for `epoch`."""

    epoch: int
    name: str
    role: Role
    identity_key: bytes
    link_key: bytes
    sphinx_keys: tuple[bytes, ...]
    addresses: tuple[Address, ...]
    version: str
    signature: bytes
    node_id: bytes = field(init=False, repr=False, compare=False)
    """BLAKE2b-256 of the identity key, computed once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_id", node_id(self.identity_key))

    def sphinx_key(self, epoch: int) -> bytes:
        """The node's Sphinx public key for `epoch` (one of the three the descriptor holds)."""
        index = epoch - self.epoch
        if not 0 <= index < len(self.sphinx_keys):
            raise KeyError(f"the descriptor has no Sphinx key for epoch {epoch}")
        return self.sphinx_keys[index]

    def body(self) -> list[Any]:
        return _body(
            self.epoch,
            self.name,
            self.role,
            self.identity_key,
            self.link_key,
            self.sphinx_keys,
            self.addresses,
            self.version,
        )

    def signed_bytes(self) -> bytes:
        """The bytes the identity key signs: the canonical encoding of the body."""
        return pack(self.body())

    def to_array(self) -> list[Any]:
        """`[body, signature]`: how votes and consensuses embed the descriptor."""
        return [self.body(), self.signature]

    def to_bytes(self) -> bytes:
        """The canonical encoding `[body, signature]`."""
        return pack(self.to_array())

    def has_valid_signature(self) -> bool:
        return verify_signature(self.identity_key, self.signature, self.signed_bytes())


def _body(
    epoch: int,
    name: str,
    role: int,
    identity_key: bytes,
    link_key: bytes,
    sphinx_keys: tuple[bytes, ...],
    addresses: tuple[Address, ...],
    version: str,
) -> list[Any]:
    return [
        DESCRIPTOR_TAG,
        epoch,
        name,
        int(role),
        identity_key,
        link_key,
        list(sphinx_keys),
        [[a.host, a.port] for a in addresses],
        version,
    ]


def sign_descriptor(
    signing_key: SigningKey,
    *,
    epoch: int,
    name: str,
    role: Role,
    link_key: bytes,
    sphinx_keys: tuple[bytes, ...],
    addresses: tuple[Address, ...],
    version: str,
) -> NodeDescriptor:
    """Build and sign a descriptor; raises `MalformedDocumentError` if a field is invalid."""
    body = _body(
        epoch,
        name,
        role,
        signing_key.public_key,
        link_key,
        tuple(sphinx_keys),
        tuple(addresses),
        version,
    )
    descriptor = descriptor_from_fields(body, b"\0" * SIGNATURE_SIZE)
    signature = signing_key.sign(pack(body))
    return replace(descriptor, signature=signature)


def descriptor_from_array(value: Any, what: str = "descriptor") -> NodeDescriptor:
    """A descriptor embedded in a vote or consensus as `[body, signature]` (its signature is
    not checked here)."""
    if type(value) is not list or len(value) != 2:
        raise MalformedDocumentError(f"{what}: expected [body, signature]")
    return descriptor_from_fields(value[0], value[1])


def descriptors_from_arrays(entries: list[Any], epoch: int, what: str) -> list[NodeDescriptor]:
    """The descriptors embedded in a vote or consensus (`what`): each for `epoch`, in strict
    node-id order (so one per node); their signatures are not checked here."""
    descriptors = []
    previous_id = b""
    for entry in entries:
        descriptor = descriptor_from_array(entry, f"{what} descriptor")
        if descriptor.epoch != epoch:
            raise MalformedDocumentError(f"{what}: a descriptor is for another epoch")
        if descriptor.node_id <= previous_id:
            raise MalformedDocumentError(f"{what}: descriptors not in strict node-id order")
        previous_id = descriptor.node_id
        descriptors.append(descriptor)
    return descriptors


def descriptor_from_fields(body: Any, signature: Any) -> NodeDescriptor:
    """Check a decoded body and signature field by field and build the descriptor;
    `MalformedDocumentError` names the first field that is wrong."""
    descriptor = _descriptor_fast(body, signature)
    if descriptor is None:
        descriptor = _descriptor_checked(body, signature)
    return descriptor


def _descriptor_fast(body: Any, signature: Any) -> NodeDescriptor | None:
    """The common case in straight-line code (a consensus holds thousands of descriptors);
    None if anything is off, and `_descriptor_checked` then says what."""
    if type(body) is not list or len(body) != BODY_FIELDS:
        return None
    tag, epoch, name, role_value, identity_key, link_key, keys, raw, version = body
    if not (
        type(tag) is str
        and tag == DESCRIPTOR_TAG
        and type(epoch) is int
        and 0 <= epoch <= MAX_EPOCH
        and type(name) is str
        and NAME_PATTERN.fullmatch(name)
        and type(role_value) is int
        and type(identity_key) is bytes
        and len(identity_key) == PUBLIC_KEY_SIZE
        and type(link_key) is bytes
        and len(link_key) == LINK_KEY_SIZE
        and type(keys) is list
        and len(keys) == SPHINX_KEYS_PER_DESCRIPTOR == 3
        and type(keys[0]) is bytes
        and len(keys[0]) == SPHINX_KEY_SIZE
        and type(keys[1]) is bytes
        and len(keys[1]) == SPHINX_KEY_SIZE
        and type(keys[2]) is bytes
        and len(keys[2]) == SPHINX_KEY_SIZE
        and type(raw) is list
        and 1 <= len(raw) <= MAX_ADDRESSES
        and type(version) is str
        and VERSION_PATTERN.fullmatch(version)
        and type(signature) is bytes
        and len(signature) == SIGNATURE_SIZE
    ):
        return None
    role = _ROLES.get(role_value)
    if role is None:
        return None
    addresses = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 2:
            return None
        host, port = entry
        if not (
            type(host) is str
            and HOST_PATTERN.fullmatch(host)
            and type(port) is int
            and 1 <= port <= 65535
        ):
            return None
        addresses.append(Address(host, port))
    if len(set(addresses)) != len(addresses):
        return None
    return NodeDescriptor(
        epoch,
        name,
        role,
        identity_key,
        link_key,
        tuple(keys),
        tuple(addresses),
        version,
        signature,
    )


def _descriptor_checked(body: Any, signature: Any) -> NodeDescriptor:
    what = "descriptor"
    field_array(body, what, BODY_FIELDS)
    field_tag(body[0], what, DESCRIPTOR_TAG)
    epoch = field_epoch(body[1], "descriptor epoch")
    name = field_str(body[2], "descriptor name", MAX_NAME_LENGTH, NAME_PATTERN)
    role = Role(field_int(body[3], "descriptor role", Role.MIX, Role.GATEWAY))
    identity_key = field_bytes(body[4], "descriptor identity key", PUBLIC_KEY_SIZE)
    link_key = field_bytes(body[5], "descriptor link key", LINK_KEY_SIZE)
    keys = field_array(body[6], "descriptor Sphinx keys", SPHINX_KEYS_PER_DESCRIPTOR)
    sphinx_keys = tuple(field_bytes(k, "descriptor Sphinx key", SPHINX_KEY_SIZE) for k in keys)
    raw_addresses = field_array(body[7], "descriptor addresses", max_size=MAX_ADDRESSES)
    if not raw_addresses:
        raise MalformedDocumentError("descriptor addresses: at least one is needed")
    addresses = []
    for raw in raw_addresses:
        field_array(raw, "descriptor address", 2)
        host = field_str(raw[0], "descriptor address host", MAX_HOST_LENGTH, HOST_PATTERN)
        port = field_int(raw[1], "descriptor address port", 1, 65535)
        addresses.append(Address(host, port))
    if len(set(addresses)) != len(addresses):
        raise MalformedDocumentError("descriptor addresses: an address is listed twice")
    version = field_str(body[8], "descriptor version", MAX_VERSION_LENGTH, VERSION_PATTERN)
    field_bytes(signature, "descriptor signature", SIGNATURE_SIZE)
    return NodeDescriptor(
        epoch,
        name,
        role,
        identity_key,
        link_key,
        sphinx_keys,
        tuple(addresses),
        version,
        signature,
    )


def decode_descriptor(data: bytes, *, verify: bool = True) -> NodeDescriptor:
    """Decode a descriptor; with `verify`, also check its identity-key signature
    (`BadSignatureError` if it does not hold)."""
    descriptor = descriptor_from_array(
        unpack(data, what="descriptor", max_size=MAX_DESCRIPTOR_SIZE)
    )
    # The canonical encoding of [body, signature] is a one-byte array header, the body's
    # bytes, and a two-byte bin header with the 64 signature bytes: slice, do not re-encode.
    signed = data[1 : len(data) - 2 - SIGNATURE_SIZE]
    if verify and not verify_signature(descriptor.identity_key, descriptor.signature, signed):
        raise BadSignatureError("descriptor: the identity key's signature does not verify")
    return descriptor
