"""`simulations.run`: progress reports, target sampling, and runs with nothing to measure."""

from __future__ import annotations

import logging

import pytest

from simulations import NoTargetsError, SimConfig, run


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
