"""The Loopix client streams: Poisson counts, the same process idle and busy (two-sample
Kolmogorov-Smirnov), real packets only in payload slots, rate changes, lateness, the queue.

Every run is seeded; the statistical bounds are wide enough (4 sigma, alpha = 0.001) that
a correct scheduler passes them for these seeds and any other, and narrow enough that the
leaky scheduler of `test_the_ks_test_catches_a_client_that_sends_outside_its_slots` fails.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest

from directory.parameters import Parameters
from mixclient.cover_streams import (
    CoverSchedule,
    Emission,
    PoissonStreams,
    SendQueue,
    StreamKind,
    StreamRates,
)

RATES = StreamRates.from_parameters(Parameters.default())  # 2 + 0.5 + 0.5 per second
DURATION = 3000.0
WINDOW = 10.0
KS_C_ALPHA_0001 = math.sqrt(-math.log(0.001 / 2) / 2)  # 1.949


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D: the largest gap between the empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / len(a)
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_critical(n: int, m: int) -> float:
    """D above this rejects "same distribution" at alpha = 0.001 (asymptotic)."""
    return KS_C_ALPHA_0001 * math.sqrt((n + m) / (n * m))


def workload(seed: int, until: float) -> list[tuple[float, int]]:
    """A user who sends a message of 1 to 40 packets every 30 s on average."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while (t := t + rng.expovariate(1 / 30)) < until:
        arrivals.append((t, rng.randint(1, 40)))
    return arrivals


def run(
    seed: int,
    *,
    busy: bool,
    until: float = DURATION,
    rates: StreamRates = RATES,
    capacity: int = 4096,
) -> tuple[list[Emission[int]], int]:
    """Drive a schedule like a driver would: sleep until the next event or user action.
    Returns the emissions and how many packets the queue refused."""
    schedule: CoverSchedule[int] = CoverSchedule(
        rates, rng=random.Random(seed), now=0.0, queue_capacity=capacity
    )
    arrivals = workload(seed + 1000, until) if busy else []
    emissions: list[Emission[int]] = []
    refused, packet_number, now = 0, 0, 0.0
    while now < until:
        wake = now + schedule.wait_time(now)
        if arrivals and arrivals[0][0] <= wake:
            now, count = arrivals.pop(0)
            for _ in range(count):
                packet_number += 1
                refused += not schedule.queue.put(packet_number)
            continue
        now = min(wake, until)
        emissions.extend(schedule.due(now))
    return emissions, refused


def times(emissions: list[Emission[int]]) -> np.ndarray:
    return np.array([e.at for e in emissions])


def check_counts(
    emissions: list[Emission[int]], rates: StreamRates, start: float, end: float
) -> None:
    at = times(emissions)
    at = at[(at >= start) & (at < end)]
    expected = rates.total * (end - start)
    assert abs(len(at) - expected) < 4 * math.sqrt(expected)
    windows = np.histogram(at, bins=int((end - start) / WINDOW), range=(start, end))[0]
    # Poisson counts: the variance equals the mean (index of dispersion 1)
    dispersion = windows.var(ddof=1) / windows.mean()
    assert 0.7 < dispersion < 1.35
    for kind in StreamKind:
        n = sum(1 for e in emissions if e.kind is kind and start <= e.at < end)
        mean = rates.of(kind) * (end - start)
        assert abs(n - mean) < 4 * math.sqrt(mean) + 1


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_per_window_counts_match_the_total_rate(busy: bool) -> None:
    emissions, refused = run(7, busy=busy)
    assert refused == 0
    check_counts(emissions, RATES, 0.0, DURATION)
    real = [e for e in emissions if e.real]
    assert (len(real) > 1000) is busy


def test_real_packets_only_replace_payload_slots_in_order() -> None:
    emissions, _ = run(8, busy=True)
    real = [e for e in emissions if e.real]
    assert all(e.kind is StreamKind.PAYLOAD for e in real)
    assert [e.packet for e in real] == list(range(1, len(real) + 1))
    assert all(e.packet is None for e in emissions if e.kind is not StreamKind.PAYLOAD)


