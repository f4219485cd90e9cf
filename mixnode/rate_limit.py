"""How many packets a client link may send into the network: a token bucket per link.

A trimix client sends one Poisson process at λ_P + λ_L + λ_D (the consensus's client
rates), whether its user is busy or idle. A link that sends much more is no such client:
one registered key could otherwise push thousands of packets a second into the mix network
through its gateway, and every mix on their paths would pay the unwrap, while the gateway's
CPU went to it instead of to its other clients. So a gateway admits from each client link at
most `factor` × that rate on average (at least `floor` packets a second, for networks whose
rates are tiny), with `burst_seconds` of it at once, and drops the rest, counted. The
allowance is loose on purpose: a Poisson process at rate λ exceeds 3λ over a second, plus a
burst of 2λ, with a probability far below anything that matters.

`TokenBucket` is the sans-I/O state: time comes in with each call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PacketAllowance:
    """The packet budget of one client link, in terms of the consensus's client rate."""

    factor: float = 3.0
    floor: float = 50.0
    """Packets a second a link may always send, whatever the consensus says."""
    burst_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("factor", "floor", "burst_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number")

    def rate(self, client_rate: float) -> float:
        """Packets a second admitted when clients send `client_rate` (λ_P + λ_L + λ_D)."""
        return max(self.floor, self.factor * client_rate)


class TokenBucket:
    """Admits events at `rate` a second on average and `rate * burst_seconds` at once; the
    rate may change from call to call (a new consensus). Starts full."""

    def __init__(self, allowance: PacketAllowance, now: float) -> None:
        self._allowance = allowance
        self._tokens: float | None = None
        self._at = now

    def __repr__(self) -> str:
        return f"TokenBucket({self._allowance})"

    def admit(self, now: float, client_rate: float) -> bool:
        rate = self._allowance.rate(client_rate)
        burst = rate * self._allowance.burst_seconds
        elapsed = max(0.0, now - self._at)
        self._at = max(self._at, now)
        tokens = burst if self._tokens is None else min(burst, self._tokens + elapsed * rate)
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
