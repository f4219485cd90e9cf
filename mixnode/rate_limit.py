"""Token buckets: how much a client link may ask of its gateway (the packets it sends into
the network, the mailbox frames it fetches), and how many new mailboxes and new links one
network address may have.

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

New mailboxes are budgeted per network address (`RegistrationBudgets`): registering one
costs the gateway a handshake and a durable write and holds a place in its registry for
weeks, so a single address that registered throwaway keys as fast as the gateway takes them
could fill the registry (`max_mailboxes`) in minutes and lock every new client out. A client
registers once in its life, so an address gets `per_hour` new mailboxes at once and that
many an hour after; an IPv6 address counts by its /64, which one host usually holds whole.
Reopening a mailbox that exists costs nothing. The table of addresses is bounded and kept
in memory only; no address is ever logged or counted by name.

New links are budgeted per network address the same way (`AddressBudgets`, used by
`mixnode.link_driver.LinkServer`): the responder's side of a Noise handshake costs a node
about 1 ms of CPU (1.1 ms measured over loopback, the accept and the Trio task included), so
one host that opened links and completed handshakes in a loop, within the cap on connections
at once, could take a node's core from every other peer. A peer holds one long-lived link
and reconnects with backoff, so an address gets a burst of new links at once and a few a
second after; past that a connection is closed before its handshake, counted.

`TokenBucket` is the sans-I/O state: time comes in with each call.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
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


def address_key(source: str) -> str:
    """The budget key of a peer's address: an IPv6 address by its /64, others as they are."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AddressBudgets:
    """Events per network address (`address_key`): `burst` at once and `per_second` after,
    for at most `max_addresses` addresses at a time (the least recently seen are forgotten,
    which can only give them a fresh budget, never take one away from anybody)."""

    def __init__(self, per_second: float, burst: float, *, max_addresses: int = 10_000) -> None:
        if max_addresses < 1:
            raise ValueError("max_addresses must be positive")
        if isinstance(burst, bool) or not isinstance(burst, int | float) or not burst >= 1:
            raise ValueError("burst must be at least 1")
        if isinstance(per_second, bool) or not isinstance(per_second, int | float) or not (
            0 < per_second < math.inf
        ):
            raise ValueError("per_second must be a positive number")
        self._allowance = Allowance(
            factor=1.0, floor=per_second, burst_seconds=burst / per_second
        )
        self._max = max_addresses
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(addresses={len(self._buckets)})"  # never an address

    def admit(self, source: str, now: float) -> bool:
        """Whether `source` may have one more event now (and, if so, it is counted)."""
        key = address_key(source)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self._allowance, now)
        self._buckets[key] = bucket
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return bucket.admit(now, 0.0)


class RegistrationBudgets(AddressBudgets):
    """New mailboxes per network address: `per_hour` at once and `per_hour` an hour after."""

    def __init__(self, per_hour: int, *, max_addresses: int = 10_000) -> None:
        if isinstance(per_hour, bool) or not isinstance(per_hour, int) or per_hour < 1:
            raise ValueError("per_hour must be a positive integer")
        super().__init__(per_hour / 3600, per_hour, max_addresses=max_addresses)
