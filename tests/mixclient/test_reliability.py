"""Retransmission state: timers from the delays drawn, fresh SURB ids per try, bounded tries,
idempotent acknowledgements, bounded tables; time is injected throughout."""

from __future__ import annotations

import random

import pytest

from mixclient.reliability import (
    AckTracker,
    FragmentAcked,
    MessageFailed,
    ReliabilityError,
    Retransmit,
    RetryPolicy,
    TableFullError,
)

POLICY = RetryPolicy(max_tries=3, margin=2.0, backoff=2.0)


def sid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_a_message_is_done_when_every_fragment_is_acked() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 3)
    for index in range(3):
        assert tracker.sent(mid(1), index, sid(index), 0.0, forward_delay_ms=100, ack_delay_ms=50)
    assert tracker.on_ack(sid(2)) == FragmentAcked(mid(1), 2, False)
    assert tracker.on_ack(sid(0)) == FragmentAcked(mid(1), 0, False)
    assert tracker.unacked(mid(1)) == {1}
    assert tracker.on_ack(sid(1)) == FragmentAcked(mid(1), 1, True)
    assert len(tracker) == 0 and tracker.pending_fragments == 0 and tracker.known_surb_ids == 0
    assert tracker.due(1e9) == []


def test_acks_are_idempotent_and_unknown_ids_are_ignored() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 2)
    tracker.sent(mid(1), 0, sid(10), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    tracker.sent(mid(1), 1, sid(11), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    assert tracker.on_ack(sid(10)) is not None
    assert tracker.on_ack(sid(10)) is None
    assert tracker.on_ack(sid(99)) is None
    assert tracker.on_ack(b"short") is None
    assert tracker.unacked(mid(1)) == {1}


def test_the_timeout_is_the_delays_both_ways_plus_a_growing_margin() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 1)
    tracker.sent(mid(1), 0, sid(1), 100.0, forward_delay_ms=300, ack_delay_ms=700)
    assert tracker.next_deadline() == pytest.approx(103.0)  # 0.3 + 0.7 + 2.0
    assert tracker.due(102.999) == []
    assert tracker.due(103.0) == [Retransmit(mid(1), 0, 2)]
    # handed out for retransmission: no timer until it is sent again
    assert tracker.due(1e9) == []
    tracker.sent(mid(1), 0, sid(2), 110.0, forward_delay_ms=500, ack_delay_ms=500)
    assert tracker.next_deadline() == pytest.approx(115.0)  # 1.0 + 2.0 * 2
    assert POLICY.timeout(500, 500, 3) == pytest.approx(9.0)


def test_after_max_tries_the_message_fails_and_is_forgotten() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(7), 2)
    tracker.sent(mid(7), 1, sid(100), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    now = 0.0
    for tries in range(1, POLICY.max_tries):
        now = tracker.next_deadline() or now
        assert tracker.due(now) == [Retransmit(mid(7), 1, tries + 1)]
        tracker.sent(mid(7), 1, sid(100 + tries), now, forward_delay_ms=0, ack_delay_ms=0)
    now = tracker.next_deadline() or now
    assert tracker.due(now) == [MessageFailed(mid(7), 1, POLICY.max_tries)]
    assert len(tracker) == 0 and tracker.known_surb_ids == 0 and tracker.pending_fragments == 0
    assert tracker.on_ack(sid(100)) is None
    assert not tracker.sent(mid(7), 0, sid(200), now, forward_delay_ms=0, ack_delay_ms=0)


def test_a_late_ack_of_an_earlier_try_counts_and_the_retry_is_then_not_needed() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 1)
    tracker.sent(mid(1), 0, sid(1), 0.0, forward_delay_ms=100, ack_delay_ms=100)
    assert tracker.due(10.0) == [Retransmit(mid(1), 0, 2)]
    assert tracker.is_pending(mid(1), 0)
    tracker.sent(mid(1), 0, sid(2), 10.0, forward_delay_ms=100, ack_delay_ms=100)
    assert tracker.on_ack(sid(1)) == FragmentAcked(mid(1), 0, True)
    assert tracker.on_ack(sid(2)) is None
    assert not tracker.is_pending(mid(1), 0)
    assert tracker.due(1e9) == []


