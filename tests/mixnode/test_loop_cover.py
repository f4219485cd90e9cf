"""Loop cover: routes through every layer and back, and the missing-loop (n−1) alarm."""

from __future__ import annotations

import random
import time

from directory import EpochClock, Parameters, SigningKey, compute_consensus
from directory.descriptor import Address, Role, sign_descriptor
from directory.shared_random import Reveal, reveal_for
from directory.vote import sign_vote
from mixnode.loop_cover import LoopCover, draw_delay_ms
from sphinx_packets import Geometry, NodeKeys, SphinxKey, unwrap

GEOMETRY = Geometry.default()


def _network(rng: random.Random) -> tuple[object, dict[bytes, SphinxKey]]:
    clock = EpochClock(origin_ms=int(time.time() * 1000) - 3_600_000, length_ms=1_200_000)
    epoch = clock.epoch_at(time.time())
    authorities = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(3)]
    keys: dict[bytes, SphinxKey] = {}
    descriptors = []
    for index in range(8):
        identity = SigningKey.from_seed(rng.randbytes(32))
        key = SphinxKey.generate(epoch, rng=rng.randbytes)
        descriptor = sign_descriptor(
            identity, epoch=epoch, name=f"n{index}",
            role=Role.GATEWAY if index >= 6 else Role.MIX, link_key=rng.randbytes(32),
            sphinx_keys=(key.public_key, rng.randbytes(32), rng.randbytes(32)),
            addresses=(Address("192.0.2.1", 1000 + index),), version="0.1.0",
        )
        keys[descriptor.node_id] = key
        descriptors.append(descriptor)
    reveals = [Reveal(epoch, k.public_key, reveal_for(k, epoch)) for k in authorities]
    votes = [
        sign_vote(k, epoch=epoch, parameters=Parameters.default(), geometry_hash=GEOMETRY.hash(),
                  commitment=r.commitment(), descriptors=descriptors)
        for k, r in zip(authorities, reveals, strict=True)
    ]
    consensus = compute_consensus(
        votes, epoch=epoch, authorities=[k.public_key for k in authorities], clock=clock,
        reveals=reveals,
    )
    return consensus, keys


def test_a_mix_loop_visits_every_other_layer_and_a_gateway_then_returns() -> None:
    rng = random.Random(4)
    consensus, keys = _network(rng)
    mix = consensus.layers[1][0]  # type: ignore[attr-defined]
    cover = LoopCover(GEOMETRY, mix, rng.randbytes(32), rng=rng)
    loop = cover.build(consensus, now=100.0)  # type: ignore[arg-type]
    assert loop is not None and cover.outstanding == 1
    hop, packet, visited = loop.first_hop, loop.packet, []
    while True:
        visited.append(hop)
        result = unwrap(GEOMETRY, NodeKeys((keys[hop],)), packet)
        if not hasattr(result, "next_node_id"):
            break
        hop, packet = result.next_node_id, result.packet  # type: ignore[union-attr]
    layers = consensus.layers  # type: ignore[attr-defined]
    assert visited[0] in layers[2] and visited[1] in consensus.gateways  # type: ignore[attr-defined]
    assert visited[2] in layers[0] and visited[3] == mix
    assert cover.returned(result.payload)  # type: ignore[union-attr]
    assert not cover.returned(result.payload)  # once only  # type: ignore[union-attr]


def test_missing_loops_raise_the_ratio() -> None:
    rng = random.Random(5)
    consensus, _ = _network(rng)
    gateway = consensus.gateways[0]  # type: ignore[attr-defined]
    cover = LoopCover(GEOMETRY, gateway, rng.randbytes(32), rng=rng, grace=1.0)
    loops = [cover.build(consensus, now=0.0) for _ in range(40)]  # type: ignore[arg-type]
    assert all(loop is not None for loop in loops)
    assert cover.missing_ratio() == 0.0
    assert cover.expire(now=1.0 - 1e-9) == 0  # none overdue before its delays and grace
    assert cover.expire(now=1000.0) == 40
    assert cover.missing_ratio() == 1.0 and cover.missing == 40


def test_delays_are_capped() -> None:
    rng = random.Random(6)
    draws = [draw_delay_ms(rng, 50, 1000) for _ in range(20_000)]
    assert max(draws) <= 1000 and 45 < sum(draws) / len(draws) < 55
