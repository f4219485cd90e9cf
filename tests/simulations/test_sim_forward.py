"""Forward per-packet entropy: the vectorized trace against a plain event-by-event run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.config import SimConfig
from simulations.forward import forward_entropy
from simulations.model import generate
from simulations.pools import pool_view
from simulations.runner import run
from tests.simulations.helpers import forward_packet_mass, single_node_log


def test_three_packets_through_one_mix_by_hand() -> None:
    # A in at 0, B in at 1, B-or-A out at 2 (½ each), C in at 2.5, out at 3 and 4. A's mass:
    # ½ leaves at 2; the pool then holds A ½ over two packets, so ¼ leaves at 3 and ¼ at 4.
    log = single_node_log([0, 1, 2], [0.0, 1.0, 2.5], [3.0, 2.0, 4.0], clients=3)
    result = forward_entropy(log, pool_view(log), np.array([0, 1, 2]), mass_floor=1e-15)
    assert result.entropy == pytest.approx([1.5, 1.5, 1.0])
    assert result.traced_mass == pytest.approx([1.0, 1.0, 1.0])
    assert forward_packet_mass(log, 0) == pytest.approx({1: 0.5, 0: 0.25, 2: 0.25})


@pytest.mark.parametrize(
    "config",
    [
        SimConfig(
            clients=12, layers=2, width=2, gateways=2, mu=4.0, lambda_p=1.5, lambda_l=1.0, lambda_d=0.5,
            lambda_m=2.0, duration=25.0, warmup=3.0, seed=3,
        ),
        SimConfig(
            clients=9, layers=3, width=2, gateways=0, mu=6.0, lambda_p=2.0, lambda_m=1.0, workload="poisson",
            message_rate=1.0, corrupt_mixes=2, duration=20.0, warmup=2.0, seed=5,
        ),
        SimConfig(
            clients=10, layers=2, width=3, gateways=2, mu=3.0, lambda_d=1.0, corrupt_layers=(2,),
            corrupt_gateways=0.5, link_latency=0.01, duration=20.0, warmup=3.0, seed=8,
        ),
    ],
)  # fmt: skip
def test_forward_trace_equals_the_plain_forward_run(config: SimConfig) -> None:
    log = generate(config, np.random.default_rng(config.seed))
    targets = np.flatnonzero(log.from_client() & (log.delivered() > config.effective_warmup))[:50]
    assert targets.shape[0] == 50
    result = forward_entropy(log, pool_view(log), targets, mass_floor=1e-14)
    for i, target in enumerate(targets):
        exits = forward_packet_mass(log, int(target))
        total = sum(exits.values())
        p = np.array([m / total for m in exits.values() if m > 0])
        assert result.entropy[i] == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-8)
        assert result.traced_mass[i] == pytest.approx(total, abs=1e-8)


def test_forward_entropy_counts_packets_and_cover_so_it_exceeds_sender_entropy() -> None:
    config = SimConfig(clients=30, layers=3, width=3, lambda_l=1.0, lambda_d=1.0, targets=300, seed=2)
    s = run(config).summary
    assert s.entropy_mean <= math.log2(config.clients)
    assert s.forward_entropy_mean > s.entropy_mean + 1.0
    corrupt = run(config.replace(corrupt_fraction=1.0, corrupt_gateways=1.0)).forward_entropy
    assert np.all(corrupt == 0.0)
