"""Metrics computed from an event log: anonymity, unlinkability, latency, cover overhead, pools.

Headline figures come with their standard error over targets (`simulations.stats`).

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
from simulations.forward import forward_entropy
from simulations.pools import pool_view
from simulations.senders import SenderDistributions, trace_senders
from simulations.stats import clustered_standard_error, ratio_standard_error, standard_error

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
    window_start: float  # the measurement window actually used (the warm-up)
    window_end: float  # … and its end (the duration)
    entropy_mean: float  # sender entropy over clients, the headline
    entropy_mean_se: float  # its standard error over targets
    entropy_median: float
    entropy_p05: float
    anonymity_set: float  # 2 ** entropy_mean
    anonymity_set_mean: float  # mean over targets of 2 ** H
    forward_entropy_mean: float  # per-packet entropy over packets leaving the last layer (Loopix simulator)
    forward_entropy_mean_se: float
    delta: float  # δ at the configured ε
    delta_se: float
    log_ratio_mean: float  # mean ln(p(A)/p(B)) over other senders B with p(B) > 0 (Loopix simulator)
    log_ratio_mean_se: float
    log_ratio_zero_share: float  # share of (target, other sender) pairs with p(B) = 0
    delta_at_log_ratio: float  # δ(ε) at ε = log_ratio_mean: what the zero share understates
    top1_rate: float  # fraction of targets whose true sender is the adversary's best guess
    top1_rate_se: float
    true_sender_probability: float  # mean probability the adversary gives the true sender
    latency_mean: float  # end to end: from the message's creation to its delivery
    latency_mean_se: float  # clustered by sending client (a client's messages share its queue)
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
    corrupt_mix_count: int  # mixes actually corrupt
    corrupt_gateway_count: int  # gateways actually corrupt
    node_mass_mean: float  # traced mass that landed on node loops, before conditioning
    truncated_mass_max: float  # largest mass lost to the floor, over targets


@dataclass(frozen=True, slots=True, eq=False)
class Metrics:
    summary: Summary
    entropy: np.ndarray  # bits, per target
    forward_entropy: np.ndarray  # bits, per target
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


@dataclass(frozen=True, slots=True, eq=False)
class LogRatios:
    """Per target: Σ ln(p(A)/p(B)) over other senders B with p(B) > 0, how many such B, and how
    many other senders have p(B) = 0."""

    total: np.ndarray
    positive: np.ndarray
    zero: np.ndarray

    def mean(self) -> float:
        count = float(self.positive.sum())
        return float(self.total.sum()) / count if count else math.nan

    def zero_share(self) -> float:
        pairs = float(self.positive.sum() + self.zero.sum())
        return float(self.zero.sum()) / pairs if pairs else math.nan


def log_ratios(dist: SenderDistributions, true_sender: np.ndarray, clients: int) -> LogRatios:
    """The log-ratio unlinkability of the Loopix authors' simulator, against every other sender.

    That simulator compares the true sender A of a target with one other sender B: ε̂ is the
    mean of ln(p(A)/p(B)) over targets where p(B) > 0, and δ̂ the share of targets where
    p(B) = 0. Taking B uniformly among the other clients, this returns the exact expectation
    over B instead of one draw. Targets whose true sender has p(A) = 0 (only when the floor cut
    everything) count no pair.
    """
    n = dist.targets.shape[0]
    owner = np.repeat(np.arange(n), np.diff(dist.offsets))
    p_true = true_sender_probability(dist, true_sender)
    others = (dist.client != true_sender[owner]) & (p_true[owner] > 0)
    safe = np.where(p_true > 0, p_true, 1.0)
    ratio = np.log(safe[owner[others]] / dist.probability[others])
    total = np.bincount(owner[others], weights=ratio, minlength=n)
    positive = np.bincount(owner[others], minlength=n).astype(np.float64)
    zero = np.where(p_true > 0, clients - 1 - positive, 0.0)
    return LogRatios(total, positive, zero)


def real_messages(log: EventLog, window: Window) -> np.ndarray:
    """Real messages delivered within the window."""
    delivered = log.delivered()
    selected: np.ndarray = np.flatnonzero(
        (log.kind == PacketKind.REAL) & (delivered >= window.start) & (delivered <= window.end)
    )
    return selected


def real_latencies(log: EventLog, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """End-to-end and network latency of every real message delivered within the window."""
    sel = real_messages(log, window)
    delivered = log.delivered()[sel]
    return delivered - log.created[sel], delivered - log.emitted[sel]


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
    recognise_node_loops: bool = False,
    progress: StageProgress | None = None,
) -> Metrics:
    """Every metric of a run, for the given target messages (real packets delivered to clients).

    With ``recognise_node_loops`` the adversary knows which packets are mix and gateway loops
    and leaves them out of its view (the conservative variant: loops then hide nothing).
    """
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape[0] == 0:
        raise NoTargetsError("no target messages: lengthen the run or lower the warm-up")
    seen, seen_targets = log, targets
    if recognise_node_loops:
        keep = log.from_client()
        seen = log.select(keep)
        seen_targets = (np.cumsum(keep) - 1)[targets]

    def stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        report = progress

        def update(done: int, total: int) -> None:
            report(name, done, total)

        return update

    adversary = stage("adversary's view")
    if adversary is not None:
        adversary(0, 1)
    view = pool_view(seen)
    if adversary is not None:
        adversary(1, 1)
    dist = trace_senders(seen, view, seen_targets, mass_floor=mass_floor, progress=stage("tracing targets"))
    forward = forward_entropy(seen, view, seen_targets, mass_floor=mass_floor, progress=stage("tracing forward"))
    del view, seen
    true_sender = log.source[targets]
    entropy = entropy_bits(dist)
    delta = unlinkability_delta(dist, true_sender, log.clients, epsilon)
    ratios = log_ratios(dist, true_sender, log.clients)
    ratio_mean = ratios.mean()
    delta_at_ratio = (
        float(unlinkability_delta(dist, true_sender, log.clients, ratio_mean).mean())
        if math.isfinite(ratio_mean)
        else math.nan
    )
    hits = top1(dist, true_sender)
    delivered = real_messages(log, window)
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
        window_start=float(window.start),
        window_end=float(window.end),
        entropy_mean=float(entropy.mean()),
        entropy_mean_se=standard_error(entropy),
        entropy_median=q(entropy, 0.5),
        entropy_p05=q(entropy, 0.05),
        anonymity_set=float(2.0 ** entropy.mean()),
        anonymity_set_mean=float(np.mean(2.0**entropy)),
        forward_entropy_mean=float(forward.entropy.mean()),
        forward_entropy_mean_se=standard_error(forward.entropy),
        delta=float(delta.mean()),
        delta_se=standard_error(delta),
        log_ratio_mean=ratio_mean,
        log_ratio_mean_se=ratio_standard_error(ratios.total, ratios.positive),
        log_ratio_zero_share=ratios.zero_share(),
        delta_at_log_ratio=delta_at_ratio,
        top1_rate=float(hits.mean()),
        top1_rate_se=standard_error(hits),
        true_sender_probability=float(true_sender_probability(dist, true_sender).mean()),
        latency_mean=float(latency.mean()) if latency.shape[0] else math.nan,
        latency_mean_se=clustered_standard_error(latency, log.source[delivered]),
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
        corrupt_mix_count=int(log.corrupt[mix].sum()),
        corrupt_gateway_count=int(log.corrupt[log.node_role == NodeRole.INGRESS].sum()),
        node_mass_mean=float(dist.node_mass.mean()),
        truncated_mass_max=float(max(0.0, (1.0 - dist.traced_mass).max())),
    )
    return Metrics(summary, entropy, forward.entropy, delta, latency, by_layer, dist)
