"""`Counters`: how many requests and documents ended in each outcome, as Prometheus metrics.

One counter family per component (for the authority, `trimix_authority_events_total`) with
a single label, `outcome` (`"descriptor.accepted"`, `"vote.rejected.equivocation"`, ...):
never a peer, node or address, so the numbers can be published. Each `Counters` has its own
registry (no global state); `exposition()` is the text format `/metrics` serves.
"""

from __future__ import annotations

from collections import Counter as Tally

import prometheus_client
from prometheus_client import CollectorRegistry


class Counters:
    """Monotonic counters keyed by outcome name."""

    def __init__(
        self,
        name: str = "trimix_directory_events",
        documentation: str = "Directory events by outcome.",
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._family = prometheus_client.Counter(
            name, documentation, ["outcome"], registry=self.registry
        )
        self._counts: Tally[str] = Tally()

    def increment(self, outcome: str, amount: int = 1) -> None:
        self._family.labels(outcome=outcome).inc(amount)
        self._counts[outcome] += amount

    def get(self, outcome: str) -> int:
        return self._counts[outcome]

    def snapshot(self) -> dict[str, int]:
        """A sorted copy, for a JSON response."""
        return dict(sorted(self._counts.items()))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return prometheus_client.generate_latest(self.registry)
