"""The standard figures of a configuration: the run itself, and two small sweeps around it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simulations.config import SimConfig
from simulations.plots import entropy_vs_cover, entropy_vs_delay, latency_histogram
from simulations.result import Result
from simulations.sweep import sweep

DELAY_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # times the configured mean delay per hop
COVER_FACTORS = (0.0, 0.5, 1.0, 2.0, 4.0)  # λ_L + λ_D, in units of λ_P, split evenly
FIGURE_TARGETS = 500  # targets per extra run, at most


def delay_variants(config: SimConfig) -> list[SimConfig]:
    small = config.replace(targets=min(config.targets, FIGURE_TARGETS))
    return [small.replace(mu=config.mu / f) for f in DELAY_FACTORS]


def cover_variants(config: SimConfig) -> list[SimConfig]:
    small = config.replace(targets=min(config.targets, FIGURE_TARGETS))
    return [
        small.replace(lambda_l=f * config.lambda_p / 2, lambda_d=f * config.lambda_p / 2)
        for f in COVER_FACTORS
    ]


def standard_figures(
    result: Result,
    directory: str | Path,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write latency_histogram.png, entropy_vs_delay.png and entropy_vs_cover.png for a run.

    The two curves need runs at other delays and cover rates: ten extra runs, in parallel.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    delays = delay_variants(result.config)
    covers = cover_variants(result.config)
    results = sweep(delays + covers, workers=workers, progress=progress)
    return [
        latency_histogram(result, directory / "latency_histogram.png"),
        entropy_vs_delay(results[: len(delays)], directory / "entropy_vs_delay.png"),
        entropy_vs_cover(results[len(delays) :], directory / "entropy_vs_cover.png"),
    ]
