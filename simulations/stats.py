"""Error bars: standard errors within a run, intervals over seeds, and printing both honestly."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of independent values (nan for fewer than two)."""
    n = values.shape[0]
    if n < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(n))


def clustered_standard_error(values: np.ndarray, cluster: np.ndarray) -> float:
    """Standard error of the mean when values within a cluster are correlated but clusters are
    independent (the cluster-robust sandwich estimator with the G/(G − 1) correction)."""
    n = values.shape[0]
    if n < 2:
        return math.nan
    _, index = np.unique(cluster, return_inverse=True)
    groups = int(index.max()) + 1
    if groups < 2:
        return math.nan
    residual_sums = np.bincount(index, weights=values - values.mean(), minlength=groups)
    return float(math.sqrt(float(np.sum(residual_sums**2)) * groups / (groups - 1)) / n)


def ratio_standard_error(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Standard error of Σ numerator / Σ denominator over independent units (delta method)."""
    n = numerator.shape[0]
    total = float(denominator.sum())
    if n < 2 or total <= 0:
        return math.nan
    ratio = float(numerator.sum()) / total
    residual = numerator - ratio * denominator
    return float(math.sqrt(float(np.sum(residual**2)) * n / (n - 1)) / total)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval of the mean (half-width nan for one value)."""
    data = np.asarray(values, dtype=np.float64)
    n = data.shape[0]
    mean = float(data.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan
    quantile = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    return mean, quantile * float(np.std(data, ddof=1)) / math.sqrt(n)


def decimals_for(error: float, significant: int = 2) -> int:
    """Decimal places that show ``error`` to ``significant`` significant digits (at least 0)."""
    if not math.isfinite(error) or error <= 0:
        return 3
    return max(0, significant - 1 - math.floor(math.log10(error)))


def format_estimate(value: float, error: float, unit: str = "") -> str:
    """``value ± error``, both rounded to the error's second significant digit."""
    suffix = f" {unit}" if unit else ""
    if not math.isfinite(value):
        return f"n/a{suffix}"
    if not math.isfinite(error):
        return f"{value:.3f}{suffix}"
    places = decimals_for(error)
    return f"{value:.{places}f} ± {error:.{places}f}{suffix}"