def test_an_ack_while_the_retry_is_queued_makes_the_retry_moot() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 2)
    tracker.sent(mid(1), 0, sid(1), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    assert tracker.due(5.0) == [Retransmit(mid(1), 0, 2)]
    tracker.on_ack(sid(1))
    assert not tracker.is_pending(mid(1), 0)
    assert not tracker.sent(mid(1), 0, sid(2), 6.0, forward_delay_ms=0, ack_delay_ms=0)
    assert tracker.known_surb_ids == 0


def test_every_try_needs_a_fresh_surb_id() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 2)
    tracker.sent(mid(1), 0, sid(1), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    with pytest.raises(ReliabilityError):
        tracker.sent(mid(1), 1, sid(1), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    with pytest.raises(ReliabilityError):
        tracker.sent(mid(1), 1, b"x" * 15, 0.0, forward_delay_ms=0, ack_delay_ms=0)


def test_the_tables_are_bounded() -> None:
    tracker = AckTracker(POLICY, max_messages=2, max_fragments=10)
    tracker.add_message(mid(1), 6)
    with pytest.raises(TableFullError):
        tracker.add_message(mid(2), 5)
    tracker.add_message(mid(2), 4)
    with pytest.raises(TableFullError):
        tracker.add_message(mid(3), 1)
    with pytest.raises(ReliabilityError):
        tracker.add_message(mid(1), 1)
    assert tracker.cancel(mid(1)) and not tracker.cancel(mid(1))
    tracker.add_message(mid(3), 6)
    assert tracker.pending_fragments == 10


def test_stale_timers_do_not_pile_up() -> None:
    tracker = AckTracker(POLICY)
    for n in range(5000):
        tracker.add_message(mid(n), 1)
        tracker.sent(mid(n), 0, sid(n), float(n), forward_delay_ms=1000, ack_delay_ms=1000)
        tracker.on_ack(sid(n))
        assert tracker.timer_count <= 2 * tracker.pending_fragments + 64
    assert len(tracker) == 0


def test_a_resumed_message_tracks_only_its_unacked_fragments() -> None:
    tracker = AckTracker(POLICY)
    tracker.add_message(mid(1), 4, acked=[0, 2])
    assert tracker.unacked(mid(1)) == {1, 3}
    assert not tracker.sent(mid(1), 0, sid(1), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    tracker.sent(mid(1), 1, sid(2), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    tracker.sent(mid(1), 3, sid(3), 0.0, forward_delay_ms=0, ack_delay_ms=0)
    tracker.on_ack(sid(2))
    assert tracker.on_ack(sid(3)) == FragmentAcked(mid(1), 3, True)


def test_ids_do_not_show_in_reprs() -> None:
    secret = b"\xab" * 16
    for value in (
        Retransmit(secret, 0, 2),
        MessageFailed(secret, 0, 3),
        FragmentAcked(secret, 1, True),
    ):
        assert "ab" * 4 not in repr(value) and "\\xab" not in repr(value)


def test_over_a_lossy_network_every_message_ends_done_or_failed_exactly_once() -> None:
    """A seeded simulation: packets and ACKs are lost at random, ACKs return after the drawn
    delays; the tracker's actions drive resends. Each message ends exactly once; the ones
    that succeed are those with every fragment acked."""
    rng = random.Random(3)
    policy = RetryPolicy(max_tries=4, margin=0.5, backoff=1.5)
    tracker = AckTracker(policy)
    arrivals: list[tuple[float, bytes]] = []  # (when the ACK lands, surb id)
    outcomes: dict[bytes, str] = {}
    next_surb = iter(range(1, 10**9))

    def transmit(message_id: bytes, index: int, now: float) -> None:
        forward, back = rng.randint(0, 400), rng.randint(0, 400)
        surb_id = sid(next(next_surb))
        assert tracker.sent(
            message_id, index, surb_id, now, forward_delay_ms=forward, ack_delay_ms=back
        )
        if rng.random() > 0.3:  # the packet and its ACK survive
            arrivals.append((now + (forward + back) / 1000 + rng.uniform(0, 0.4), surb_id))

    now = 0.0
    for n in range(200):
        tracker.add_message(mid(n), rng.randint(1, 5))
        for index in sorted(tracker.unacked(mid(n))):
            transmit(mid(n), index, now)
    for _ in range(100_000):
        if not len(tracker):
            break
        arrivals.sort()
        timer = tracker.next_deadline()
        if arrivals and (timer is None or arrivals[0][0] <= timer):
            now, surb_id = arrivals.pop(0)
            acked = tracker.on_ack(surb_id)
            if acked and acked.message_done:
                assert acked.message_id not in outcomes
                outcomes[acked.message_id] = "done"
            continue
        assert timer is not None
        now = timer
        for action in tracker.due(now):
            if isinstance(action, Retransmit):
                transmit(action.message_id, action.fragment_index, now)
            else:
                assert action.message_id not in outcomes
                outcomes[action.message_id] = "failed"
    assert len(tracker) == 0 and tracker.known_surb_ids == 0
    assert len(outcomes) == 200
    done = sum(outcome == "done" for outcome in outcomes.values())
    assert done > 150  # a fragment fails only if 4 tries in a row are lost: 0.3^4 ~ 0.8 %
