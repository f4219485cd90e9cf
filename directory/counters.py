"""`Counters`: how many requests and documents ended in each outcome.

Counted by outcome only (`"descriptor.accepted"`, `"vote.rejected.conflict"`, ...), never by
peer, node or address, so the numbers can be published on the health endpoint.
"""

from __future__ import annotations

from collections import Counter


class Counters:
    """Monotonic counters keyed by outcome name."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def increment(self, outcome: str, amount: int = 1) -> None:
        self._counts[outcome] += amount

    def get(self, outcome: str) -> int:
        return self._counts[outcome]

    def snapshot(self) -> dict[str, int]:
        """A sorted copy, for a JSON response."""
        return dict(sorted(self._counts.items()))
