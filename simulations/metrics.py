"""Metrics computed from an event log: anonymity, unlinkability, latency, cover overhead, pools.

Nothing here knows how the log was made; the model and (later) the emulation feed it alike.
The adversary's beliefs come only from its view (link timings and corrupt nodes, through
`simulations.pools`); the ground truth in the log (true senders, packet kinds) is used only
to score those beliefs and to count traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulations.errors import NoTargetsError
from simulations.eventlog import EventLog, NodeRole, PacketKind
from simulations.pools import pool_view
from simulations.senders import SenderDistributions, trace_senders

StageProgress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Window:
    """The measurement window: messages delivered within [start, end]."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one run. Entropies in bits, times in seconds."""

    measured_targets: int
    entropy_mean: float
    entropy_median: float
    entropy_p05: float
    anonymity_set: float  # 2 ** entropy_mean
    anonymity_set_mean: float  # mean over targets of 2 ** H
    delta: float  # δ at the configured ε
    top1_rate: float  # fraction of targets whose true sender is the adversary's best guess
    true_sender_probability: float  # mean probability the adversary gives the true sender
    latency_mean: float  # end to end: from the message's creation to its delivery
    latency_median: float
    latency_p95: float
    latency_p99: float
    network_latency_mean: float  # from emission to delivery
    real_messages: int  # real messages delivered in the window
    packets: int
    packet_hops: int
    cover_per_real: float  # cover packets per real packet
    cover_hops_per_real_hop: float
    mean_pool_mix: float  # time-averaged packets held by a mix
    mean_pool_gateway: float  # … by a gateway direction (nan without gateways)
    node_mass_mean: float  # traced mass that landed on mix loops, before conditioning
    truncated_mass_max: float  # largest mass lost to the floor, over targets


@dataclass(frozen=True, slots=True, eq=False)
class Metrics:
    summary: Summary
    entropy: np.ndarray  # bits, per target
    delta: np.ndarray  # per target
    latency: np.ndarray  # end-to-end latency of every real message delivered in the window
    pool_by_layer: tuple[float, ...]  # mean occupancy of a mix, layer by layer
    distributions: SenderDistributions


def entropy_bits(dist: SenderDistributions) -> np.ndarray:
    """Shannon entropy H = −Σ p log₂ p of each target's sender distribution."""
    n = dist.targets.shape[0]
    owner = np.repeat(np.arange(n), np.diff(dist.offsets))
    p = dist.probability
    terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return np.maximum(np.bincount(owner, weights=terms, minlength=n), 0.0)


def true_sender_probability(dist: SenderDistributions, true_sender: np.ndarray) -> np.ndarray:
    """The probability each target's distribution gives its actual sender."""
    n = dist.targets.shape[0]
    owner = np.repeat(np.arange(n), np.diff(dist.offsets))
    hit = dist.client == true_sender[owner]
    return np.bincount(owner[hit], weights=dist.probability[hit], minlength=n)


def top1(dist: SenderDistributions, true_sender: np.ndarray) -> np.ndarray:
    """Whether each target's true sender has the largest probability (ties share the credit)."""
    n = dist.targets.shape[0]
    owner = np.repeat(np.arange(n), np.diff(dist.offsets))
    best = np.full(n, -1.0)
    np.maximum.at(best, owner, dist.probability)
    at_best = dist.probability >= best[owner] * (1 - 1e-12)
    ties = np.bincount(owner[at_best], minlength=n)
    p_true = true_sender_probability(dist, true_sender)
    return np.where(p_true >= best * (1 - 1e-12), 1.0 / np.maximum(ties, 1), 0.0)


def unlinkability_delta(
    dist: SenderDistributions, true_sender: np.ndarray, clients: int, epsilon: float
) -> np.ndarray:
    """δ(ε) per target: the hockey-stick divergence against a uniformly chosen other sender.

    With a uniform prior over senders the posterior odds p(s*)/p(s) of the true sender s*
    against another sender s equal the likelihood ratio of the adversary's observation under
    the two hypotheses, so ℓ(s) = ln p(s*) − ln p(s) is the privacy loss. The observation is
    (ε, δ)-indistinguishable between s* and s when δ ≥ E[(1 − e^(ε − ℓ))⁺] over observations
    made when s* sent; each target is one such observation. This returns, per target, the
    mean of (1 − e^ε p(s)/p(s*))⁺ over the other clients s (clients with p(s) = 0 count 1).
    """
    n = dist.targets.shape[0]
    owner = np.repeat(np.arange(n), np.diff(dist.offsets))
    p_true = true_sender_probability(dist, true_sender)
    others = dist.client != true_sender[owner]
    safe_true = np.where(p_true > 0, p_true, 1.0)
    loss = np.maximum(0.0, 1.0 - math.exp(epsilon) * dist.probability / safe_true[owner])
    listed = np.bincount(owner[others], minlength=n)
    listed_sum = np.bincount(owner[others], weights=loss[others], minlength=n)
    delta = (listed_sum + (clients - 1 - listed)) / (clients - 1)
    return np.where(p_true > 0, delta, 0.0)


