"""The consensus computation: a pure, deterministic function of a set of votes and reveals.

- Only votes for the epoch by pinned authorities count. An authority with two different
  votes among them equivocated: all its votes are left out. At least a majority of the
  pinned authorities (⌊n/2⌋ + 1) must remain.
- A descriptor is included if more than half of the counted votes carry exactly that
  descriptor (equal in every field, so equal in its signed bytes) and its signature
  verifies. The signature of each distinct candidate is checked once.
- Each numeric parameter is the low median of the counted votes' values; the geometry hash
  is the one more than half of them carry, or there is no consensus.
- The shared random value is made from the reveals that match their authors' commitments
  in counted votes; at least t (the signature threshold) are needed. The mixes are dealt to
  layers from it (`directory.shared_random`).

Votes are taken as verified (`decode_vote` checks their signatures), so the order in which
they arrive does not matter: any authority computing from the same votes and reveals gets
the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import pairwise

from directory.consensus import Consensus
from directory.descriptor import NodeDescriptor, Role
from directory.epoch import EpochClock
from directory.errors import ConsensusComputationError, UnknownAuthorityError
from directory.parameters import PARAMETER_NAMES, Parameters
from directory.shared_random import Reveal, commitment, deal_layers, shared_random_value
from directory.signatures import authority_threshold
from directory.vote import Vote


def low_median(values: Sequence[int]) -> int:
    """The lower of the two middle values (the middle one for an odd count)."""
    if not values:
        raise ConsensusComputationError("the median of no values")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def counted_votes(
    votes: Iterable[Vote], *, epoch: int, authorities: Collection[bytes]
) -> tuple[dict[bytes, Vote], frozenset[bytes]]:
    """The vote of each authority that cast exactly one, and the keys of those that cast
    more than one (equivocators, left out)."""
    pinned = set(authorities)
    by_authority: dict[bytes, Vote] = {}
    equivocators: set[bytes] = set()
    for vote in votes:
        if vote.epoch != epoch:
            raise ConsensusComputationError(f"a vote is for epoch {vote.epoch}, not {epoch}")
        if vote.authority_key not in pinned:
            raise UnknownAuthorityError("a vote is by a key that is not a pinned authority")
        known = by_authority.setdefault(vote.authority_key, vote)
        if known is not vote and known != vote:
            equivocators.add(vote.authority_key)
    for key in equivocators:
        del by_authority[key]
    return by_authority, frozenset(equivocators)


def valid_reveals(
    counted: Mapping[bytes, Vote], reveals: Iterable[Reveal], epoch: int
) -> dict[bytes, bytes]:
    """Authority key -> reveal, for the reveals that match their author's commitment in a
    counted vote."""
    found: dict[bytes, bytes] = {}
    for reveal in reveals:
        vote = counted.get(reveal.authority_key)
        if (
            reveal.epoch == epoch
            and vote is not None
            and commitment(epoch, reveal.authority_key, reveal.reveal) == vote.commitment
        ):
            found[reveal.authority_key] = reveal.reveal
    return found


def compute_consensus(
    votes: Iterable[Vote],
    *,
    epoch: int,
    authorities: Collection[bytes],
    clock: EpochClock,
    reveals: Iterable[Reveal],
    threshold: int | None = None,
) -> Consensus:
    """The consensus of `epoch` from `votes` and `reveals`, given the pinned authority keys,
    the signature threshold (default ⌊n/2⌋ + 1) and the clock (for the validity times).
    Raises `ConsensusComputationError` when there is none."""
    pinned = set(authorities)
    needed_reveals = authority_threshold(len(pinned), threshold)
    by_authority, equivocators = counted_votes(votes, epoch=epoch, authorities=pinned)
    count = len(by_authority)
    needed = authority_threshold(len(pinned))
    if count < needed:
        excluded = f" ({len(equivocators)} left out for equivocating)" if equivocators else ""
        raise ConsensusComputationError(
            f"only {count} of {len(pinned)} authorities voted for epoch {epoch}{excluded}, "
            f"{needed} needed"
        )
    ballots = list(by_authority.values())

    geometry_hash, geometry_votes = Counter(v.geometry_hash for v in ballots).most_common(1)[0]
    if 2 * geometry_votes <= count:
        raise ConsensusComputationError("no geometry hash is carried by a majority of the votes")

    revealed = valid_reveals(by_authority, reveals, epoch)
    if len(revealed) < needed_reveals:
        raise ConsensusComputationError(
            f"only {len(revealed)} of the voting authorities revealed for epoch {epoch}, "
            f"{needed_reveals} needed for the shared random value"
        )
    shared_random = shared_random_value(epoch, revealed)

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
        shared_random=shared_random,
        layers=deal_layers(
            shared_random, (d.node_id for d in included if d.role is Role.MIX), parameters.layers
        ),
        gateways=tuple(d.node_id for d in included if d.role is Role.GATEWAY),
        descriptors=tuple(included),
    )
