"""Retransmission state for packets awaiting their SURB-ACK (sans-I/O; `now` injected).

Every packet a client sends carries a SURB-ACK; the exit gateway answers on it once it has
stored the packet, and the answer reaches the client's mailbox as a SURB reply whose
`surb_id` names the packet. This table maps those ids back to (message id, fragment index)
and decides when to resend.

Per message: `add_message(id, fragment_count)`; a message is done when each fragment is
acknowledged. Per transmission: when a fragment's packet actually leaves (its payload slot
came), `sent(message, index, surb_id, now, forward_delay_ms=, ack_delay_ms=)` starts its
timer with the deadline

    now + (forward_delay_ms + ack_delay_ms) / 1000 + margin * backoff ** (tries - 1)

where the delays are the sums drawn for the packet's route and for its SURB-ACK's route
(`routes.Route.delay_ms`): the time nodes hold it both ways, known exactly; the margin
covers links and processing, and grows with each try.

`due(now)` turns each expired timer into a `Retransmit` (resend the fragment on a fresh
route with a fresh SURB-ACK, then call `sent` again with the new surb id), or, once a
fragment has been sent `max_tries` times, into `MessageFailed` for its message, whose state
is then dropped. A fragment handed out for retransmission has no timer until it is `sent`
again. `on_ack(surb_id)` marks the fragment acknowledged and says whether its message is
now done; the ids of every try of an unacknowledged fragment stay known, so a late
acknowledgement of an earlier try counts. Acknowledgements are idempotent and unknown ids
are ignored (returns None).

Bounds: at most `max_messages` messages and `max_fragments` unacknowledged fragments in
all (`TableFullError` when adding more); the surb-id map holds at most `max_tries` ids per
unacknowledged fragment, and the timer heap is compacted (stale timers dropped) when it
grows past twice the unacknowledged fragments.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

SURB_ID_SIZE = 16
DEFAULT_MAX_MESSAGES = 1024
DEFAULT_MAX_FRAGMENTS = 65_536


class ReliabilityError(Exception):
    """Misuse of the retransmission table. Messages never hold a message or SURB id."""


class TableFullError(ReliabilityError):
    """The table holds as many messages or fragments as it may."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait for a SURB-ACK, and how often to try."""

    max_tries: int = 5
    margin: float = 2.0
    """Seconds added to the drawn delays for links and processing (first try)."""
    backoff: float = 1.5
    """The margin is multiplied by this for each further try."""

    def __post_init__(self) -> None:
        if self.max_tries < 1 or not self.margin > 0 or not self.backoff >= 1:
            raise ValueError("need max_tries >= 1, margin > 0 and backoff >= 1")

    def timeout(self, forward_delay_ms: int, ack_delay_ms: int, tries: int) -> float:
        """Seconds to wait for the ACK of a fragment's `tries`-th transmission."""
        return (forward_delay_ms + ack_delay_ms) / 1000 + self.margin * self.backoff ** (tries - 1)


@dataclass(frozen=True, slots=True)
class Retransmit:
    """Resend fragment `fragment_index` of message `message_id`: its try number `tries`."""

    message_id: bytes = field(repr=False)
    fragment_index: int
    tries: int


@dataclass(frozen=True, slots=True)
class MessageFailed:
    """A fragment of `message_id` went unacknowledged `tries` times: the message failed."""

    message_id: bytes = field(repr=False)
    fragment_index: int
    tries: int


@dataclass(frozen=True, slots=True)
class FragmentAcked:
    """A SURB-ACK arrived for a fragment; `message_done` when it was the last one."""

    message_id: bytes = field(repr=False)
    fragment_index: int
    message_done: bool


@dataclass(slots=True)
class _Message:
    fragment_count: int
    unacked: set[int]
    tries: dict[int, int]
    """Transmissions of each unacknowledged fragment so far."""
    surb_ids: dict[int, list[bytes]]
    deadlines: dict[int, float]
    """The running timers (fragments sent and not handed out for retransmission)."""


