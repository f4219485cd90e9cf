"""The delay scheduler of a mix: packets wait in one heap until their deadline.

`DelayScheduler` is the sans-I/O core: a bounded heap of (deadline, seq, item), with the
overload policy of DESIGN.md ("drop cover before real traffic") and drop counters by
reason. `SchedulerTask` is its thin Trio driver: ONE task that sleeps until the earliest
deadline and hands every due item to a callback; never a task per packet.

Overload policy, when the heap holds `capacity` items:

* a cover item (the node's own loops and drops) is refused (``cover_refused``);
* a real (forwarded) item evicts the queued cover item with the latest deadline, if there is
  one (``cover_evicted``);
* else the real items are shared fairly among their sources (the peer each came from): the
  source holding the most queued items gives up its item with the latest deadline
  (``real_evicted``), unless the newcomer's own source holds as many, in which case the
  newcomer is refused (``real_refused``). So one peer that floods a node with valid packets
  fills only its own share of the heap: the others' packets are still taken. Among sources
  holding equally many, the one whose latest item is latest gives it up.

Costs: `push` and each popped item O(log n), an overloaded real push also O(sources); an
evicted entry is marked dead and skipped when it reaches the top, and the heaps are rebuilt
(O(n)) whenever dead entries outnumber live ones, so memory stays O(capacity) and the
amortized cost stays O(log n).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Generic, Literal, TypeVar

import trio

T = TypeVar("T")

DropReason = Literal["cover_evicted", "cover_refused", "real_evicted", "real_refused"]
DROP_REASONS: tuple[DropReason, ...] = (
    "cover_evicted", "cover_refused", "real_evicted", "real_refused"
)

_COMPACT_SLACK = 64


class _Cover:
    """The class of cover items (a key no source can be)."""

    def __repr__(self) -> str:
        return "<cover>"


_COVER = _Cover()


class DelayScheduler(Generic[T]):
    """A bounded heap of items, each due at a deadline (seconds on the caller's clock)."""

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError("capacity must be a positive integer")
        self._capacity = capacity
        self._seq = 0
        self._heap: list[tuple[float, int, T]] = []
        # Per class (cover, or a real item's source): its items, latest deadline first, as
        # (-deadline, -seq, seq); entries of items already popped are stale until compacted.
        self._latest: dict[Hashable, list[tuple[float, int, int]]] = {}
        self._live: dict[int, Hashable] = {}  # seq → class, for every queued item
        self._counts: dict[Hashable, int] = {}  # class → how many of its items are queued
        self._stale = 0
        self._evicted: set[int] = set()
        self._drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._drops_view: Mapping[str, int] = MappingProxyType(self._drops)

    def __repr__(self) -> str:
        return f"DelayScheduler({len(self)}/{self._capacity} queued)"

    def __len__(self) -> int:
        return len(self._live)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def cover_count(self) -> int:
        """How many queued items are cover."""
        return self._counts.get(_COVER, 0)

    @property
    def drops(self) -> Mapping[str, int]:
        """Items dropped so far, by reason (a live read-only view)."""
        return self._drops_view

    def push(
        self, deadline: float, item: T, *, cover: bool = False, source: Hashable = None
    ) -> bool:
        """Queue `item` until `deadline`; False if it was refused (see the overload policy).
        `source` names where a real item came from (the peer's link key, say); items of
        one source share one fair part of the heap under overload. Cover has no source."""
        if not math.isfinite(deadline):
            raise ValueError("a deadline must be a finite number")
        key: Hashable = _COVER if cover else source
        if len(self._live) >= self._capacity:
            if cover:
                self._drops["cover_refused"] += 1
                return False
            if self._evict_latest(_COVER):
                self._drops["cover_evicted"] += 1
            else:
                victim = self._fattest_source()
                if victim is None or self._counts.get(key, 0) >= self._counts[victim]:
                    self._drops["real_refused"] += 1
                    return False
                self._evict_latest(victim)
                self._drops["real_evicted"] += 1
        seq = self._seq
        self._seq = seq + 1
        heapq.heappush(self._heap, (deadline, seq, item))
        latest = self._latest.get(key)
        if latest is None:
            latest = self._latest[key] = []
        heapq.heappush(latest, (-deadline, -seq, seq))
        self._live[seq] = key
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        return True

    def _fattest_source(self) -> Hashable | None:
        """The source with the most queued items (among equals, the one whose latest item is
        latest); None when no real item is queued."""
        counts = self._counts
        most = max((n for key, n in counts.items() if key is not _COVER), default=0)
        if most == 0:
            return None
        tied = [key for key, n in counts.items() if n == most and key is not _COVER]
        if len(tied) == 1:
            return tied[0]
        # An entry is (-deadline, -seq, seq): the smallest is the latest item.
        return min(tied, key=lambda key: self._latest_entry(key)[:2])

    def _latest_entry(self, key: Hashable) -> tuple[float, int, int]:
        """The top of `key`'s heap after dropping stale entries (the class has live items)."""
        latest, live = self._latest[key], self._live
        while latest[0][2] not in live:
            heapq.heappop(latest)
            self._stale -= 1
        return latest[0]

    def _evict_latest(self, key: Hashable) -> bool:
        """Evict the queued item of class `key` with the latest deadline; False if none."""
        if not self._counts.get(key):
            return False
        self._latest_entry(key)  # drops the stale entries above it
        seq = heapq.heappop(self._latest[key])[2]
        del self._live[seq]
        self._uncount(key)
        self._evicted.add(seq)
        if len(self._evicted) > len(self) + _COMPACT_SLACK:
            self._compact()
        return True

    def _uncount(self, key: Hashable) -> None:
        left = self._counts[key] - 1
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]

    def _compact(self) -> None:
        """Drop dead and stale entries from every heap (O(n)); amortized over the pops and
        evictions that made them."""
        evicted, live = self._evicted, self._live
        self._heap = [entry for entry in self._heap if entry[1] not in evicted]
        heapq.heapify(self._heap)
        evicted.clear()
        rebuilt: dict[Hashable, list[tuple[float, int, int]]] = {}
        for key, latest in self._latest.items():
            kept = [entry for entry in latest if entry[2] in live]
            if kept:
                heapq.heapify(kept)
                rebuilt[key] = kept
        self._latest = rebuilt
        self._stale = 0

    def _discard_dead_top(self) -> None:
        heap, evicted = self._heap, self._evicted
        while heap and heap[0][1] in evicted:
            evicted.discard(heapq.heappop(heap)[1])

    def next_deadline(self) -> float | None:
        """The earliest deadline queued, or None if nothing is."""
        self._discard_dead_top()
        return self._heap[0][0] if self._heap else None

    def pop_due_timed(self, now: float) -> list[tuple[float, T]]:
        """Remove and return (deadline, item) for every item due at `now`, in deadline order
        (arrival order among equal deadlines)."""
        heap, evicted, live, counts = self._heap, self._evicted, self._live, self._counts
        due: list[tuple[float, T]] = []
        while heap and heap[0][0] <= now:
            deadline, seq, item = heapq.heappop(heap)
            if seq in evicted:
                evicted.discard(seq)
                continue
            key = live.pop(seq)
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key]
            due.append((deadline, item))
        if due:
            self._stale += len(due)
            if self._stale > len(live) + _COMPACT_SLACK:
                self._compact()
        return due

    def pop_due(self, now: float) -> list[T]:
        """Remove and return every item due at `now`, in deadline order."""
        return [item for _, item in self.pop_due_timed(now)]

    def pop_all(self) -> list[T]:
        """Remove and return everything queued, in deadline order."""
        return self.pop_due(math.inf)


