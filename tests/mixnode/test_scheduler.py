"""The delay scheduler: the sans-I/O heap and its one-task Trio driver (virtual time)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from mixnode.scheduler import DROP_REASONS, DelayScheduler, SchedulerTask

# the core


def test_pop_due_is_in_deadline_order_not_arrival_order() -> None:
    scheduler: DelayScheduler[str] = DelayScheduler(10)
    for deadline, item in [(5.0, "e"), (1.0, "a"), (3.0, "c"), (2.0, "b"), (4.0, "d")]:
        assert scheduler.push(deadline, item)
    assert scheduler.next_deadline() == 1.0
    assert scheduler.pop_due(0.5) == []
    assert scheduler.pop_due(3.0) == ["a", "b", "c"]
    assert len(scheduler) == 2
    assert scheduler.next_deadline() == 4.0
    assert scheduler.pop_due(100.0) == ["d", "e"]
    assert scheduler.next_deadline() is None
    assert len(scheduler) == 0


def test_equal_deadlines_leave_in_arrival_order() -> None:
    scheduler: DelayScheduler[int] = DelayScheduler(10)
    for i in range(5):
        scheduler.push(1.0, i, cover=i % 2 == 0)
    assert scheduler.pop_due_timed(1.0) == [(1.0, i) for i in range(5)]


def test_a_full_heap_of_real_items_refuses_everything() -> None:
    scheduler: DelayScheduler[str] = DelayScheduler(2)
    assert scheduler.push(1.0, "r1") and scheduler.push(2.0, "r2")
    assert not scheduler.push(0.5, "r3")
    assert not scheduler.push(0.5, "c1", cover=True)
    assert dict(scheduler.drops) == {
        "cover_evicted": 0, "cover_refused": 1, "real_evicted": 0, "real_refused": 1
    }
    assert scheduler.pop_all() == ["r1", "r2"]


def test_real_evicts_the_cover_with_the_latest_deadline() -> None:
    scheduler: DelayScheduler[str] = DelayScheduler(3)
    scheduler.push(5.0, "late cover", cover=True)
    scheduler.push(1.0, "early cover", cover=True)
    scheduler.push(3.0, "real")
    assert scheduler.cover_count == 2
    assert scheduler.push(9.0, "new real")
    assert len(scheduler) == 3
    assert scheduler.cover_count == 1
    assert scheduler.drops["cover_evicted"] == 1
    assert not scheduler.push(0.0, "cover when full", cover=True)
    assert scheduler.push(2.0, "another real")  # evicts the early cover, the only one left
    assert not scheduler.push(2.0, "and another")  # no cover left
    assert dict(scheduler.drops) == {
        "cover_evicted": 2, "cover_refused": 1, "real_evicted": 0, "real_refused": 1
    }
    assert scheduler.next_deadline() == 2.0
    assert scheduler.pop_all() == ["another real", "real", "new real"]


def test_room_freed_by_popping_is_reused() -> None:
    scheduler: DelayScheduler[int] = DelayScheduler(2)
    scheduler.push(1.0, 1)
    scheduler.push(2.0, 2)
    assert scheduler.pop_due(1.0) == [1]
    assert scheduler.push(3.0, 3, cover=True)
    assert sum(scheduler.drops.values()) == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        DelayScheduler(0)
    scheduler: DelayScheduler[int] = DelayScheduler(1)
    for deadline in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            scheduler.push(deadline, 1)
    with pytest.raises(TypeError):
        scheduler.drops["real_refused"] = 5  # type: ignore[index]
    assert set(scheduler.drops) == set(DROP_REASONS)


def test_memory_stays_bounded_under_sustained_eviction() -> None:
    capacity = 100
    scheduler: DelayScheduler[int] = DelayScheduler(capacity)
    for i in range(capacity):
        scheduler.push(1000.0 + i, i, cover=True)
    for i in range(20_000):  # each real push evicts a cover, each cover push refills
        scheduler.pop_due(float(i) / 100)
        scheduler.push(float(i) / 100 + 5, i)
        scheduler.push(float(i) / 100 + 6, i, cover=True)
        # dead entries are compacted away: the heaps never hold much more than `capacity`
        assert len(scheduler._heap) <= 2 * capacity + 64 + 1
        assert sum(map(len, scheduler._latest.values())) <= 2 * capacity + 64 + 1
    assert len(scheduler) <= capacity


def test_a_flooding_source_fills_only_its_share() -> None:
    capacity = 10
    scheduler: DelayScheduler[str] = DelayScheduler(capacity)
    for i in range(100):  # valid packets with long delays, as fast as the link takes them
        scheduler.push(100.0 + i, f"flood {i}", source=b"flooder")
    assert len(scheduler) == capacity and scheduler.drops["real_refused"] == 90
    for peer in range(4):  # the honest peers' packets are still taken...
        for i in range(2):
            assert scheduler.push(1.0 + i, f"peer {peer}.{i}", source=bytes([peer]))
    # ...each evicting the flooder's latest packet, until it holds no more than any of them
    assert scheduler.drops["real_evicted"] == 8
    assert not scheduler.push(0.5, "flood again", source=b"flooder")
    assert not scheduler.push(0.5, "peer 0 again", source=bytes([0]))  # a full share too
    assert scheduler.push(0.5, "a new peer", source=b"new")
    assert scheduler.drops["real_evicted"] == 9
    left = scheduler.pop_all()
    assert left[0] == "a new peer" and sum(item.startswith("peer") for item in left) == 8
    assert left[-1] == "flood 0"  # the flooder kept its earliest


def test_memory_stays_bounded_under_sustained_fair_eviction() -> None:
    capacity = 100
    scheduler: DelayScheduler[int] = DelayScheduler(capacity)
    for i in range(20_000):  # a flood that keeps the heap full; other sources come and go
        now = float(i) / 100
        scheduler.pop_due(now)
        scheduler.push(now + 50, i, source="flooder")
        scheduler.push(now + 1, i, source=i % 500)
        assert len(scheduler._heap) <= 2 * capacity + 64 + 1
        assert sum(map(len, scheduler._latest.values())) <= 2 * capacity + 64 + 1
        assert len(scheduler._latest) <= 2 * capacity + 64 + 1 and len(scheduler._counts) <= capacity
    assert len(scheduler) == capacity
    assert scheduler.drops["real_evicted"] > 10_000


@dataclass
class ModelScheduler:
    """The obvious quadratic implementation of the same policy, for comparison."""

    capacity: int
    queued: list[tuple[float, int, int, bool, int]] = field(default_factory=list)
    seq: int = 0
    drops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    def push(self, deadline: float, item: int, cover: bool, source: int = 0) -> bool:
        if len(self.queued) >= self.capacity:
            if cover:
                self.drops["cover_refused"] += 1
                return False
            covers = [entry for entry in self.queued if entry[3]]
            if covers:
                self.queued.remove(max(covers, key=lambda entry: (entry[0], entry[1])))
                self.drops["cover_evicted"] += 1
            else:
                counts = Counter(entry[4] for entry in self.queued)
                most = max(counts.values())
                if counts[source] >= most:
                    self.drops["real_refused"] += 1
                    return False
                fattest = [entry for entry in self.queued if counts[entry[4]] == most]
                self.queued.remove(max(fattest, key=lambda entry: (entry[0], entry[1])))
                self.drops["real_evicted"] += 1
        self.queued.append((deadline, self.seq, item, cover, source))
        self.seq += 1
        return True

    def pop_due(self, now: float) -> list[int]:
        due = sorted(entry for entry in self.queued if entry[0] <= now)
        self.queued = [entry for entry in self.queued if entry[0] > now]
        return [entry[2] for entry in due]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 50), st.booleans(), st.integers(0, 3)),
        st.tuples(st.just("pop"), st.integers(0, 50), st.just(False), st.just(0)),
    ),
    max_size=300,
)


@settings(max_examples=300)
@given(st.integers(1, 8), operations)
def test_the_heap_behaves_like_the_obvious_model(
    capacity: int, ops: list[tuple[str, int, bool, int]]
) -> None:
    scheduler: DelayScheduler[int] = DelayScheduler(capacity)
    model = ModelScheduler(capacity)
    for item, (op, time, cover, source) in enumerate(ops):
        if op == "push":
            assert scheduler.push(float(time), item, cover=cover, source=source) == model.push(
                float(time), item, cover, source
            )
        else:
            assert scheduler.pop_due(float(time)) == model.pop_due(float(time))
        assert len(scheduler) == len(model.queued)
        assert scheduler.cover_count == sum(entry[3] for entry in model.queued)
        assert dict(scheduler.drops) == model.drops
        expected_next = min((entry[0] for entry in model.queued), default=None)
        assert scheduler.next_deadline() == expected_next
    assert scheduler.pop_all() == model.pop_due(float("inf"))


# the Trio driver (virtual time)


@dataclass
class Recorder:
    sent: list[tuple[float, object]] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    batches: int = 0

    def on_due(self, items: list[object]) -> None:
        now = trio.current_time()
        self.batches += 1
        self.sent.extend((now, item) for item in items)


def make_task(recorder: Recorder, capacity: int = 1000) -> SchedulerTask[object]:
    return SchedulerTask(DelayScheduler(capacity), observe_lateness=recorder.lateness.append)


async def run_for(task: SchedulerTask[object], recorder: Recorder, seconds: float) -> list[object]:
    """Run the task for `seconds` of virtual time, then drain it with no grace."""
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, recorder.on_due)
        await trio.sleep(seconds)
        return await task.drain(0.0)


async def test_items_leave_at_their_deadlines_in_deadline_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    task = make_task(recorder)
    start = trio.current_time()
    for delay, item in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "b2")]:
        assert task.push(start + delay, item)
    assert await run_for(task, recorder, 10.0) == []
    assert [item for _, item in recorder.sent] == ["a", "b", "b2", "c"]
    assert [at - start for at, _ in recorder.sent] == [1.0, 2.0, 2.0, 3.0]
    assert recorder.batches == 3  # equal deadlines leave together
    assert len(recorder.lateness) == 4
    assert max(recorder.lateness) < 1e-9


async def test_an_earlier_push_wakes_the_sleeping_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    task = make_task(recorder)
    start = trio.current_time()
    task.push(start + 100.0, "late")
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, recorder.on_due)
        await trio.sleep(1.0)  # the task now sleeps until start + 100
        task.push(start + 2.0, "early")
        task.push(start + 50.0, "middle")  # not the earliest: no wakeup needed, still on time
        await trio.sleep(200.0)
        await task.drain(0.0)
    assert [(at - start, item) for at, item in recorder.sent] == [
        (2.0, "early"),
        (50.0, "middle"),
        (100.0, "late"),
    ]
    assert max(recorder.lateness) < 1e-9


async def test_an_idle_task_wakes_for_the_first_push(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    task = make_task(recorder)
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, recorder.on_due)
        await trio.sleep(5.0)
        task.push(trio.current_time() + 1.0, "x")
        task.push(trio.current_time() - 1.0, "overdue")  # already due: sent at once
        await trio.sleep(5.0)
        await task.drain(0.0)
    assert [item for _, item in recorder.sent] == ["overdue", "x"]
    assert sorted(recorder.lateness) == [0.0, 1.0]


async def test_capacity_and_eviction_through_the_driver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    task = make_task(recorder, capacity=2)
    now = trio.current_time()
    assert task.push(now + 5, "cover", cover=True)
    assert task.push(now + 6, "flood 1", source="flooder")
    assert task.push(now + 7, "flood 2", source="flooder")  # evicts the cover
    assert task.push(now + 1, "honest", source="peer")  # evicts flood 2, the flooder's latest
    assert not task.push(now + 1, "flood 3", source="flooder")  # its share is full
    assert not task.push(now + 1, "cover 2", cover=True)
    assert await run_for(task, recorder, 10.0) == []
    assert [item for _, item in recorder.sent] == ["honest", "flood 1"]
    assert dict(task.scheduler.drops) == {
        "cover_evicted": 1,
        "cover_refused": 1,
        "real_evicted": 1,
        "real_refused": 1,
    }


async def test_drain_sends_what_is_due_within_the_grace_and_returns_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    task = make_task(recorder)
    start = trio.current_time()
    for delay in (1.0, 4.0, 5.0, 6.0, 30.0):
        task.push(start + delay, delay)
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, recorder.on_due)
        await trio.sleep(2.0)
        left = await task.drain(3.0)  # grace ends at start + 5
        drained_at = trio.current_time() - start
    assert [(at - start, item) for at, item in recorder.sent] == [
        (1.0, 1.0),
        (4.0, 4.0),
        (5.0, 5.0),
    ]
    assert left == [6.0, 30.0]
    assert drained_at == 5.0  # not a moment past the last item due within the grace
    assert not task.push(trio.current_time() + 1, "after")
    assert task.refused_after_close == 1
    with pytest.raises(RuntimeError):
        await task.run(recorder.on_due)


async def test_drain_returns_at_once_when_nothing_is_due_within_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    task = make_task(recorder)
    start = trio.current_time()
    task.push(start + 60.0, "later")
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, recorder.on_due)
        assert await task.drain(10.0) == ["later"]
    assert trio.current_time() == start
    assert recorder.sent == []


async def test_drain_sends_only_what_falls_due_within_the_grace_when_the_sender_is_slow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task: SchedulerTask[int] = SchedulerTask(DelayScheduler(100))
    start = trio.current_time()
    for i in range(10):
        task.push(start + 1.0 + i / 10, i)
    sent: list[tuple[float, list[int]]] = []

    def slow_sender(items: list[int]) -> None:
        sent.append((trio.current_time() - start, items))
        autojump_clock.jump(0.5)  # each send takes half a second of (virtual) time

    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, slow_sender)
        left = await task.drain(1.25)  # due within the grace: items 0, 1 and 2
    assert sent == [(1.0, [0]), (1.5, [1, 2])]
    assert left == list(range(3, 10))
    assert trio.current_time() - start == 2.0


async def test_drain_needs_a_running_task() -> None:
    task: SchedulerTask[int] = SchedulerTask(DelayScheduler(1))
    with pytest.raises(RuntimeError):
        await task.drain(1.0)


async def test_one_run_at_a_time(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    task = make_task(recorder)
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, recorder.on_due)
        with pytest.raises(RuntimeError):
            await task.run(recorder.on_due)
        await task.drain(0.0)


def count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for n in task.child_nurseries for child in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


async def test_a_hundred_thousand_items_without_a_task_per_item(
    autojump_clock: trio.testing.MockClock,
) -> None:
    count = 100_000
    rng = random.Random(5)
    lateness: list[float] = []
    task: SchedulerTask[int] = SchedulerTask(
        DelayScheduler(count), observe_lateness=lateness.append
    )
    start = trio.current_time()
    deadlines = [start + rng.randrange(10_000) / 1000 for _ in range(count)]  # 1 ms steps, 10 s
    for i, deadline in enumerate(deadlines):
        assert task.push(deadline, i)
    received: list[int] = []
    most_tasks = 0

    def on_due(items: list[int]) -> None:
        nonlocal most_tasks
        most_tasks = max(most_tasks, count_tasks())
        received.extend(items)

    tasks_before = count_tasks()
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, on_due)
        await trio.sleep(11.0)
        assert await task.drain(0.0) == []
    assert len(received) == count
    assert [deadlines[i] for i in received] == sorted(deadlines)
    assert most_tasks <= tasks_before + 1  # the scheduler's one task, whatever the load
    assert len(lateness) == count
    assert max(lateness) < 1e-9