def test_with_the_same_seed_the_link_is_identical_idle_and_busy() -> None:
    idle, _ = run(9, busy=False)
    busy, _ = run(9, busy=True)
    assert [(e.kind, e.at) for e in idle] == [(e.kind, e.at) for e in busy]
    assert any(e.real for e in busy) and not any(e.real for e in idle)


def test_inter_packet_times_are_the_same_distribution_idle_and_busy() -> None:
    idle = np.diff(times(run(10, busy=False)[0]))
    busy = np.diff(times(run(11, busy=True)[0]))
    assert ks_statistic(idle, busy) < ks_critical(len(idle), len(busy))
    # and both are Exp(total rate): against a large sample of the exponential itself
    reference = np.random.default_rng(12).exponential(1 / RATES.total, 200_000)
    for gaps in (idle, busy):
        assert ks_statistic(gaps, reference) < ks_critical(len(gaps), len(reference))


def test_the_ks_test_catches_a_client_that_sends_outside_its_slots() -> None:
    """The power check: a client that adds its real packets to the cover (rather than
    putting them in payload slots) is told apart by the same test."""
    idle = np.diff(times(run(10, busy=False)[0]))
    cover = times(run(11, busy=False)[0])
    extra = [t + i * 0.01 for t, count in workload(1011, DURATION) for i in range(count)]
    leaky = np.diff(np.sort(np.concatenate([cover, np.array(extra)])))
    assert ks_statistic(idle, leaky) > ks_critical(len(idle), len(leaky))


def test_rates_change_when_the_consensus_changes() -> None:
    faster = replace(Parameters.default(), lambda_p_mhz=6000, lambda_d_mhz=0)
    new_rates = StreamRates.from_parameters(faster)
    schedule: CoverSchedule[int] = CoverSchedule(RATES, rng=random.Random(13), now=0.0)
    emissions: list[Emission[int]] = []
    now = 0.0
    while now < 2000:
        now += schedule.wait_time(now)
        if now >= 1000 and schedule.streams.rates == RATES:
            schedule.set_rates(new_rates, 1000.0)
            continue
        emissions.extend(schedule.due(now))
    check_counts(emissions, RATES, 0.0, 1000.0)
    check_counts(emissions, new_rates, 1000.0, 2000.0)
    assert not any(e.kind is StreamKind.DROP and e.at > 1000 for e in emissions)


def test_set_rates_keeps_the_schedule_of_unchanged_streams() -> None:
    def first_events(change: bool) -> dict[StreamKind, float]:
        streams = PoissonStreams(RATES, rng=random.Random(14), now=0.0, max_lateness=100.0)
        if change:
            streams.set_rates(replace(RATES, drop=4.0), 0.0)
        first: dict[StreamKind, float] = {}
        for event in streams.due(60.0):
            first.setdefault(event.kind, event.at)
        return first

    kept, changed = first_events(False), first_events(True)
    assert changed[StreamKind.PAYLOAD] == kept[StreamKind.PAYLOAD]
    assert changed[StreamKind.LOOP] == kept[StreamKind.LOOP]
    assert changed[StreamKind.DROP] != kept[StreamKind.DROP]


def test_a_stream_at_rate_zero_is_off() -> None:
    streams = PoissonStreams(StreamRates(0, 0, 0), rng=random.Random(1), now=0.0)
    assert streams.next_event() is None
    assert streams.wait_time(0.0) == math.inf
    assert streams.due(1e6) == []
    streams.set_rates(StreamRates(0, 3.0, 0), 10.0)
    events = streams.due(110.0)
    assert {e.kind for e in events} == {StreamKind.LOOP}
    assert all(10.0 < e.at <= 110.0 for e in events)


