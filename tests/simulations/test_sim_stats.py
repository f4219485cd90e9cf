"""Error bars: standard errors, intervals over seeds, and numbers printed to their precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.stats import (
    clustered_standard_error,
    decimals_for,
    format_estimate,
    ratio_standard_error,
    standard_error,
    t_interval,
)


def test_standard_error_of_the_mean() -> None:
    assert standard_error(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert math.isnan(standard_error(np.array([1.0])))


def test_clustered_error_sees_correlation_that_the_plain_one_misses() -> None:
    rng = np.random.default_rng(0)
    # 50 clusters of 40 values that share one level each: 50 independent pieces of information.
    levels = rng.normal(size=50)
    values = np.repeat(levels, 40) + 0.01 * rng.normal(size=2000)
    cluster = np.repeat(np.arange(50), 40)
    clustered = clustered_standard_error(values, cluster)
    assert clustered == pytest.approx(np.std(levels, ddof=1) / math.sqrt(50), rel=0.05)
    assert clustered > 5 * standard_error(values)
    # Independent values: both agree.
    flat = rng.normal(size=2000)
    assert clustered_standard_error(flat, np.arange(2000)) == pytest.approx(standard_error(flat), rel=0.01)


def test_ratio_error_matches_a_resampling_estimate() -> None:
    rng = np.random.default_rng(1)
    den = rng.integers(1, 10, size=400).astype(float)
    num = den * 2.0 + rng.normal(size=400)
    boot = [num[i].sum() / den[i].sum() for i in (rng.integers(0, 400, size=400) for _ in range(2000))]
    assert ratio_standard_error(num, den) == pytest.approx(np.std(boot), rel=0.1)


def test_t_interval_over_seeds() -> None:
    mean, half = t_interval([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.303: 4.303 · 1 / √3.
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert math.isnan(t_interval([5.0])[1])


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (5.19734, 0.0123, "5.197 ± 0.012"),
        (10.27, 0.32, "10.27 ± 0.32"),
        (348.2, 11.7, "348 ± 12"),
        (0.2351, 0.0042, "0.2351 ± 0.0042"),
        (1.5, math.nan, "1.500"),
    ],
)
def test_estimates_print_to_the_precision_of_their_error(value: float, error: float, text: str) -> None:
    assert format_estimate(value, error) == text


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-9, max_value=1e9))
def test_the_error_shows_two_significant_digits(error: float) -> None:
    places = decimals_for(error)
    shown = f"{error:.{places}f}"
    digits = shown.replace(".", "").lstrip("0")
    assert len(digits) >= 2 or places == 0
