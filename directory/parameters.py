"""`Parameters`: the network-wide numbers every client and node must share.

Integers only, so that the low median is exact and the encoding canonical: the mean per-hop
delay 1/μ in milliseconds, and the Poisson rates in millihertz (events per 1,000 seconds).
Encoded as the fixed-order array
`[mean_delay_ms, lambda_p_mhz, lambda_l_mhz, lambda_d_mhz, lambda_m_mhz, layers]`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from directory.canonical import field_array, field_int

MAX_LAYERS = 16
MAX_MEAN_DELAY_MS = 3_600_000
MAX_RATE_MHZ = 1_000_000_000


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
