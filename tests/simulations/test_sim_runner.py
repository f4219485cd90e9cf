"""`simulations.run`: progress reports, target sampling, and runs with nothing to measure."""

from __future__ import annotations

import logging

import pytest

from simulations import NoTargetsError, SimConfig, run
from simulations.resources import TooLargeError, estimate_memory


def test_progress_is_reported_stage_by_stage() -> None:
    calls: list[tuple[str, int, int]] = []
    result = run(SimConfig(clients=30, targets=200, seed=2), progress=lambda *call: calls.append(call))
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["generating traffic", "adversary's view", "tracing targets", "tracing forward"]
    traced = [(done, total) for stage, done, total in calls if stage == "tracing targets"]
    assert traced[-1] == (200, 200) and [d for d, _ in traced] == sorted(d for d, _ in traced)
    assert result.summary.measured_targets == 200


def test_fewer_messages_than_targets_measures_all_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    config = SimConfig(clients=10, lambda_p=1.0, duration=12.0, warmup=2.0, targets=10_000, seed=1)
    with caplog.at_level(logging.WARNING, logger="simulations.runner"):
        result = run(config)
    assert 0 < result.summary.measured_targets < 10_000
    assert result.summary.measured_targets == result.summary.real_messages
    assert "measuring all" in caplog.text


def test_a_window_without_messages_is_an_error() -> None:
    config = SimConfig(clients=2, lambda_p=1e-6, duration=10.0, warmup=9.0, targets=10)
    with pytest.raises(NoTargetsError, match="no target messages"):
        run(config)


def test_the_window_used_is_recorded() -> None:
    config = SimConfig(clients=30, targets=100, seed=2)
    result = run(config)
    assert result.summary.window_start == config.effective_warmup > 0
    assert result.summary.window_end == config.effective_duration > config.effective_warmup
    explicit = run(config.replace(warmup=4.0, duration=40.0))
    assert (explicit.summary.window_start, explicit.summary.window_end) == (4.0, 40.0)


def test_a_run_too_large_for_memory_is_refused_before_it_starts() -> None:
    # --mu 0.001 makes the automatic window a hundred thousand seconds long.
    config = SimConfig(mu=0.001)
    estimate = estimate_memory(config)
    assert estimate.gib > 4
    with pytest.raises(TooLargeError, match=r"needs about \d+\.\d GiB.*raise mu"):
        run(config, memory_limit=4 << 30)
    # The estimate follows the run's real size: within a factor of two of the packet-hops drawn.
    small = SimConfig(clients=50, lambda_l=0.5, lambda_m=1.0, targets=100, seed=1)
    drawn = run(small).summary.packet_hops
    assert 0.9 < estimate_memory(small).packet_hops / drawn < 1.1


def test_high_utilisation_warns(caplog: pytest.LogCaptureFixture) -> None:
    config = SimConfig(clients=10, workload="poisson", message_rate=0.96, duration=60.0, warmup=3.0, targets=50)
    with caplog.at_level(logging.WARNING, logger="simulations.runner"):
        run(config)
    assert "utilisation 0.960" in caplog.text
