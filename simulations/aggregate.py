"""Results of several seeds of one configuration: means with 95 % intervals over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from simulations.config import SimConfig
from simulations.result import Result
from simulations.stats import format_estimate, t_interval

HEADLINES: tuple[str, ...] = (
    "entropy_mean",
    "forward_entropy_mean",
    "delta",
    "log_ratio_mean",
    "log_ratio_zero_share",
    "top1_rate",
    "latency_mean",
)
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean over seeds and the half-width of its 95 % Student-t interval."""

    mean: float
    half_width: float

    def __str__(self) -> str:
        return format_estimate(self.mean, self.half_width)


@dataclass(frozen=True, slots=True)
class SeedAggregate:
    """One point of a grid, over all its seeds."""

    config: SimConfig  # the point, with the seed of its first run
    seeds: tuple[int, ...]
    figures: tuple[tuple[str, Estimate], ...]

    def figure(self, name: str) -> Estimate:
        return dict(self.figures)[name]


def point_key(config: SimConfig) -> SimConfig:
    """The config with its seed cleared: runs of one point over several seeds share it."""
    return config.replace(seed=0)


def aggregate_over_seeds(results: Sequence[Result]) -> list[SeedAggregate]:
    """Group runs that differ only in their seed, in order of first appearance."""
    groups: dict[SimConfig, list[Result]] = {}
    for result in results:
        groups.setdefault(point_key(result.config), []).append(result)
    aggregates = []
    for runs in groups.values():
        figures = []
        for name in HEADLINES:
            values = [float(getattr(r.summary, name)) for r in runs]
            finite = [v for v in values if math.isfinite(v)]
            mean, half = t_interval(finite, CONFIDENCE) if finite else (math.nan, math.nan)
            figures.append((name, Estimate(mean, half)))
        aggregates.append(SeedAggregate(runs[0].config, tuple(r.config.seed for r in runs), tuple(figures)))
    return aggregates
