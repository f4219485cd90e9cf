"""The outcome of one run: its config, its summary figures, and the per-message arrays."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from simulations.config import SimConfig
from simulations.metrics import Metrics, Summary

SUMMARY_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Summary))


@dataclass(frozen=True, slots=True, eq=False)
class Result:
    config: SimConfig
    summary: Summary
    entropy: np.ndarray  # bits, per target message
    forward_entropy: np.ndarray  # bits, per target message: over packets leaving the last layer
    delta: np.ndarray  # δ(ε) per target message
    latency: np.ndarray  # end-to-end latency of every real message delivered in the window
    pool_by_layer: tuple[float, ...]  # mean packets held by a mix, per layer

    @classmethod
    def from_metrics(cls, config: SimConfig, metrics: Metrics, **extra: Any) -> Self:
        """The result of ``config``'s run from its measured metrics (``extra``: a subclass's)."""
        return cls(
            config=config,
            summary=metrics.summary,
            entropy=metrics.entropy,
            forward_entropy=metrics.forward_entropy,
            delta=metrics.delta,
            latency=metrics.latency,
            pool_by_layer=metrics.pool_by_layer,
            **extra,
        )

    def row(self) -> dict[str, Any]:
        """One flat record: every parameter, then every summary figure (the CSV row)."""
        return self.config.to_dict() | dataclasses.asdict(self.summary)

    def to_json(self, *, arrays: bool = False) -> dict[str, Any]:
        """A JSON-ready document; with ``arrays``, the per-message values as well."""
        counts, edges = (
            np.histogram(self.latency, bins=40) if self.latency.shape[0] else (np.zeros(0), np.zeros(0))
        )
        document: dict[str, Any] = {
            "config": self.config.to_dict(),
            # The window actually used, automatic or not: the config above says "auto" as null.
            "run_window": {
                "warmup": self.summary.window_start,
                "duration": self.summary.window_end,
                "warmup_automatic": self.config.warmup is None,
                "duration_automatic": self.config.duration is None,
            },
            "summary": {k: _finite(v) for k, v in dataclasses.asdict(self.summary).items()},
            "pool_by_layer": [_finite(v) for v in self.pool_by_layer],
            "entropy_percentiles": {
                str(q): _finite(float(np.percentile(self.entropy, q))) for q in (0, 5, 25, 50, 75, 95, 100)
            },
            "latency_histogram": {"edges": edges.tolist(), "counts": counts.astype(int).tolist()},
        }
        if arrays:
            document["entropy"] = self.entropy.tolist()
            document["forward_entropy"] = self.forward_entropy.tolist()
            document["delta"] = self.delta.tolist()
            document["latency"] = self.latency.tolist()
        return document


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
