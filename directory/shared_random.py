"""The shared random value of an epoch, made by commit-reveal among the authorities, and the
layer assignment dealt from it.

Each authority derives a secret 32-byte reveal per epoch from its key (keyed BLAKE2b: a
restarted authority reveals what it committed to, and nobody without the key can predict
it). Its vote carries the commitment `digest(["trimix-commit-v1", epoch, key, reveal])`;
it reveals only after the votes closed, so every commitment is fixed before any reveal is
known. The shared random value is

    BLAKE2b-256(canonical ["trimix-shared-random-v1", epoch, [[key, reveal], ...]])

over the valid reveals (each matching its author's commitment in a counted vote), in key
order, of at least t authorities; an authority that commits and does not reveal is left out.

Mixes are ordered by BLAKE2b-256("trimix-layer-order-v2" ‖ shared random ‖ node id) and
dealt to the layers in turn (first to layer 0, second to layer 1, ...), so layer sizes
differ by at most one and no node can know or choose its layer when it uploads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from directory.canonical import (
    field_array,
    field_bytes,
    field_epoch,
    field_tag,
    pack,
    unpack,
)
from directory.errors import MalformedDocumentError
from directory.signatures import MAX_AUTHORITIES, PUBLIC_KEY_SIZE, SigningKey, digest

COMMIT_TAG = "trimix-commit-v1"
REVEAL_TAG = "trimix-reveal-v1"
REVEAL_SET_TAG = "trimix-reveals-v1"
SHARED_RANDOM_TAG = "trimix-shared-random-v1"
LAYER_ORDER_TAG = b"trimix-layer-order-v2"
REVEAL_SIZE = 32
COMMITMENT_SIZE = 32
SHARED_RANDOM_SIZE = 32
MAX_REVEAL_SIZE = 128
MAX_REVEAL_SET_SIZE = 64 + MAX_AUTHORITIES * 80


def reveal_for(signing_key: SigningKey, epoch: int) -> bytes:
    """The secret this authority commits to for `epoch` (and reveals after the votes close)."""
    return hashlib.blake2b(
        epoch.to_bytes(8, "big"),
        key=signing_key.seed,
        person=b"trimix-reveal",
        digest_size=REVEAL_SIZE,
    ).digest()


def commitment(epoch: int, authority_key: bytes, reveal: bytes) -> bytes:
    """What a vote carries: the hash of the reveal, bound to the epoch and the author."""
    return digest(pack([COMMIT_TAG, epoch, authority_key, reveal]))


@dataclass(frozen=True, slots=True)
class Reveal:
    """An authority's reveal for `epoch`. It needs no signature: only the value committed to
    in the author's (signed) vote is valid."""

    epoch: int
    authority_key: bytes
    reveal: bytes

    def commitment(self) -> bytes:
        return commitment(self.epoch, self.authority_key, self.reveal)

    def matches(self, commit: bytes) -> bool:
        return self.commitment() == commit

    def to_bytes(self) -> bytes:
        return pack([REVEAL_TAG, self.epoch, self.authority_key, self.reveal])


def decode_reveal(data: bytes) -> Reveal:
    body = unpack(data, what="reveal", max_size=MAX_REVEAL_SIZE)
    field_array(body, "reveal", 4)
    field_tag(body[0], "reveal", REVEAL_TAG)
    return Reveal(
        epoch=field_epoch(body[1], "reveal epoch"),
        authority_key=field_bytes(body[2], "reveal authority key", PUBLIC_KEY_SIZE),
        reveal=field_bytes(body[3], "reveal value", REVEAL_SIZE),
    )


def encode_reveal_set(epoch: int, reveals: Iterable[Reveal]) -> bytes:
    """The reveals an authority held when reveals closed, for the reveal relay:
    `["trimix-reveals-v1", epoch, [[key, reveal], ...]]` in key order."""
    pairs = sorted([r.authority_key, r.reveal] for r in reveals if r.epoch == epoch)
    return pack([REVEAL_SET_TAG, epoch, pairs])


def decode_reveal_set(data: bytes, epoch: int) -> list[Reveal]:
    body = unpack(data, what="reveal set", max_size=MAX_REVEAL_SET_SIZE)
    field_array(body, "reveal set", 3)
    field_tag(body[0], "reveal set", REVEAL_SET_TAG)
    if field_epoch(body[1], "reveal set epoch") != epoch:
        raise MalformedDocumentError(f"reveal set: not for epoch {epoch}")
    reveals = []
    for pair in field_array(body[2], "reveal set entries", max_size=MAX_AUTHORITIES):
        field_array(pair, "reveal set entry", 2)
        key = field_bytes(pair[0], "reveal set key", PUBLIC_KEY_SIZE)
        reveals.append(Reveal(epoch, key, field_bytes(pair[1], "reveal set value", REVEAL_SIZE)))
    return reveals


def shared_random_value(epoch: int, reveals: Mapping[bytes, bytes]) -> bytes:
    """The shared random value from the valid reveals (authority key -> reveal)."""
    pairs: list[Any] = [[key, reveals[key]] for key in sorted(reveals)]
    return digest(pack([SHARED_RANDOM_TAG, epoch, pairs]))


def layer_order_key(shared_random: bytes, node_id: bytes) -> bytes:
    return hashlib.blake2b(LAYER_ORDER_TAG + shared_random + node_id, digest_size=32).digest()


def deal_layers(
    shared_random: bytes, mix_ids: Iterable[bytes], layer_count: int
) -> tuple[tuple[bytes, ...], ...]:
    """Node ids per layer, each layer in ascending node-id order: the mixes in the order of
    `layer_order_key`, dealt to the layers in turn (sizes differ by at most one)."""
    ordered = sorted(mix_ids, key=lambda node: layer_order_key(shared_random, node))
    layers: list[list[bytes]] = [[] for _ in range(layer_count)]
    for position, node in enumerate(ordered):
        layers[position % layer_count].append(node)
    return tuple(tuple(sorted(layer)) for layer in layers)
