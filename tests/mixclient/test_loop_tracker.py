"""`LoopTracker`: a loop counts as lost only after its deadline and a drained mailbox."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixclient.loop_tracker import LoopTracker


def test_a_loop_is_lost_only_once_a_poll_after_its_deadline_found_the_mailbox_drained() -> None:
    loops = LoopTracker()
    loops.sent(b"a", 10.0)
    loops.sent(b"b", 20.0)
    loops.drained(9.0)  # before a's deadline: a may still be on its way
    assert loops.expire() == 0
    # Long past both deadlines, but the polls have fallen behind: nothing is lost yet.
    assert loops.expire() == 0 and loops.in_flight == 2
    loops.drained(15.0)
    assert loops.expire() == 1
    assert (loops.lost_count, loops.in_flight) == (1, 1)
    assert not loops.returned(b"a")  # back after it was counted lost: unmatched
    assert loops.returned(b"b")
    assert not loops.returned(b"b")  # a copy
    assert (loops.returned_count, loops.lost_count, loops.in_flight) == (1, 1, 0)
    loops.drained(12.0)  # an older poll's answer never moves the mark back
    loops.sent(b"c", 30.0)
    assert loops.expire() == 0
    loops.drained(31.0)
    assert loops.expire() == 1
    assert repr(loops) == "LoopTracker(in_flight=0, returned=1, lost=2)"


def test_the_table_is_bounded_and_the_oldest_loop_counts_as_lost() -> None:
    loops = LoopTracker(max_tracked=3)
    for n in range(5):
        loops.sent(bytes([n]), 100.0 + n)
    assert (loops.in_flight, loops.lost_count) == (3, 2)
    assert not loops.returned(bytes([0])) and loops.returned(bytes([4]))
    with pytest.raises(ValueError):
        LoopTracker(max_tracked=0)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(1, 20)),
        st.tuples(st.just("sent"), st.integers(1, 30)),  # due back this long from now
        st.tuples(st.just("returned"), st.integers(0, 40)),  # the n-th loop sent
        st.tuples(st.just("drained"), st.integers(0, 30)),  # a poll sent this long ago
        st.tuples(st.just("expire"), st.just(0)),
    ),
    max_size=80,
)


@given(_OPS)
def test_the_tracker_agrees_with_a_plain_model(ops: list[tuple[str, int]]) -> None:
    """Any history in time order: loops sent with deadlines ahead, polls found drained at
    some time in the past, loops coming back, in any order."""
    loops = LoopTracker(max_tracked=5)
    flying: dict[bytes, float] = {}  # insertion order, as the tracker keeps it
    now, drained, lost, returned, sent = 0.0, float("-inf"), 0, 0, 0
    for op, n in ops:
        if op == "tick":
            now += n
        elif op == "sent":
            key = sent.to_bytes(2, "big")
            sent += 1
            flying[key] = now + n
            loops.sent(key, now + n)
            while len(flying) > 5:
                del flying[next(iter(flying))]
                lost += 1
        elif op == "returned":
            key = n.to_bytes(2, "big")
            back = flying.pop(key, None) is not None
            returned += back
            assert loops.returned(key) is back
        elif op == "drained":
            drained = max(drained, now - n)
            loops.drained(now - n)
        else:
            gone = [k for k, deadline in flying.items() if deadline <= drained]
            for k in gone:
                del flying[k]
            lost += len(gone)
            assert loops.expire() == len(gone)
        assert (loops.in_flight, loops.returned_count, loops.lost_count) == (
            len(flying), returned, lost
        )
