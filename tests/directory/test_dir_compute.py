"""The consensus computation: determinism, majority rules, equivocators left out, medians,
the shared random value and the layers dealt from it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from statistics import mean

import pytest
from dir_helpers import (
    GEOMETRY,
    make_descriptor,
    make_network,
    make_vote,
    reveal_of,
    reveals_of,
    signing_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.compute import compute_consensus, low_median
from directory.consensus import Consensus, decode_consensus
from directory.descriptor import Role
from directory.epoch import EpochClock
from directory.errors import ConsensusComputationError, UnknownAuthorityError
from directory.parameters import Parameters
from directory.shared_random import (
    Reveal,
    deal_layers,
    layer_order_key,
    shared_random_value,
)
from directory.signatures import SigningKey
from directory.vote import Vote
from sphinx_packets import Geometry

CLOCK = EpochClock()
EPOCH = 12


def _authorities(rng: random.Random, n: int):  # type: ignore[no-untyped-def]
    keys = [signing_key(rng) for _ in range(n)]
    return keys, [k.public_key for k in keys]


def _compute(
    votes: Sequence[Vote],
    keys: Sequence[SigningKey],
    *,
    reveals: Sequence[Reveal] | None = None,
    threshold: int | None = None,
) -> Consensus:
    """The consensus with every authority in `keys` pinned and revealing (unless told)."""
    return compute_consensus(
        votes,
        epoch=EPOCH,
        authorities=[k.public_key for k in keys],
        clock=CLOCK,
        reveals=reveals_of(keys, EPOCH) if reveals is None else reveals,
        threshold=threshold,
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), order=st.randoms(use_true_random=False))
def test_votes_in_any_order_give_identical_bytes(seed: int, order: random.Random) -> None:
    rng = random.Random(seed)
    keys, pinned = _authorities(rng, 5)
    network = make_network(rng, EPOCH, 12, 3)
    votes = []
    for index, key in enumerate(keys):
        # Each authority saw a different subset and proposes different numbers.
        seen = [d for d in network if rng.random() < 0.8]
        parameters = replace(
            Parameters.default(), mean_delay_ms=40 + 10 * index, layers=2 + index % 3
        )
        votes.append(make_vote(key, EPOCH, seen, parameters=parameters))
    reference = _compute(votes, keys).to_bytes()
    shuffled = list(votes)
    order.shuffle(shuffled)
    reveals = reveals_of(keys, EPOCH)
    order.shuffle(reveals)
    again = compute_consensus(
        shuffled, epoch=EPOCH, authorities=list(reversed(pinned)), clock=CLOCK, reveals=reveals
    )
    assert again.to_bytes() == reference
    assert decode_consensus(reference) == again


def test_descriptor_needs_more_than_half_of_the_votes() -> None:
    rng = random.Random(1)
    keys, _ = _authorities(rng, 5)
    a, b, c = (make_descriptor(rng, EPOCH) for _ in range(3))
    votes = [
        make_vote(keys[0], EPOCH, [a, b, c]),
        make_vote(keys[1], EPOCH, [a, b]),
        make_vote(keys[2], EPOCH, [a]),
        make_vote(keys[3], EPOCH, [c]),
    ]
    # 4 votes: a is in 3 (> 2), b in 2 (not > 2), c in 2.
    consensus = _compute(votes, keys)
    assert consensus.descriptor_ids == (a.node_id,)


def test_differing_descriptors_of_one_node_split_the_vote() -> None:
    rng = random.Random(2)
    keys, _ = _authorities(rng, 3)
    node_key = signing_key(rng)
    first = make_descriptor(rng, EPOCH, key=node_key, port=1)
    second = make_descriptor(rng, EPOCH, key=node_key, port=2)
    votes = [
        make_vote(keys[0], EPOCH, [first]),
        make_vote(keys[1], EPOCH, [second]),
        make_vote(keys[2], EPOCH, [second]),
    ]
    consensus = _compute(votes, keys)
    assert consensus.descriptors == (second,)
    votes[2] = make_vote(keys[2], EPOCH, [first])
    consensus = _compute(votes, keys)
    assert consensus.descriptors == (first,)


def test_descriptor_with_a_bad_signature_is_left_out_even_with_a_majority() -> None:
    rng = random.Random(3)
    keys, _ = _authorities(rng, 3)
    good = make_descriptor(rng, EPOCH)
    bad = replace(make_descriptor(rng, EPOCH), signature=b"\x01" * 64)
    votes = [make_vote(k, EPOCH, [good, bad]) for k in keys]
    consensus = _compute(votes, keys)
    assert consensus.descriptors == (good,)


def test_parameters_are_low_medians() -> None:
    rng = random.Random(4)
    keys, _ = _authorities(rng, 4)
    delays = [10, 40, 20, 30]
    layers = [3, 5, 2, 4]
    votes = [
        make_vote(k, EPOCH, [], parameters=replace(Parameters.default(), mean_delay_ms=d, layers=n))
        for k, d, n in zip(keys, delays, layers, strict=True)
    ]
    consensus = _compute(votes, keys)
    assert consensus.parameters.mean_delay_ms == 20
    assert consensus.parameters.layers == 3
    assert low_median([5]) == 5
    assert low_median([7, 1, 3]) == 3
    assert low_median([4, 1, 3, 2]) == 2


def test_too_few_votes_is_no_consensus() -> None:
    rng = random.Random(5)
    keys, _ = _authorities(rng, 3)
    with pytest.raises(ConsensusComputationError, match="only 1 of 3 authorities voted"):
        _compute([make_vote(keys[0], EPOCH, [])], keys)


def test_votes_from_unknown_keys_or_other_epochs_are_refused() -> None:
    rng = random.Random(6)
    keys, _ = _authorities(rng, 3)
    stranger = signing_key(rng)
    with pytest.raises(UnknownAuthorityError):
        _compute([make_vote(keys[0], EPOCH, []), make_vote(stranger, EPOCH, [])], keys)
    with pytest.raises(ConsensusComputationError, match="epoch"):
        _compute([make_vote(keys[0], EPOCH, []), make_vote(keys[1], EPOCH + 1, [])], keys)


def test_an_authority_with_two_different_votes_is_left_out() -> None:
    rng = random.Random(7)
    keys, _ = _authorities(rng, 3)
    node = make_descriptor(rng, EPOCH)
    one = make_vote(keys[0], EPOCH, [node])
    other = make_vote(keys[0], EPOCH, [])
    honest = [make_vote(k, EPOCH, [node]) for k in keys[1:]]
    consensus = _compute([one, other, *honest], keys)
    # Counted: the two honest votes only (the node has 2 of 2), and the shared random value
    # comes from the honest reveals alone.
    assert consensus.descriptors == (node,)
    honest_reveals = {r.authority_key: r.reveal for r in reveals_of(keys[1:], EPOCH)}
    assert consensus.shared_random == shared_random_value(EPOCH, honest_reveals)
    # Whichever version each honest authority saw, both computing from the same set agree.
    assert _compute([other, one, *reversed(honest)], keys).to_bytes() == consensus.to_bytes()
    with pytest.raises(ConsensusComputationError, match="1 left out for equivocating"):
        _compute([one, other, honest[0]], keys)


def test_geometry_needs_a_majority() -> None:
    rng = random.Random(8)
    keys, _ = _authorities(rng, 4)
    other = Geometry(hops=4, user_payload_size=1000)
    votes = [
        make_vote(keys[0], EPOCH, []),
        make_vote(keys[1], EPOCH, []),
        make_vote(keys[2], EPOCH, [], geometry=other),
        make_vote(keys[3], EPOCH, [], geometry=other),
    ]
    with pytest.raises(ConsensusComputationError, match="geometry"):
        _compute(votes, keys)
    consensus = _compute(votes[:3], keys)
    assert consensus.geometry_hash == GEOMETRY.hash()


def test_times_come_from_the_clock() -> None:
    rng = random.Random(9)
    keys, _ = _authorities(rng, 1)
    consensus = _compute([make_vote(keys[0], EPOCH, [])], keys)
    schedule = CLOCK.schedule(EPOCH)
    assert (consensus.valid_after_ms, consensus.fresh_until_ms, consensus.valid_until_ms) == (
        schedule.valid_after,
        schedule.fresh_until,
        schedule.valid_until,
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    mixes=st.integers(0, 40),
    layer_count=st.integers(1, 6),
    shared=st.binary(min_size=32, max_size=32),
)
def test_layer_sizes_differ_by_at_most_one(
    seed: int, mixes: int, layer_count: int, shared: bytes
) -> None:
    rng = random.Random(seed)
    nodes = [rng.randbytes(32) for _ in range(mixes)]
    layers = deal_layers(shared, nodes, layer_count)
    sizes = [len(layer) for layer in layers]
    assert len(layers) == layer_count
    assert max(sizes) - min(sizes) <= 1
    placed = [node for layer in layers for node in layer]
    assert sorted(placed) == sorted(nodes)
    assert all(list(layer) == sorted(layer) for layer in layers)
    # The assignment depends on the set of nodes, not the order they come in.
    assert deal_layers(shared, list(reversed(nodes)), layer_count) == layers


def test_the_shared_random_value_needs_t_matching_reveals() -> None:
    rng = random.Random(13)
    keys, _ = _authorities(rng, 3)
    votes = [make_vote(k, EPOCH, []) for k in keys]
    all_three = _compute(votes, keys)
    two = _compute(votes, keys, reveals=reveals_of(keys[:2], EPOCH))
    # An authority that commits and does not reveal is left out: another value.
    assert two.shared_random != all_three.shared_random
    with pytest.raises(ConsensusComputationError, match="only 1 of the voting authorities"):
        _compute(votes, keys, reveals=reveals_of(keys[:1], EPOCH))
    with pytest.raises(ConsensusComputationError, match="3 needed"):
        _compute(votes, keys, reveals=reveals_of(keys[:2], EPOCH), threshold=3)
    # A reveal that does not match its author's commitment does not count.
    forged = Reveal(EPOCH, keys[2].public_key, bytes(32))
    with pytest.raises(ConsensusComputationError, match="only 1 of the voting"):
        _compute(votes, keys, reveals=[reveal_of(keys[0], EPOCH), forged])
    # Nor does the reveal of an authority whose vote is not counted.
    assert _compute(votes[:2], keys).shared_random == two.shared_random


def _grind_for_layer_zero(guess: bytes, honest: list[bytes], rng: random.Random) -> list[bytes]:
    """20 node ids ground so that, were `guess` the shared random value, the order would be
    A H H A H H ... A A A A A: 17 of them dealt to layer 0 (the best an attacker can do)."""
    honest_keys = sorted(layer_order_key(guess, n) for n in honest)
    gaps = [(b"", honest_keys[0])]
    gaps += [(honest_keys[2 * i - 1], honest_keys[2 * i]) for i in range(1, 15)]
    gaps += [(honest_keys[-1], b"\xff" * 32)] * 5
    ground = []
    for low, high in gaps:
        while True:
            candidate = rng.randbytes(32)
            if low < layer_order_key(guess, candidate) < high and candidate not in ground:
                ground.append(candidate)
                break
    return ground


def _attacker_in_layer_zero(
    honest: list[bytes], attacker: list[bytes], values: list[bytes]
) -> float:
    """Mean number of attacker mixes dealt to layer 0 over the shared random `values`."""
    return mean(
        len(set(deal_layers(value, honest + attacker, 3)[0]) & set(attacker)) for value in values
    )


def test_grinding_keys_does_no_better_than_chance() -> None:
    """30 honest mixes, known to the attacker, and 20 attacker mixes whose ids it grinds
    (node ids are hashes of keys: grinding keys grinds ids) to take layer 0 under the value
    it bets on. The real value is made after the descriptors are fixed, so over 400 epochs
    (fixed seed) the attacker lands in layer 0 as often as chance: hypergeometric, 17 of 50
    places, mean 6.8, sd 1.66, sd of the mean over 400 epochs 0.083."""
    rng = random.Random(2024)
    honest = [rng.randbytes(32) for _ in range(30)]
    bet = rng.randbytes(32)
    attacker = _grind_for_layer_zero(bet, honest, rng)
    # The control: had the attacker known the value (as it knows a hash of public values),
    # the grinding would take 17 of the 17 places of layer 0, every epoch.
    assert _attacker_in_layer_zero(honest, attacker, [bet]) == 17
    values = [rng.randbytes(32) for _ in range(400)]
    share = _attacker_in_layer_zero(honest, attacker, values)
    assert abs(share - 6.8) < 4 * 0.083


def test_gateways_are_listed_and_not_layered() -> None:
    rng = random.Random(12)
    keys, _ = _authorities(rng, 3)
    network = make_network(rng, EPOCH, 5, 2)
    votes = [make_vote(k, EPOCH, network) for k in keys]
    consensus = _compute(votes, keys)
    gateways = {d.node_id for d in network if d.role is Role.GATEWAY}
    assert set(consensus.gateways) == gateways
    assert all(consensus.layer_of(g) is None for g in gateways)
    assert all(consensus.layer_of(d.node_id) is not None for d in network if d.role is Role.MIX)
    assert consensus.descriptor(network[0].node_id) == network[0]
