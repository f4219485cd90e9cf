"""The client's loops in flight, and which of them are lost (sans-I/O; time comes in with
each call).

A loop is a packet the client routes through the network back to its own mailbox (the λ_L
stream). One that never comes back was dropped on its way: many lost at once is what an
(n−1) attack on the client looks like (Loopix), so the count must mean loss in the network,
not a client that has not looked yet. A loop therefore counts as lost only when both hold:

- its deadline has passed: the delays drawn for its hops plus a margin;
- the mailbox was found drained after that deadline: a poll sent after it came back with
  fewer messages than it asked for, so everything the gateway held when that poll reached it
  has been handed out and read (polls are answered and read in order, and a message leased
  to an earlier poll is in an earlier answer).

Without the second condition, a client whose polls fall behind (a busy machine, a backlog of
acknowledgements in its mailbox, a lost link) counted loops that were waiting in its mailbox
as lost, and then as unmatched when they were read. A loop that comes back after it was
counted lost is reported as unmatched (`returned` is False).

At most `max_tracked` loops are kept; past that the oldest is counted lost.
"""

from __future__ import annotations

import math
from collections import OrderedDict


class LoopTracker:
    """Loops sent and not yet back, by loop id."""

    def __init__(self, *, max_tracked: int = 10_000) -> None:
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        self.max_tracked = max_tracked
        self._deadlines: OrderedDict[bytes, float] = OrderedDict()
        self._drained_at = -math.inf
        self._expired_at = -math.inf  # the `_drained_at` of the last `expire`
        self.returned_count = 0
        self.lost_count = 0

    def __repr__(self) -> str:
        return (
            f"LoopTracker(in_flight={len(self._deadlines)}, returned={self.returned_count}, "
            f"lost={self.lost_count})"
        )

    @property
    def in_flight(self) -> int:
        return len(self._deadlines)

    def sent(self, loop_id: bytes, deadline: float) -> None:
        """A loop left; it is due back by `deadline`."""
        self._deadlines[loop_id] = deadline
        while len(self._deadlines) > self.max_tracked:
            self._deadlines.popitem(last=False)
            self.lost_count += 1

    def returned(self, loop_id: bytes) -> bool:
        """A loop came back: True if it was in flight, False if it is unknown or was already
        counted lost."""
        if self._deadlines.pop(loop_id, None) is None:
            return False
        self.returned_count += 1
        return True

    def drained(self, poll_sent_at: float) -> None:
        """A poll sent at `poll_sent_at` found the mailbox drained (its answer has been read)."""
        self._drained_at = max(self._drained_at, poll_sent_at)

    def expire(self) -> int:
        """Count as lost the loops whose deadline passed before the mailbox was last found
        drained; how many were."""
        if self._drained_at == self._expired_at:
            return 0  # nothing can have become lost since the last call
        self._expired_at = self._drained_at
        lost = [i for i, deadline in self._deadlines.items() if deadline <= self._drained_at]
        for loop_id in lost:
            del self._deadlines[loop_id]
        self.lost_count += len(lost)
        return len(lost)
