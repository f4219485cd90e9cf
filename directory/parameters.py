"""`Parameters`: the network-wide numbers every client and node must share.

Integers only, so that the low median is exact and the encoding canonical: the mean per-hop
delay 1/μ in milliseconds, and the Poisson rates in millihertz (events per 1,000 seconds).
Encoded as the fixed-order array
`[mean_delay_ms, lambda_p_mhz, lambda_l_mhz, lambda_d_mhz, lambda_m_mhz, layers]`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from directory.canonical import field_array, field_int
from directory.errors import UnsafeParametersError

MAX_LAYERS = 16
MAX_MEAN_DELAY_MS = 3_600_000
MAX_RATE_MHZ = 1_000_000_000
MAX_DELAY_FACTOR = 20
"""A hop's delay is capped at this many mean delays: P(Exp > 20 mean) = e^-20, about 2e-9."""
DEFAULT_RANGE_FACTOR = 4
"""By default an authority accepts a consensus value within this factor of its proposal."""


@dataclass(frozen=True, slots=True)
class Parameters:
    """The mixing and cover-traffic parameters of an epoch."""

    mean_delay_ms: int
    """1/μ: the mean of each hop's exponential delay."""
    lambda_p_mhz: int
    """λ_P: a client's payload stream (a real packet if one is queued, else a drop)."""
    lambda_l_mhz: int
    """λ_L: a client's loop cover stream."""
    lambda_d_mhz: int
    """λ_D: a client's drop cover stream."""
    lambda_m_mhz: int
    """λ_M: a mix's or gateway's loop cover stream."""
    layers: int
    """The number of mix layers on a path."""

    @classmethod
    def default(cls) -> Parameters:
        """1/μ = 50 ms; λ_P = 2/s, λ_L = λ_D = 0.5/s, λ_M = 1/s; 3 layers."""
        return cls(
            mean_delay_ms=50,
            lambda_p_mhz=2000,
            lambda_l_mhz=500,
            lambda_d_mhz=500,
            lambda_m_mhz=1000,
            layers=3,
        )

    def to_array(self) -> list[int]:
        return [
            self.mean_delay_ms,
            self.lambda_p_mhz,
            self.lambda_l_mhz,
            self.lambda_d_mhz,
            self.lambda_m_mhz,
            self.layers,
        ]

    @property
    def max_delay_ms(self) -> int:
        """The cap on one hop's delay: 20 x the mean, so that an exponential draw exceeds it
        with probability e^-20 (about 2e-9). Nodes refuse a packet asking to be held longer;
        clients draw from Exp(mean) and truncate at this cap."""
        return MAX_DELAY_FACTOR * self.mean_delay_ms

    @property
    def mean_delay(self) -> float:
        """1/μ in seconds."""
        return self.mean_delay_ms / 1000

    @property
    def lambda_p(self) -> float:
        """λ_P in events per second."""
        return self.lambda_p_mhz / 1000

    @property
    def lambda_l(self) -> float:
        return self.lambda_l_mhz / 1000

    @property
    def lambda_d(self) -> float:
        return self.lambda_d_mhz / 1000

    @property
    def lambda_m(self) -> float:
        return self.lambda_m_mhz / 1000


PARAMETER_NAMES = tuple(f.name for f in fields(Parameters))


def parameters_from_array(value: Any) -> Parameters:
    """Check a decoded parameter array and build `Parameters`."""
    field_array(value, "parameters", len(PARAMETER_NAMES))
    return Parameters(
        mean_delay_ms=field_int(value[0], "parameter mean_delay_ms", 1, MAX_MEAN_DELAY_MS),
        lambda_p_mhz=field_int(value[1], "parameter lambda_p_mhz", 0, MAX_RATE_MHZ),
        lambda_l_mhz=field_int(value[2], "parameter lambda_l_mhz", 0, MAX_RATE_MHZ),
        lambda_d_mhz=field_int(value[3], "parameter lambda_d_mhz", 0, MAX_RATE_MHZ),
        lambda_m_mhz=field_int(value[4], "parameter lambda_m_mhz", 0, MAX_RATE_MHZ),
        layers=field_int(value[5], "parameter layers", 1, MAX_LAYERS),
    )


SAFE_BOUNDS: Mapping[str, tuple[int, int]] = {
    "mean_delay_ms": (1, 60_000),
    "lambda_p_mhz": (1, 1_000_000),  # up to 1,000/s: a bulk-transfer network (issue 10)
    "lambda_l_mhz": (1, 100_000),
    "lambda_d_mhz": (1, 100_000),
    "lambda_m_mhz": (1, 100_000),
    "layers": (1, MAX_LAYERS),
}
"""The documented safe bounds (docs/SPEC.md §2.3) that nodes and clients enforce on every
consensus: some mixing delay, and every cover stream running (a zero rate switches a defence
off), and no rate that would make clients or nodes flood the network."""


def _violations(parameters: Parameters, bounds: Mapping[str, tuple[int, int]]) -> list[str]:
    found = []
    for name in PARAMETER_NAMES:
        low, high = bounds[name]
        value = getattr(parameters, name)
        if not low <= value <= high:
            found.append(f"{name} = {value} (allowed {low}..{high})")
    return found


def check_safe_parameters(parameters: Parameters) -> Parameters:
    """`parameters` if they lie within `SAFE_BOUNDS`; `UnsafeParametersError` naming every
    value outside them otherwise."""
    found = _violations(parameters, SAFE_BOUNDS)
    if found:
        raise UnsafeParametersError("unsafe parameters: " + ", ".join(found))
    return parameters


@dataclass(frozen=True, slots=True)
class ParameterRanges:
    """An authority's acceptable range for every parameter: it signs no consensus whose
    parameters fall outside them. Each range is `(low, high)`, inclusive, in the units of
    `Parameters` (ms, mHz, layers)."""

    mean_delay_ms: tuple[int, int]
    lambda_p_mhz: tuple[int, int]
    lambda_l_mhz: tuple[int, int]
    lambda_d_mhz: tuple[int, int]
    lambda_m_mhz: tuple[int, int]
    layers: tuple[int, int]

    def __post_init__(self) -> None:
        for name in PARAMETER_NAMES:
            value = getattr(self, name)
            if (
                type(value) is not tuple
                or len(value) != 2
                or not all(type(v) is int for v in value)
                or not 0 <= value[0] <= value[1]
            ):
                raise UnsafeParametersError(f"the acceptable range of {name} must be low <= high")

    @classmethod
    def around(cls, proposal: Parameters, factor: int = DEFAULT_RANGE_FACTOR) -> ParameterRanges:
        """The default ranges: within `factor` of the proposal both ways (exactly the proposed
        number of layers), and within the safe bounds."""
        ranges = {}
        for name in PARAMETER_NAMES:
            value = getattr(proposal, name)
            low, high = (value, value) if name == "layers" else (
                math.ceil(value / factor),
                value * factor,
            )
            safe_low, safe_high = SAFE_BOUNDS[name]
            ranges[name] = (max(low, safe_low), max(min(high, safe_high), max(low, safe_low)))
        return cls(**ranges)

    def bounds(self) -> dict[str, tuple[int, int]]:
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def check(self, parameters: Parameters) -> Parameters:
        """`parameters` if every value is within its range and the safe bounds;
        `UnsafeParametersError` naming what is not."""
        check_safe_parameters(parameters)
        found = _violations(parameters, self.bounds())
        if found:
            raise UnsafeParametersError(
                "parameters outside this authority's acceptable ranges: " + ", ".join(found)
            )
        return parameters