def _ignore_lateness(seconds: float) -> None:
    del seconds


class SchedulerTask(Generic[T]):
    """The Trio driver of a `DelayScheduler`: one task (`run`) sends items when they are due.

    Deadlines are on the `clock` given to `run` (Trio's clock by default). `push` is
    synchronous and wakes the task only when the new item is the earliest.
    """

    def __init__(
        self,
        scheduler: DelayScheduler[T],
        *,
        observe_lateness: Callable[[float], None] = _ignore_lateness,
    ) -> None:
        self._scheduler = scheduler
        self._observe_lateness = observe_lateness
        self._wakeup = trio.Event()
        self._running = False
        self._stopped = trio.Event()
        self._stop_at: float | None = None
        self._closed = False
        self._refused_closed = 0
        self._clock: Callable[[], float] = trio.current_time

    def __repr__(self) -> str:
        return f"SchedulerTask({self._scheduler!r}, running={self._running})"

    @property
    def scheduler(self) -> DelayScheduler[T]:
        return self._scheduler

    @property
    def refused_after_close(self) -> int:
        """Pushes refused because `drain` had finished."""
        return self._refused_closed

    def push(
        self, deadline: float, item: T, *, cover: bool = False, source: Hashable = None
    ) -> bool:
        """Queue `item` (see `DelayScheduler.push`); False if refused or after `drain`."""
        if self._closed:
            self._refused_closed += 1
            return False
        earliest = self._scheduler.next_deadline()
        accepted = self._scheduler.push(deadline, item, cover=cover, source=source)
        if accepted and (earliest is None or deadline < earliest):
            self._wakeup.set()
        return accepted

    async def run(
        self,
        on_due: Callable[[list[T]], None],
        *,
        clock: Callable[[], float] = trio.current_time,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Hand due items to `on_due`, in deadline order, until `drain` ends the run.
        `observe_lateness(now - deadline)` is called for every item sent. Start it with
        ``await nursery.start(task.run, on_due)`` so that `drain` may be called at once.
        `clock` must advance at the rate of Trio's clock (it may be offset from it)."""
        if self._running or self._closed:
            raise RuntimeError("the scheduler task is already running or was drained")
        self._running = True
        self._clock = clock
        scheduler = self._scheduler
        task_status.started()
        try:
            while True:
                now = clock()
                stop_at = self._stop_at
                due = scheduler.pop_due_timed(now if stop_at is None else min(now, stop_at))
                if due:
                    observe = self._observe_lateness
                    for deadline, _ in due:
                        observe(now - deadline)
                    on_due([item for _, item in due])
                    await trio.lowlevel.checkpoint()
                    continue
                next_deadline = scheduler.next_deadline()
                if stop_at is not None and (
                    now >= stop_at or next_deadline is None or next_deadline > stop_at
                ):
                    return
                self._wakeup = trio.Event()
                wait = math.inf if next_deadline is None else next_deadline - now
                with trio.move_on_after(max(0.0, wait)):
                    await self._wakeup.wait()
        finally:
            self._running = False
            self._stopped.set()

    async def drain(self, grace: float) -> list[T]:
        """For SIGTERM: let the running task send what falls due within `grace` seconds (at
        its deadline, not early), stop it, refuse further pushes, and return what is left."""
        if not self._running:
            raise RuntimeError("drain needs the scheduler task to be running")
        if not grace >= 0:
            raise ValueError("grace must be a non-negative number of seconds")
        self._stop_at = self._clock() + grace
        self._wakeup.set()
        await self._stopped.wait()
        self._closed = True
        return self._scheduler.pop_all()
