"""The simulator against closed forms: one exponential mix, and how entropy must move.

One mix with Poisson arrivals at rate λ and exponential delays of mean 1/μ is an M/M/∞
queue: it holds Poisson(λ/μ) packets, its output is a Poisson process of rate λ, and a
departing message's sender entropy is close to log₂(e·λ/μ) bits (Serjantov & Danezis;
Danezis, "The traffic analysis of continuous-time mixes", 2004). Every sender sends rarely
(a million clients share the rate λ), so a departing message's senders are its candidates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.config import SimConfig
from simulations.metrics import departure_times, occupancy_distribution
from simulations.model import generate
from simulations.runner import run

CLIENTS = 1_000_000
WARMUP = 20.0  # twenty mean delays: the mix starts empty


def one_mix(rho: float, duration: float, *, targets: int = 1000, seed: int = 1) -> SimConfig:
    return SimConfig(
        clients=CLIENTS,
        layers=1,
        width=1,
        gateways=0,
        mu=1.0,
        lambda_p=rho / CLIENTS,
        duration=duration,
        warmup=WARMUP,
        targets=targets,
        seed=seed,
    )


# Long runs: consecutive departures see almost the same pool, so the mean needs many mean
# delays (10,000 for λ/μ = 10, 2,000 for λ/μ = 50, about 100,000 messages each).
@pytest.mark.parametrize(("rho", "duration", "targets"), [(10.0, 10_000.0, 20_000), (50.0, 2_000.0, 10_000)])
def test_mean_entropy_of_a_departing_message_is_log2_e_lambda_over_mu(
    rho: float, duration: float, targets: int
) -> None:
    result = run(one_mix(rho, duration, targets=targets))
    assert result.summary.measured_targets == targets
    assert abs(result.summary.entropy_mean - math.log2(math.e * rho)) <= 0.05
    # Forwards, a packet's mass spreads over the departures after it with the same exponential
    # weights, so in one mix with distinct senders the per-packet entropy is the same figure.
    assert abs(result.summary.forward_entropy_mean - math.log2(math.e * rho)) <= 0.05


@pytest.mark.parametrize(("rho", "duration"), [(10.0, 10_000.0), (50.0, 2_000.0)])
def test_the_mix_holds_a_poisson_number_of_messages(rho: float, duration: float) -> None:
    log = generate(one_mix(rho, duration), np.random.default_rng(2))
    share = occupancy_distribution(log, 0, WARMUP, duration)
    k = np.arange(share.shape[0])
    mean = float((k * share).sum())
    variance = float(((k - mean) ** 2 * share).sum())
    poisson = np.exp(-rho + k * math.log(rho) - np.array([math.lgamma(x + 1) for x in k]))
    total_variation = 0.5 * (np.abs(share - poisson).sum() + (1.0 - poisson.sum()))
    assert mean == pytest.approx(rho, rel=0.03)
    assert variance == pytest.approx(rho, rel=0.10)
    assert total_variation < 0.05


@pytest.mark.parametrize(("rho", "duration"), [(10.0, 10_000.0), (50.0, 2_000.0)])
def test_the_output_is_again_poisson_at_rate_lambda(rho: float, duration: float) -> None:
    lam = rho  # μ = 1
    log = generate(one_mix(rho, duration), np.random.default_rng(2))
    leaving = departure_times(log, 0)
    leaving = leaving[(leaving >= WARMUP) & (leaving <= duration)]
    gaps = np.diff(leaving)
    n = gaps.shape[0]
    # Exponential gaps of mean 1/λ: mean, coefficient of variation, and a Kolmogorov–Smirnov
    # distance below the 1% critical value.
    assert gaps.mean() * lam == pytest.approx(1.0, abs=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.02)
    ordered = np.sort(gaps)
    cdf = 1.0 - np.exp(-lam * ordered)
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 1.63 / math.sqrt(n)
    # Independent gaps, and counts per second with variance equal to their mean.
    assert abs(np.corrcoef(gaps[:-1], gaps[1:])[0, 1]) < 4.0 / math.sqrt(n)
    counts = np.histogram(leaving, bins=np.arange(WARMUP, duration, 1.0))[0]
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.05)


def test_entropy_grows_with_lambda_over_mu_in_one_mix() -> None:
    means = [run(one_mix(rho, 600.0, targets=800)).summary.entropy_mean for rho in (2.0, 5.0, 10.0, 20.0)]
    assert means == sorted(means) and len(set(means)) == 4


NETWORK = SimConfig(clients=100, layers=3, width=3, gateways=3, mu=10.0, lambda_p=1.0, targets=800, seed=4)


def test_entropy_grows_with_the_number_of_layers() -> None:
    means = [run(NETWORK.replace(layers=layers)).summary.entropy_mean for layers in (1, 2, 3, 4)]
    assert all(b > a + 0.02 for a, b in zip(means, means[1:], strict=False)), means


def test_entropy_grows_with_lambda_over_mu_in_a_network() -> None:
    by_delay = [run(NETWORK.replace(mu=mu)).summary.entropy_mean for mu in (40.0, 20.0, 10.0, 5.0)]
    assert all(b > a + 0.02 for a, b in zip(by_delay, by_delay[1:], strict=False)), by_delay
    by_rate = [run(NETWORK.replace(lambda_p=lam)).summary.entropy_mean for lam in (0.25, 0.5, 1.0, 2.0)]
    assert all(b > a + 0.02 for a, b in zip(by_rate, by_rate[1:], strict=False)), by_rate


def test_entropy_falls_with_the_fraction_of_corrupt_mixes() -> None:
    means = [run(NETWORK.replace(corrupt_fraction=f)).summary.entropy_mean for f in (0.0, 1 / 3, 2 / 3, 1.0)]
    assert all(b < a - 0.02 for a, b in zip(means, means[1:], strict=False)), means


@pytest.mark.parametrize("gateways", [0, 3])
def test_a_network_of_corrupt_mixes_has_no_anonymity(gateways: int) -> None:
    config = NETWORK.replace(
        gateways=gateways,
        corrupt_fraction=1.0,
        corrupt_gateways=1.0,
        lambda_l=1.0,
        lambda_d=1.0,
        lambda_m=1.0,
    )
    result = run(config)
    assert np.all(result.entropy == 0.0)
    assert result.summary.top1_rate == 1.0
    assert result.summary.true_sender_probability == 1.0


def test_honest_gateways_still_mix_when_every_mix_is_corrupt() -> None:
    # Gateways hold packets like mixes (5-hop paths), so they alone still hide something.
    result = run(NETWORK.replace(corrupt_fraction=1.0))
    assert 0.0 < result.summary.entropy_mean < run(NETWORK).summary.entropy_mean


def test_only_lambda_over_mu_matters() -> None:
    # Speeding every rate up by the same factor only rescales time; the seed draws the same
    # network, so the anonymity is the same up to rounding.
    slow = run(NETWORK.replace(lambda_p=0.5, mu=5.0, lambda_l=0.25, lambda_m=0.5))
    fast = run(NETWORK.replace(lambda_p=2.0, mu=20.0, lambda_l=1.0, lambda_m=2.0))
    assert np.allclose(slow.entropy, fast.entropy, atol=1e-9)
    assert fast.summary.latency_mean == pytest.approx(slow.summary.latency_mean / 4)


def test_latency_near_saturation_matches_the_m_m_1_queue() -> None:
    # The review's case: `--workload poisson --gateways 0 --targets 500 --message-rate 0.9`.
    # Each client's queue is M/M/1 (messages at 0.9/s, payload slots at 1/s): mean sojourn
    # 1/(1 − 0.9) = 10 s, plus three hops of 0.1 s in the network. Queues start stationary and
    # the automatic window spans ten relaxation times of the queue.
    config = SimConfig(workload="poisson", gateways=0, targets=500, message_rate=0.9, seed=0)
    result = run(config)
    theory = 1.0 / (config.lambda_p - config.message_rate) + config.layers / config.mu
    s = result.summary
    assert s.latency_mean == pytest.approx(theory, rel=0.10)
    # The check means something only if the run's own error bar is well inside it.
    assert s.latency_mean_se < 0.04 * theory
    assert abs(s.latency_mean - theory) < 3 * s.latency_mean_se
    assert s.network_latency_mean == pytest.approx(config.layers / config.mu, rel=0.05)


def test_client_queues_start_in_their_stationary_state() -> None:
    # P(n waiting) = (1 − ρ) ρⁿ, and the ages of the waiting messages are sums of Exp(λ_P).
    from simulations.traffic import stationary_backlog

    rho, clients = 0.8, 200_000
    owner, created = stationary_backlog(np.arange(clients), rho, 2.0, np.random.default_rng(3))
    waiting = np.bincount(owner, minlength=clients)
    assert waiting.mean() == pytest.approx(rho / (1 - rho), rel=0.02)
    assert np.mean(waiting == 0) == pytest.approx(1 - rho, abs=0.005)
    assert np.all(created <= 0)
    newest = np.full(clients, -np.inf)
    np.maximum.at(newest, owner, created)
    ages = -newest[waiting > 0]
    assert ages.mean() == pytest.approx(1 / 2.0, rel=0.02)  # the newest waited one Exp(λ_P)