def test_next_event_and_wait_time_agree_with_due() -> None:
    streams = PoissonStreams(RATES, rng=random.Random(15), now=100.0)
    for _ in range(200):
        event = streams.next_event()
        assert event is not None and event.at > 100.0
        assert streams.wait_time(event.at - 0.5) == pytest.approx(0.5)
        assert streams.due(event.at - 1e-9) == []
        assert streams.due(event.at) == [event]
        assert streams.wait_time(event.at) > 0


def test_taking_ahead_gives_the_same_schedule_as_due() -> None:
    ahead: CoverSchedule[int] = CoverSchedule(RATES, rng=random.Random(17), now=0.0)
    on_time: CoverSchedule[int] = CoverSchedule(RATES, rng=random.Random(17), now=0.0)
    taken: list[Emission[int]] = []
    due: list[Emission[int]] = []
    now = 0.0
    while now < 500.0:
        emission = ahead.next_emission(now)
        assert emission is not None and emission.at >= now
        taken.append(emission)
        now = emission.at  # a driver that sleeps until each slot after building its packet
        due.extend(on_time.due(now))
    assert len(taken) > 1000
    assert [(e.kind, e.at) for e in taken] == [(e.kind, e.at) for e in due]


def test_a_payload_slot_taken_ahead_takes_the_queued_packet_then() -> None:
    schedule: CoverSchedule[int] = CoverSchedule(
        StreamRates(1.0, 0.0, 0.0), rng=random.Random(18), now=0.0
    )
    first = schedule.next_emission(0.0)
    schedule.queue.put(1)  # queued after the slot was taken: it goes in the next one
    second = schedule.next_emission(0.0)
    assert first is not None and not first.real
    assert second is not None and second.packet == 1 and second.at > first.at
    off: CoverSchedule[int] = CoverSchedule(
        StreamRates(0.0, 0.0, 0.0), rng=random.Random(18), now=0.0
    )
    assert off.next_emission(0.0) is None


def test_taking_ahead_after_a_long_sleep_restarts_not_bursts() -> None:
    streams = PoissonStreams(RATES, rng=random.Random(19), now=0.0, max_lateness=2.0)
    event = streams.pop(100_000.0)
    assert event is not None and event.at >= 100_000.0 - 2.0 and streams.restarts >= 1


def test_a_late_driver_gets_a_bounded_catch_up_not_a_burst() -> None:
    streams = PoissonStreams(RATES, rng=random.Random(16), now=0.0, max_lateness=2.0)
    events = streams.due(100_000.0)
    assert streams.restarts >= 1
    assert all(100_000.0 - 2.0 <= e.at <= 100_000.0 for e in events)
    assert len(events) < 40  # about 6 expected in the last 2 s
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_the_send_queue_is_bounded_urgent_first_and_fifo() -> None:
    queue: SendQueue[str] = SendQueue(3)
    assert queue.put("a") and queue.put("b") and queue.put("retry", urgent=True)
    assert queue.full and not queue.put("c") and not queue.put("x", urgent=True)
    assert [queue.take(), queue.take(), queue.take(), queue.take()] == ["retry", "a", "b", None]
    assert len(queue) == 0
    with pytest.raises(ValueError):
        SendQueue(0)


def test_a_full_queue_refuses_and_nothing_leaves_outside_payload_slots() -> None:
    emissions, refused = run(17, busy=True, capacity=5)
    assert refused > 0
    check_counts(emissions, RATES, 0.0, DURATION)
    assert all(e.kind is StreamKind.PAYLOAD for e in emissions if e.real)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_rates_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        StreamRates(bad, 1.0, 1.0)


def test_rates_come_from_the_consensus_parameters() -> None:
    parameters = Parameters(
        mean_delay_ms=50,
        lambda_p_mhz=1500,
        lambda_l_mhz=250,
        lambda_d_mhz=125,
        lambda_m_mhz=1000,
        layers=3,
    )
    rates = StreamRates.from_parameters(parameters)
    assert (rates.payload, rates.loop, rates.drop) == (1.5, 0.25, 0.125)
    assert rates.total == pytest.approx(1.875)
