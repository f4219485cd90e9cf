"""Metric formulas on hand-made distributions and logs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.eventlog import EventLog, NodeRole, PacketKind
from simulations.metrics import (
    Window,
    cover_overhead,
    entropy_bits,
    log_ratios,
    mean_occupancy,
    measure,
    occupancy_distribution,
    real_latencies,
    top1,
    true_sender_probability,
    unlinkability_delta,
)
from simulations.senders import SenderDistributions
from tests.simulations.helpers import single_node_log


def distributions(*targets: dict[int, float]) -> SenderDistributions:
    clients = [np.array(sorted(t), np.int64) for t in targets]
    probs = [np.array([t[c] for c in sorted(t)]) for t in targets]
    return SenderDistributions(
        targets=np.arange(len(targets), dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum([len(c) for c in clients])]).astype(np.int64),
        client=np.concatenate(clients),
        probability=np.concatenate(probs),
        node_mass=np.zeros(len(targets)),
        traced_mass=np.ones(len(targets)),
    )


def test_entropy_of_known_distributions() -> None:
    d = distributions({3: 1.0}, {0: 0.5, 1: 0.5}, {c: 1 / 8 for c in range(8)}, {0: 0.5, 1: 0.25, 2: 0.25})
    assert entropy_bits(d) == pytest.approx([0.0, 1.0, 3.0, 1.5])


def test_unlinkability_delta_by_hand() -> None:
    d = distributions({0: 0.5, 1: 0.25, 2: 0.25}, {0: 0.5, 1: 0.25, 2: 0.25})
    truth = np.array([0, 1])
    # ε = ln 2: sender 0 vs 1 or 2 is exactly at the bound (0), vs 3 (impossible) fully linkable (1).
    assert unlinkability_delta(d, truth, 4, math.log(2)) == pytest.approx([1 / 3, 1 / 3])
    # ε = 0 against sender 0's message: (1 − ½) + (1 − ½) + 1 over three other senders.
    assert unlinkability_delta(d, truth, 4, 0.0)[0] == pytest.approx(2 / 3)
    # A perfectly uniform distribution over everyone gives δ = 0 for any ε ≥ 0.
    uniform = distributions({c: 0.25 for c in range(4)})
    assert unlinkability_delta(uniform, np.array([2]), 4, 0.0) == pytest.approx([0.0])


def test_log_ratio_unlinkability_by_hand() -> None:
    # Sender 0 sent both; four clients. Target 0: p = (½, ¼, ¼, 0): ln 2 against clients 1 and
    # 2, and client 3 is ruled out. Target 1: uniform over everyone: ln 1 = 0 against all three.
    d = distributions({0: 0.5, 1: 0.25, 2: 0.25}, {c: 0.25 for c in range(4)})
    ratios = log_ratios(d, np.array([0, 0]), 4)
    assert ratios.total == pytest.approx([2 * math.log(2), 0.0])
    assert ratios.positive.tolist() == [2, 3] and ratios.zero.tolist() == [1, 0]
    assert ratios.mean() == pytest.approx(2 * math.log(2) / 5)
    assert ratios.zero_share() == pytest.approx(1 / 6)
    # At that ε the hockey-stick δ is larger than the zero share: the zero share understates it.
    epsilon = ratios.mean()
    delta = unlinkability_delta(d, np.array([0, 0]), 4, epsilon).mean()
    assert delta == pytest.approx(((2 * (1 - math.exp(epsilon) / 2) + 1) / 3 + 0) / 2)
    assert delta > ratios.zero_share()


def test_top1_and_true_sender_probability() -> None:
    d = distributions({0: 0.5, 1: 0.5}, {0: 0.2, 1: 0.8}, {0: 0.9, 2: 0.1})
    truth = np.array([0, 0, 0])
    assert top1(d, truth) == pytest.approx([0.5, 0.0, 1.0])
    assert true_sender_probability(d, truth) == pytest.approx([0.5, 0.2, 0.9])


def _two_hop_log() -> EventLog:
    # Packet 0: real, created 0, emitted 1, through nodes 0 and 1, delivered at 4.
    # Packet 1: a drop, emitted 2, through nodes 0 and 1, gone at 5.
    # Packet 2: a loop, emitted 2.5, through node 0 only, back at 3.
    return EventLog(
        clients=3,
        horizon=10.0,
        kind=np.array([PacketKind.REAL, PacketKind.DROP, PacketKind.LOOP], np.int8),
        source=np.array([0, 1, 2]),
        recipient=np.array([1, -1, 2]),
        created=np.array([0.0, 2.0, 2.5]),
        emitted=np.array([1.0, 2.0, 2.5]),
        received=np.array([4.0, 5.0, 3.0]),
        first_row=np.array([0, 2, 4, 5]),
        node=np.array([0, 1, 0, 1, 0], np.int32),
        t_in=np.array([1.0, 2.0, 2.0, 3.0, 2.5]),
        t_out=np.array([2.0, 4.0, 3.0, 5.0, 3.0]),
        node_role=np.array([NodeRole.MIX, NodeRole.MIX], np.int8),
        node_layer=np.array([0, 1], np.int16),
        corrupt=np.zeros(2, bool),
    )


def test_latency_and_cover_overhead() -> None:
    log = _two_hop_log()
    log.validate()
    end_to_end, network = real_latencies(log, Window(0.0, 10.0))
    assert end_to_end.tolist() == [4.0] and network.tolist() == [3.0]
    assert real_latencies(log, Window(4.5, 10.0))[0].shape == (0,)
    assert cover_overhead(log) == (2.0, 3 / 2)


def test_occupancy() -> None:
    log = _two_hop_log()
    # Node 0 holds packet 0 over [1, 2), packet 1 over [2, 3), packet 2 over [2.5, 3): 2.5 packet-seconds.
    assert mean_occupancy(log) == pytest.approx([2.5 / 10, 4.0 / 10])
    share = occupancy_distribution(log, 0, 0.0, 4.0)
    assert share == pytest.approx([2.0 / 4, 1.5 / 4, 0.5 / 4])


def test_measure_reads_only_the_log() -> None:
    log = single_node_log([0, 1, 2], [0.0, 1.0, 2.5], [3.0, 2.0, 4.0], clients=3)
    metrics = measure(log, np.array([0, 1, 2]), Window(0.0, 5.0), epsilon=1.0, mass_floor=1e-12)
    assert metrics.entropy == pytest.approx([1.5, 1.0, 1.5])
    assert metrics.summary.entropy_mean == pytest.approx(4 / 3)
    assert metrics.summary.anonymity_set == pytest.approx(2 ** (4 / 3))
    assert metrics.summary.real_messages == 3
    assert metrics.summary.cover_per_real == 0.0