class AckTracker:
    """Which packets await their SURB-ACK, and what to do when one does not come."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.max_messages = max_messages
        self.max_fragments = max_fragments
        self._messages: dict[bytes, _Message] = {}
        self._by_surb: dict[bytes, tuple[bytes, int]] = {}
        self._timers: list[tuple[float, bytes, int, int]] = []
        self._unacked_total = 0

    def add_message(
        self, message_id: bytes, fragment_count: int, *, acked: Iterable[int] = ()
    ) -> None:
        """Track a message of `fragment_count` fragments; `acked` lists fragments already
        acknowledged (a message resumed after a restart)."""
        if message_id in self._messages:
            raise ReliabilityError("this message is already tracked")
        if fragment_count < 1:
            raise ReliabilityError("a message has at least one fragment")
        unacked = set(range(fragment_count)) - set(acked)
        if len(self._messages) >= self.max_messages:
            raise TableFullError(f"{self.max_messages} messages are awaiting acknowledgement")
        if self._unacked_total + len(unacked) > self.max_fragments:
            raise TableFullError(f"more than {self.max_fragments} fragments would be pending")
        self._messages[message_id] = _Message(
            fragment_count, unacked, dict.fromkeys(unacked, 0), {i: [] for i in unacked}, {}
        )
        self._unacked_total += len(unacked)

    def sent(
        self,
        message_id: bytes,
        fragment_index: int,
        surb_id: bytes,
        now: float,
        *,
        forward_delay_ms: int,
        ack_delay_ms: int,
    ) -> bool:
        """A packet of the fragment left with SURB-ACK `surb_id`: start its timer. False
        (nothing recorded) when the fragment is no longer pending (acked, or its message
        failed or was cancelled)."""
        if len(surb_id) != SURB_ID_SIZE:
            raise ReliabilityError(f"a SURB id is {SURB_ID_SIZE} bytes")
        message = self._messages.get(message_id)
        if message is None or fragment_index not in message.unacked:
            return False
        if surb_id in self._by_surb:
            raise ReliabilityError("this SURB id is already in use")
        if message.tries[fragment_index] >= self.policy.max_tries:
            raise ReliabilityError("the fragment has used all its tries")
        tries = message.tries[fragment_index] + 1
        message.tries[fragment_index] = tries
        message.surb_ids[fragment_index].append(surb_id)
        self._by_surb[surb_id] = (message_id, fragment_index)
        deadline = now + self.policy.timeout(forward_delay_ms, ack_delay_ms, tries)
        message.deadlines[fragment_index] = deadline
        heapq.heappush(self._timers, (deadline, message_id, fragment_index, tries))
        self._bound_timers()
        return True

    def on_ack(self, surb_id: bytes) -> FragmentAcked | None:
        """A SURB-ACK came back. None for an id not (or no longer) awaited."""
        entry = self._by_surb.get(bytes(surb_id))
        if entry is None:
            return None
        message_id, index = entry
        message = self._messages[message_id]
        for known in message.surb_ids.pop(index):
            del self._by_surb[known]
        message.unacked.discard(index)
        message.tries.pop(index)
        message.deadlines.pop(index, None)
        self._unacked_total -= 1
        done = not message.unacked
        if done:
            del self._messages[message_id]
        self._bound_timers()
        return FragmentAcked(message_id, index, done)

    def due(self, now: float) -> list[Retransmit | MessageFailed]:
        """What the timers expired by `now` ask for, in deadline order."""
        actions: list[Retransmit | MessageFailed] = []
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._is_live(timer):
                continue  # acked, failed, or sent again since: a stale timer
            _, message_id, index, tries = timer
            del self._messages[message_id].deadlines[index]
            if tries >= self.policy.max_tries:
                self._forget(message_id)
                actions.append(MessageFailed(message_id, index, tries))
            else:
                actions.append(Retransmit(message_id, index, tries + 1))
        return actions

    def next_deadline(self) -> float | None:
        """When `due` next has something to say (may be a stale timer), or None."""
        return self._timers[0][0] if self._timers else None

    def cancel(self, message_id: bytes) -> bool:
        """Stop tracking a message (given up by the caller); False if it was not tracked."""
        if message_id not in self._messages:
            return False
        self._forget(message_id)
        return True

    def is_pending(self, message_id: bytes, fragment_index: int) -> bool:
        """Whether the fragment still needs its ACK (check before sending a queued retry)."""
        message = self._messages.get(message_id)
        return message is not None and fragment_index in message.unacked

    def unacked(self, message_id: bytes) -> frozenset[int]:
        """The fragments of a tracked message still awaiting their ACK (empty if unknown)."""
        message = self._messages.get(message_id)
        return frozenset(message.unacked) if message else frozenset()

    def __len__(self) -> int:
        """Messages tracked."""
        return len(self._messages)

    @property
    def pending_fragments(self) -> int:
        return self._unacked_total

    @property
    def known_surb_ids(self) -> int:
        return len(self._by_surb)

    @property
    def timer_count(self) -> int:
        """Entries in the timer heap, stale ones included (bounded by compaction)."""
        return len(self._timers)

    def _bound_timers(self) -> None:
        if len(self._timers) > 2 * self._unacked_total + 64:
            self._timers = [timer for timer in self._timers if self._is_live(timer)]
            heapq.heapify(self._timers)

    def _is_live(self, timer: tuple[float, bytes, int, int]) -> bool:
        deadline, message_id, index, tries = timer
        message = self._messages.get(message_id)
        return (
            message is not None
            and message.deadlines.get(index) == deadline
            and message.tries.get(index) == tries
        )

    def _forget(self, message_id: bytes) -> None:
        message = self._messages.pop(message_id)
        for ids in message.surb_ids.values():
            for surb_id in ids:
                del self._by_surb[surb_id]
        self._unacked_total -= len(message.unacked)
        self._bound_timers()
