"""The consensus computation: a pure, deterministic function of a set of votes.

- Only votes for the epoch by pinned authorities count, one per authority, and at least a
  majority of the pinned authorities (⌊n/2⌋ + 1) must have voted.
- A descriptor is included if more than half of the votes carry exactly that descriptor
  (equal in every field, so equal in its signed bytes) and its signature verifies. The
  signature of each distinct candidate is checked once.
- Each numeric parameter is the low median of the votes' values; the geometry hash is the
  one more than half of the votes carry, or there is no consensus.
- Mixes are ordered by BLAKE2b-256("trimix-layer-order-v1" ‖ epoch (u64 BE) ‖ node id) and
  put in layers whose sizes differ by at most one: a mix's layer preference is honoured in
  that order while the preferred layer has room, the others fill the remaining room layer
  by layer in the same order.

Votes are taken as verified (`decode_vote` checks their signatures), so the order in which
they arrive does not matter: any authority computing from the same votes gets the same bytes.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from itertools import pairwise

from directory.consensus import Consensus
from directory.descriptor import NodeDescriptor, Role
from directory.epoch import EpochClock
from directory.errors import ConsensusComputationError, UnknownAuthorityError
from directory.parameters import PARAMETER_NAMES, Parameters
from directory.signatures import authority_threshold
from directory.vote import Vote

LAYER_ORDER_TAG = b"trimix-layer-order-v1"


def low_median(values: Sequence[int]) -> int:
    """The lower of the two middle values (the middle one for an odd count)."""
    if not values:
        raise ConsensusComputationError("the median of no values")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def layer_order_key(epoch: int, node_id: bytes) -> bytes:
    return hashlib.blake2b(
        LAYER_ORDER_TAG + epoch.to_bytes(8, "big") + node_id, digest_size=32
    ).digest()


def assign_layers(
    epoch: int, mixes: Iterable[NodeDescriptor], layer_count: int
) -> tuple[tuple[bytes, ...], ...]:
    """Node ids per layer (each layer in ascending node-id order); sizes differ by ≤ 1."""
    ordered = sorted(((layer_order_key(epoch, d.node_id), d) for d in mixes), key=lambda p: p[0])
    total = len(ordered)
    room = [
        total // layer_count + (1 if i < total % layer_count else 0) for i in range(layer_count)
    ]
    layers: list[list[bytes]] = [[] for _ in range(layer_count)]
    unplaced: list[NodeDescriptor] = []
    for _, descriptor in ordered:
        wanted = descriptor.layer_preference - 1
        if 0 <= wanted < layer_count and room[wanted] > 0:
            layers[wanted].append(descriptor.node_id)
            room[wanted] -= 1
        else:
            unplaced.append(descriptor)
    layer = 0
    for descriptor in unplaced:
        while room[layer] == 0:
            layer += 1
        layers[layer].append(descriptor.node_id)
        room[layer] -= 1
    return tuple(tuple(sorted(ids)) for ids in layers)


def compute_consensus(
    votes: Iterable[Vote],
    *,
    epoch: int,
    authorities: Collection[bytes],
    clock: EpochClock,
) -> Consensus:
    """The consensus of `epoch` from `votes`, given the pinned authority keys and the clock
    (for the validity times). Raises `ConsensusComputationError` when there is none."""
    pinned = set(authorities)
    by_authority: dict[bytes, Vote] = {}
    for vote in votes:
        if vote.epoch != epoch:
            raise ConsensusComputationError(f"a vote is for epoch {vote.epoch}, not {epoch}")
        if vote.authority_key not in pinned:
            raise UnknownAuthorityError("a vote is by a key that is not a pinned authority")
        known = by_authority.setdefault(vote.authority_key, vote)
        if known is not vote and known != vote:
            raise ConsensusComputationError("an authority cast two different votes")
    count = len(by_authority)
    needed = authority_threshold(len(pinned))
    if count < needed:
        raise ConsensusComputationError(
            f"only {count} of {len(pinned)} authorities voted for epoch {epoch}, {needed} needed"
        )
    ballots = list(by_authority.values())

    geometry_hash, geometry_votes = Counter(v.geometry_hash for v in ballots).most_common(1)[0]
    if 2 * geometry_votes <= count:
        raise ConsensusComputationError("no geometry hash is carried by a majority of the votes")

    parameters = Parameters(
        *(low_median([getattr(v.parameters, name) for v in ballots]) for name in PARAMETER_NAMES)
    )

    tally: Counter[NodeDescriptor] = Counter()
    for vote in ballots:
        tally.update(vote.descriptors)
    included = [
        descriptor
        for descriptor, carried in tally.items()
        if 2 * carried > count and descriptor.has_valid_signature()
    ]
    included.sort(key=lambda d: d.node_id)
    for a, b in pairwise(included):
        if a.node_id == b.node_id:  # impossible with one descriptor per node and vote
            raise ConsensusComputationError("two descriptors of one node have a majority")

    schedule = clock.schedule(epoch)
    return Consensus(
        epoch=epoch,
        valid_after_ms=schedule.valid_after,
        fresh_until_ms=schedule.fresh_until,
        valid_until_ms=schedule.valid_until,
        parameters=parameters,
        geometry_hash=geometry_hash,
        layers=assign_layers(epoch, (d for d in included if d.role is Role.MIX), parameters.layers),
        gateways=tuple(d.node_id for d in included if d.role is Role.GATEWAY),
        descriptors=tuple(included),
    )
