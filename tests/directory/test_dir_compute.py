"""The consensus computation: determinism, majority rules, medians, layers."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from dir_helpers import GEOMETRY, make_descriptor, make_network, make_vote, signing_key
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.compute import assign_layers, compute_consensus, low_median
from directory.consensus import decode_consensus
from directory.descriptor import Role
from directory.epoch import EpochClock
from directory.errors import ConsensusComputationError, UnknownAuthorityError
from directory.parameters import Parameters
from sphinx_packets import Geometry

CLOCK = EpochClock()
EPOCH = 12


def _authorities(rng: random.Random, n: int):  # type: ignore[no-untyped-def]
    keys = [signing_key(rng) for _ in range(n)]
    return keys, [k.public_key for k in keys]


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
    reference = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK).to_bytes()
    shuffled = list(votes)
    order.shuffle(shuffled)
    again = compute_consensus(
        shuffled, epoch=EPOCH, authorities=list(reversed(pinned)), clock=CLOCK
    )
    assert again.to_bytes() == reference
    assert decode_consensus(reference) == again


def test_descriptor_needs_more_than_half_of_the_votes() -> None:
    rng = random.Random(1)
    keys, pinned = _authorities(rng, 5)
    a, b, c = (make_descriptor(rng, EPOCH) for _ in range(3))
    votes = [
        make_vote(keys[0], EPOCH, [a, b, c]),
        make_vote(keys[1], EPOCH, [a, b]),
        make_vote(keys[2], EPOCH, [a]),
        make_vote(keys[3], EPOCH, [c]),
    ]
    # 4 votes: a is in 3 (> 2), b in 2 (not > 2), c in 2.
    consensus = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    assert consensus.descriptor_ids == (a.node_id,)


def test_differing_descriptors_of_one_node_split_the_vote() -> None:
    rng = random.Random(2)
    keys, pinned = _authorities(rng, 3)
    node_key = signing_key(rng)
    first = make_descriptor(rng, EPOCH, key=node_key, port=1)
    second = make_descriptor(rng, EPOCH, key=node_key, port=2)
    votes = [
        make_vote(keys[0], EPOCH, [first]),
        make_vote(keys[1], EPOCH, [second]),
        make_vote(keys[2], EPOCH, [second]),
    ]
    consensus = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    assert consensus.descriptors == (second,)
    votes[2] = make_vote(keys[2], EPOCH, [first])
    consensus = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    assert consensus.descriptors == (first,)


def test_descriptor_with_a_bad_signature_is_left_out_even_with_a_majority() -> None:
    rng = random.Random(3)
    keys, pinned = _authorities(rng, 3)
    good = make_descriptor(rng, EPOCH)
    bad = replace(make_descriptor(rng, EPOCH), signature=b"\x01" * 64)
    votes = [make_vote(k, EPOCH, [good, bad]) for k in keys]
    consensus = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    assert consensus.descriptors == (good,)


def test_parameters_are_low_medians() -> None:
    rng = random.Random(4)
    keys, pinned = _authorities(rng, 4)
    delays = [10, 40, 20, 30]
    layers = [3, 5, 2, 4]
    votes = [
        make_vote(k, EPOCH, [], parameters=replace(Parameters.default(), mean_delay_ms=d, layers=n))
        for k, d, n in zip(keys, delays, layers, strict=True)
    ]
    consensus = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    assert consensus.parameters.mean_delay_ms == 20
    assert consensus.parameters.layers == 3
    assert low_median([5]) == 5
    assert low_median([7, 1, 3]) == 3
    assert low_median([4, 1, 3, 2]) == 2


def test_too_few_votes_is_no_consensus() -> None:
    rng = random.Random(5)
    keys, pinned = _authorities(rng, 3)
    with pytest.raises(ConsensusComputationError, match="only 1 of 3 authorities voted"):
        compute_consensus(
            [make_vote(keys[0], EPOCH, [])], epoch=EPOCH, authorities=pinned, clock=CLOCK
        )


def test_votes_from_unknown_keys_or_other_epochs_are_refused() -> None:
    rng = random.Random(6)
    keys, pinned = _authorities(rng, 3)
    stranger = signing_key(rng)
    with pytest.raises(UnknownAuthorityError):
        compute_consensus(
            [make_vote(keys[0], EPOCH, []), make_vote(stranger, EPOCH, [])],
            epoch=EPOCH,
            authorities=pinned,
            clock=CLOCK,
        )
    with pytest.raises(ConsensusComputationError, match="epoch"):
        compute_consensus(
            [make_vote(keys[0], EPOCH, []), make_vote(keys[1], EPOCH + 1, [])],
            epoch=EPOCH,
            authorities=pinned,
            clock=CLOCK,
        )


def test_two_different_votes_by_one_authority_are_refused() -> None:
    rng = random.Random(7)
    keys, pinned = _authorities(rng, 3)
    one = make_vote(keys[0], EPOCH, [])
    other = make_vote(keys[0], EPOCH, [make_descriptor(rng, EPOCH)])
    with pytest.raises(ConsensusComputationError, match="two different votes"):
        compute_consensus(
            [one, other, make_vote(keys[1], EPOCH, [])],
            epoch=EPOCH,
            authorities=pinned,
            clock=CLOCK,
        )


def test_geometry_needs_a_majority() -> None:
    rng = random.Random(8)
    keys, pinned = _authorities(rng, 4)
    other = Geometry(hops=4, user_payload_size=1000)
    votes = [
        make_vote(keys[0], EPOCH, []),
        make_vote(keys[1], EPOCH, []),
        make_vote(keys[2], EPOCH, [], geometry=other),
        make_vote(keys[3], EPOCH, [], geometry=other),
    ]
    with pytest.raises(ConsensusComputationError, match="geometry"):
        compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    consensus = compute_consensus(votes[:3], epoch=EPOCH, authorities=pinned, clock=CLOCK)
    assert consensus.geometry_hash == GEOMETRY.hash()


def test_times_come_from_the_clock() -> None:
    rng = random.Random(9)
    keys, pinned = _authorities(rng, 1)
    consensus = compute_consensus(
        [make_vote(keys[0], EPOCH, [])], epoch=EPOCH, authorities=pinned, clock=CLOCK
    )
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
    epoch=st.integers(0, 2**40),
)
def test_layer_sizes_differ_by_at_most_one(
    seed: int, mixes: int, layer_count: int, epoch: int
) -> None:
    rng = random.Random(seed)
    nodes = [
        make_descriptor(rng, epoch, layer_preference=rng.choice([0, 0, 1, 1, 1, layer_count, 9]))
        for _ in range(mixes)
    ]
    layers = assign_layers(epoch, nodes, layer_count)
    sizes = [len(layer) for layer in layers]
    assert len(layers) == layer_count
    assert max(sizes) - min(sizes) <= 1
    placed = [node for layer in layers for node in layer]
    assert sorted(placed) == sorted(d.node_id for d in nodes)
    assert all(list(layer) == sorted(layer) for layer in layers)
    # The assignment depends on the set of nodes, not the order they come in.
    assert assign_layers(epoch, list(reversed(nodes)), layer_count) == layers


def test_layer_preferences_are_honoured_while_there_is_room() -> None:
    rng = random.Random(10)
    wanting_second = [make_descriptor(rng, EPOCH, layer_preference=2) for _ in range(2)]
    others = [make_descriptor(rng, EPOCH) for _ in range(4)]
    layers = assign_layers(EPOCH, wanting_second + others, 3)
    assert set(layers[1]) == {d.node_id for d in wanting_second}
    crowd = [make_descriptor(rng, EPOCH, layer_preference=1) for _ in range(6)]
    layers = assign_layers(EPOCH, crowd, 3)
    assert [len(layer) for layer in layers] == [2, 2, 2]


def test_layer_assignment_changes_with_the_epoch() -> None:
    rng = random.Random(11)
    nodes = [make_descriptor(rng, 0) for _ in range(30)]
    assert assign_layers(1, nodes, 3) != assign_layers(2, nodes, 3)


def test_gateways_are_listed_and_not_layered() -> None:
    rng = random.Random(12)
    keys, pinned = _authorities(rng, 3)
    network = make_network(rng, EPOCH, 5, 2)
    votes = [make_vote(k, EPOCH, network) for k in keys]
    consensus = compute_consensus(votes, epoch=EPOCH, authorities=pinned, clock=CLOCK)
    gateways = {d.node_id for d in network if d.role is Role.GATEWAY}
    assert set(consensus.gateways) == gateways
    assert all(consensus.layer_of(g) is None for g in gateways)
    assert all(consensus.layer_of(d.node_id) is not None for d in network if d.role is Role.MIX)
    assert consensus.descriptor(network[0].node_id) == network[0]