def real_latencies(log: EventLog, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """End-to-end and network latency of every real message delivered within the window."""
    delivered = log.delivered()
    sel = (log.kind == PacketKind.REAL) & (delivered >= window.start) & (delivered <= window.end)
    return delivered[sel] - log.created[sel], delivered[sel] - log.emitted[sel]


def cover_overhead(log: EventLog) -> tuple[float, float]:
    """Cover packets per real packet, and cover packet-hops per real packet-hop."""
    real = log.kind == PacketKind.REAL
    hops = np.diff(log.first_row)
    n_real = int(real.sum())
    if n_real == 0:
        return math.inf, math.inf
    return (log.packets - n_real) / n_real, float(hops[~real].sum()) / float(hops[real].sum())


def mean_occupancy(log: EventLog) -> np.ndarray:
    """Time-averaged number of packets each node holds over [0, horizon] (Little's law)."""
    residence = np.minimum(log.t_out, log.horizon) - np.minimum(log.t_in, log.horizon)
    return np.bincount(log.node, weights=residence, minlength=log.nodes) / log.horizon


def occupancy_distribution(log: EventLog, node: int, start: float, end: float) -> np.ndarray:
    """Fraction of [start, end] during which ``node`` holds exactly k packets, for k = 0, 1, …"""
    rows = log.node == node
    n = int(rows.sum())
    times = np.concatenate([log.t_in[rows], log.t_out[rows]])
    steps = np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)])
    order = np.lexsort((-steps, times))  # arrivals first at equal times
    bounds = np.concatenate([[-np.inf], times[order], [np.inf]])
    levels = np.concatenate([[0], np.cumsum(steps[order])])  # level k holds on [bounds[k], bounds[k+1])
    clipped = np.clip(bounds, start, end)
    spans = clipped[1:] - clipped[:-1]
    return np.bincount(levels, weights=spans) / (end - start)


def departure_times(log: EventLog, node: int) -> np.ndarray:
    """Sorted times at which packets leave ``node``."""
    return np.sort(log.t_out[log.node == node])


def measure(
    log: EventLog,
    targets: np.ndarray,
    window: Window,
    *,
    epsilon: float,
    mass_floor: float,
    progress: StageProgress | None = None,
) -> Metrics:
    """Every metric of a run, for the given target messages (real packets delivered to clients)."""
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape[0] == 0:
        raise NoTargetsError("no target messages: lengthen the run or lower the warm-up")
    if progress is not None:
        progress("adversary's view", 0, 1)
    view = pool_view(log)
    trace_progress: Callable[[int, int], None] | None = None
    if progress is not None:
        progress("adversary's view", 1, 1)
        report = progress

        def trace_progress(done: int, total: int) -> None:
            report("tracing targets", done, total)

    dist = trace_senders(log, view, targets, mass_floor=mass_floor, progress=trace_progress)
    del view
    true_sender = log.source[targets]
    entropy = entropy_bits(dist)
    delta = unlinkability_delta(dist, true_sender, log.clients, epsilon)
    latency, network = real_latencies(log, window)
    cover, cover_hops = cover_overhead(log)
    occupancy = mean_occupancy(log)
    mix = log.node_role == NodeRole.MIX
    layers = int(log.node_layer.max(initial=-1)) + 1
    by_layer = tuple(float(occupancy[mix & (log.node_layer == layer)].mean()) for layer in range(layers))
    gateway = log.node_role != NodeRole.MIX

    def q(values: np.ndarray, quantile: float) -> float:
        return float(np.quantile(values, quantile)) if values.shape[0] else math.nan

    summary = Summary(
        measured_targets=int(targets.shape[0]),
        entropy_mean=float(entropy.mean()),
        entropy_median=q(entropy, 0.5),
        entropy_p05=q(entropy, 0.05),
        anonymity_set=float(2.0 ** entropy.mean()),
        anonymity_set_mean=float(np.mean(2.0**entropy)),
        delta=float(delta.mean()),
        top1_rate=float(top1(dist, true_sender).mean()),
        true_sender_probability=float(true_sender_probability(dist, true_sender).mean()),
        latency_mean=float(latency.mean()) if latency.shape[0] else math.nan,
        latency_median=q(latency, 0.5),
        latency_p95=q(latency, 0.95),
        latency_p99=q(latency, 0.99),
        network_latency_mean=float(network.mean()) if network.shape[0] else math.nan,
        real_messages=int(latency.shape[0]),
        packets=log.packets,
        packet_hops=log.rows,
        cover_per_real=cover,
        cover_hops_per_real_hop=cover_hops,
        mean_pool_mix=float(occupancy[mix].mean()),
        mean_pool_gateway=float(occupancy[gateway].mean()) if gateway.any() else math.nan,
        node_mass_mean=float(dist.node_mass.mean()),
        truncated_mass_max=float(max(0.0, (1.0 - dist.traced_mass).max())),
    )
    return Metrics(summary, entropy, delta, latency, by_layer, dist)
