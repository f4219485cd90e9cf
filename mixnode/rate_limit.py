"""How much a client link may ask of its gateway: token buckets per link, for the packets it
sends into the network and for the mailbox frames it fetches.

A trimix client sends one Poisson process at λ_P + λ_L + λ_D (the consensus's client
rates), whether its user is busy or idle. A link that sends much more is no such client:
one registered key could otherwise push thousands of packets a second into the mix network
through its gateway, and every mix on their paths would pay the unwrap, while the gateway's
CPU went to it instead of to its other clients. So a gateway admits from each client link at
most `factor` × that rate on average (at least `floor` packets a second, for networks whose
rates are tiny), with `burst_seconds` of it at once, and drops the rest, counted. The
allowance is loose on purpose: a Poisson process at rate λ exceeds 3λ over a second, plus a
burst of 2λ, with a probability far below anything that matters.

Fetching is paced rather than cut: a client polls on a fixed schedule at
max(`fetch_per_second`, 2 (λ_P + λ_L)) frames a second (a FETCH asks for up to 16), and a
link that asks for more than `factor` × that (at least `floor`) has its FETCHes answered
later, as its budget allows, so that its polls cannot take the gateway's SQLite and CPU from
the other clients. Nothing is lost: the link's TCP window fills and the client slows down.

`TokenBucket` is the sans-I/O state: time comes in with each call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Allowance:
    """A client link's budget (packets sent, or frames fetched), in terms of what a client
    does at the consensus's rates."""

    factor: float = 3.0
    floor: float = 50.0
    """What a link may always have a second, whatever the consensus says."""
    burst_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("factor", "floor", "burst_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number")

    def rate(self, client_rate: float) -> float:
        """Admitted a second when a client does `client_rate` a second."""
        return max(self.floor, self.factor * client_rate)


class TokenBucket:
    """Admits events at `rate` a second on average and `rate * burst_seconds` at once; the
    rate may change from call to call (a new consensus). Starts full."""

    def __init__(self, allowance: Allowance, now: float) -> None:
        self._allowance = allowance
        self._tokens: float | None = None
        self._at = now

    def __repr__(self) -> str:
        return f"TokenBucket({self._allowance})"

    def admit(self, now: float, client_rate: float) -> bool:
        """Take one token if there is one: whether the event may happen (a packet)."""
        tokens, _ = self._refill(now, client_rate)
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def reserve(self, now: float, client_rate: float, amount: int) -> float:
        """Take `amount` tokens, into debt if need be: the seconds to wait before the event
        (a FETCH of `amount` frames) so that the rate holds. 0.0 within the budget."""
        tokens, rate = self._refill(now, client_rate)
        self._tokens = tokens - amount
        return max(0.0, -self._tokens / rate)

    def _refill(self, now: float, client_rate: float) -> tuple[float, float]:
        rate = self._allowance.rate(client_rate)
        burst = rate * self._allowance.burst_seconds
        elapsed = max(0.0, now - self._at)
        self._at = max(self._at, now)
        tokens = burst if self._tokens is None else min(burst, self._tokens + elapsed * rate)
        return tokens, rate
