"""The backward, vectorized pool-mass trace against hand computations and a plain forward run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.config import SimConfig
from simulations.eventlog import PacketKind
from simulations.metrics import entropy_bits
from simulations.model import generate
from simulations.pools import pool_view
from simulations.senders import trace_senders
from tests.simulations.helpers import forward_pool_mass, single_node_log


def test_three_packets_through_one_mix_by_hand() -> None:
    # A (client 0) in at 0, B (client 1) in at 1; one leaves at 2 while both are in: ½ each.
    # C (client 2) in at 2.5; the pool holds A ½, B ½, C 1 over 2 packets; the next to leave
    # at 3 takes half of that: (¼, ¼, ½); the last one leaves alone with the rest, the same.
    log = single_node_log([0, 1, 2], [0.0, 1.0, 2.5], [3.0, 2.0, 4.0], clients=3)
    dist = trace_senders(log, pool_view(log), np.array([0, 1, 2]), mass_floor=1e-15)
    assert dist.of(1) == pytest.approx({0: 0.5, 1: 0.5})
    assert dist.of(0) == pytest.approx({0: 0.25, 1: 0.25, 2: 0.5})
    assert dist.of(2) == pytest.approx({0: 0.25, 1: 0.25, 2: 0.5})
    assert entropy_bits(dist) == pytest.approx([1.5, 1.0, 1.5])


def test_an_emptied_pool_forgets_what_it_held() -> None:
    # The pool empties at t=1, so the packet leaving at 3 can only be the one that came at 2.
    log = single_node_log([0, 1], [0.0, 2.0], [1.0, 3.0], clients=2)
    dist = trace_senders(log, pool_view(log), np.array([1]), mass_floor=1e-15)
    assert dist.of(0) == pytest.approx({1: 1.0})


def test_a_corrupt_mix_links_its_packets() -> None:
    log = single_node_log([0, 1, 2], [0.0, 1.0, 2.5], [3.0, 2.0, 4.0], clients=3, corrupt=True)
    dist = trace_senders(log, pool_view(log), np.array([0, 1, 2]), mass_floor=1e-15)
    assert [dist.of(i) for i in range(3)] == [{0: 1.0}, {1: 1.0}, {2: 1.0}]


@pytest.mark.parametrize(
    "config",
    [
        SimConfig(
            clients=12,
            layers=2,
            width=2,
            gateways=2,
            mu=4.0,
            lambda_p=1.5,
            lambda_l=1.0,
            lambda_d=0.5,
            lambda_m=2.0,
            duration=25.0,
            warmup=3.0,
            seed=3,
        ),
        SimConfig(
            clients=9,
            layers=3,
            width=2,
            gateways=0,
            mu=6.0,
            lambda_p=2.0,
            lambda_m=1.0,
            workload="poisson",
            message_rate=1.0,
            corrupt_fraction=0.34,
            duration=20.0,
            warmup=2.0,
            seed=5,
        ),
        SimConfig(
            clients=10,
            layers=2,
            width=3,
            gateways=2,
            mu=3.0,
            lambda_p=1.0,
            lambda_d=1.0,
            corrupt_fraction=0.5,
            corrupt_gateways=0.5,
            link_latency=0.01,
            duration=20.0,
            warmup=3.0,
            seed=8,
        ),
    ],
)
def test_backward_trace_equals_the_forward_pool_mass_method(config: SimConfig) -> None:
    log = generate(config, np.random.default_rng(config.seed))
    log.validate()
    forward = forward_pool_mass(log)
    delivered = log.delivered()
    targets = np.flatnonzero(log.from_client() & (delivered > config.effective_warmup))
    assert targets.shape[0] > 50
    dist = trace_senders(log, pool_view(log), targets, mass_floor=1e-14)
    last = log.last_row()[targets]
    for i in range(targets.shape[0]):
        belief = forward[last[i]]
        clients = belief[:-1] / belief[:-1].sum()
        expected = {c: p for c, p in enumerate(clients) if p > 1e-9}
        got = dist.of(i)
        assert set(got) >= set(expected)
        for client, p in got.items():
            assert p == pytest.approx(clients[client], abs=1e-8)
        assert dist.node_mass[i] == pytest.approx(belief[-1], abs=1e-8)
    assert np.all(dist.traced_mass > 1 - 1e-9)


def test_a_target_that_only_mixed_with_itself_has_zero_entropy() -> None:
    log = single_node_log([4], [0.0], [1.0], clients=5)
    dist = trace_senders(log, pool_view(log), np.array([0]), mass_floor=1e-12)
    assert entropy_bits(dist)[0] == 0.0


def test_distributions_sum_to_one_and_entropy_is_bounded_by_the_clients() -> None:
    config = SimConfig(clients=20, layers=2, width=2, gateways=2, lambda_l=1.0, targets=200, seed=1)
    log = generate(config, np.random.default_rng(1))
    targets = np.flatnonzero(log.kind == PacketKind.REAL)[-200:]
    dist = trace_senders(log, pool_view(log), targets, mass_floor=1e-10)
    sums = np.add.reduceat(dist.probability, dist.offsets[:-1])
    assert np.allclose(sums, 1.0)
    h = entropy_bits(dist)
    assert np.all((h >= 0) & (h <= math.log2(20) + 1e-9))
