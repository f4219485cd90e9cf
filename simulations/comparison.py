"""The model held against the emulation: figures side by side, with the tolerances of issue 12.

A figure passes when the emulation is within its tolerance of the model: mean sender entropy
within 0.3 bits, mean latency and cover overhead within 5 % of the model's value. A cover
overhead of exactly 0 in the model (no cover streams) leaves no room: the emulation must send
no cover either. The other figures are shown for reading, without a tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from simulations.result import Result
from simulations.stats import format_estimate

ENTROPY_TOLERANCE_BITS: Final = 0.3
RELATIVE_TOLERANCE: Final = 0.05


@dataclass(frozen=True, slots=True)
class FigureComparison:
    name: str
    model: float
    model_se: float  # nan when the figure has no standard error
    emulation: float
    emulation_se: float
    tolerance: float | None  # absolute, in the figure's unit; None: shown, not checked

    @property
    def difference(self) -> float:
        return self.emulation - self.model

    @property
    def combined_se(self) -> float:
        """The standard error of the difference (the two runs are independent)."""
        return math.hypot(self.model_se, self.emulation_se)

    @property
    def within(self) -> bool | None:
        if self.tolerance is None:
            return None
        return abs(self.difference) <= self.tolerance


@dataclass(frozen=True, slots=True)
class Comparison:
    figures: tuple[FigureComparison, ...]

    @property
    def agrees(self) -> bool:
        """Every checked figure is within its tolerance."""
        return all(f.within is not False for f in self.figures)

    def figure(self, name: str) -> FigureComparison:
        for figure in self.figures:
            if figure.name == name:
                return figure
        raise KeyError(name)

    def failures(self) -> list[str]:
        return [f.name for f in self.figures if f.within is False]

    def table(self) -> str:
        """A plain-text table: figure, model ± SE, emulation ± SE, difference, tolerance, verdict."""
        header = ("figure", "model", "emulation", "difference", "tolerance", "")
        rows = [header]
        for f in self.figures:
            rows.append(
                (
                    f.name,
                    _estimate(f.model, f.model_se),
                    _estimate(f.emulation, f.emulation_se),
                    _estimate(f.difference, f.combined_se),
                    "—" if f.tolerance is None else f"± {f.tolerance:.4g}",
                    {None: "", True: "ok", False: "DIFFERS"}[f.within],
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _estimate(value: float, se: float) -> str:
    if math.isnan(se) or se <= 0:
        return f"{value:.4g}"
    return format_estimate(value, se)


def cover_standard_error(packets: int, cover_per_real: float) -> float:
    """The standard error of cover packets per real packet, C/R, when both counts are Poisson
    (they come from Poisson streams): (C/R)·√(1/C + 1/R); 0 when there is no cover."""
    if not math.isfinite(cover_per_real) or packets == 0:
        return math.nan
    real = packets / (1.0 + cover_per_real)
    cover = packets - real
    if cover <= 0:
        return 0.0
    return cover_per_real * math.sqrt(1.0 / cover + 1.0 / real)


def _relative(value: float) -> float:
    return RELATIVE_TOLERANCE * abs(value)


def compare(model: Result, emulation: Result) -> Comparison:
    """The emulation's figures against the model's, checked where issue 12 fixes a tolerance."""
    m, e = model.summary, emulation.summary
    nan = math.nan
    return Comparison(
        (
            FigureComparison(
                "entropy_mean", m.entropy_mean, m.entropy_mean_se, e.entropy_mean, e.entropy_mean_se, ENTROPY_TOLERANCE_BITS
            ),
            FigureComparison(
                "latency_mean",
                m.latency_mean,
                m.latency_mean_se,
                e.latency_mean,
                e.latency_mean_se,
                _relative(m.latency_mean),
            ),
            FigureComparison(
                "cover_per_real",
                m.cover_per_real,
                cover_standard_error(m.packets, m.cover_per_real),
                e.cover_per_real,
                cover_standard_error(e.packets, e.cover_per_real),
                _relative(m.cover_per_real),
            ),
            FigureComparison(
                "forward_entropy_mean",
                m.forward_entropy_mean,
                m.forward_entropy_mean_se,
                e.forward_entropy_mean,
                e.forward_entropy_mean_se,
                None,
            ),
            FigureComparison("delta", m.delta, m.delta_se, e.delta, e.delta_se, None),
            FigureComparison("top1_rate", m.top1_rate, m.top1_rate_se, e.top1_rate, e.top1_rate_se, None),
            FigureComparison("latency_p95", m.latency_p95, nan, e.latency_p95, nan, None),
            FigureComparison("mean_pool_mix", m.mean_pool_mix, nan, e.mean_pool_mix, nan, None),
            FigureComparison("mean_pool_gateway", m.mean_pool_gateway, nan, e.mean_pool_gateway, nan, None),
        )
    )
