"""A client link's packet budget at its gateway (`mixnode.rate_limit`), without sockets: what
a flooding link gets through, and that a real client's Poisson stream never meets it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixnode.rate_limit import (
    AddressBudgets,
    Allowance,
    RegistrationBudgets,
    TokenBucket,
    address_key,
)

ALLOWANCE = Allowance(factor=3.0, floor=50.0, burst_seconds=2.0)


def test_the_rate_is_a_multiple_of_the_client_rate_with_a_floor() -> None:
    assert ALLOWANCE.rate(3.0) == 50.0
    assert ALLOWANCE.rate(204.0) == pytest.approx(612.0)
    for bad in [{"factor": 0}, {"floor": -1.0}, {"burst_seconds": float("nan")},
                {"factor": True}, {"floor": "50"}]:
        with pytest.raises(ValueError):
            Allowance(**bad)  # type: ignore[arg-type]


def test_a_flood_gets_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(ALLOWANCE, now=100.0)
    assert sum(bucket.admit(100.0, 3.0) for _ in range(1000)) == 100  # 2 s of 50/s
    # Then 50 a second, however hard it pushes: 1,000 tries every 10 ms for 10 s.
    admitted = sum(
        bucket.admit(100.0 + step / 100, 3.0) for step in range(1, 1001) for _ in range(10)
    )
    assert admitted == 500


@given(
    client_rate=st.floats(0.1, 1000.0),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=400),
)
def test_nothing_gets_more_than_the_burst_plus_the_rate(
    client_rate: float, gaps: list[float]
) -> None:
    bucket = TokenBucket(ALLOWANCE, now=0.0)
    now = 0.0
    admitted = 0
    for gap in gaps:
        now += gap
        admitted += bucket.admit(now, client_rate)
    rate = ALLOWANCE.rate(client_rate)
    assert admitted <= rate * ALLOWANCE.burst_seconds + rate * now + 1e-6


@pytest.mark.parametrize("client_rate", [3.0, 24.0, 204.0])
def test_a_clients_poisson_stream_is_never_refused(client_rate: float) -> None:
    """Ten minutes of a client's stream at exactly the consensus's rate (seeded)."""
    rng = random.Random(int(client_rate))
    bucket = TokenBucket(ALLOWANCE, now=0.0)
    now = 0.0
    while now < 600.0:
        now += rng.expovariate(client_rate)
        assert bucket.admit(now, client_rate), now


def test_a_new_consensus_changes_the_rate_and_time_going_back_adds_nothing() -> None:
    bucket = TokenBucket(ALLOWANCE, now=0.0)
    assert sum(bucket.admit(0.0, 3.0) for _ in range(200)) == 100
    # A consensus with λ = 100/s: 300 a second now, and the bucket holds 600.
    assert sum(bucket.admit(1.0, 100.0) for _ in range(1000)) == 300
    assert sum(bucket.admit(0.5, 100.0) for _ in range(10)) == 0  # an earlier time
    assert sum(bucket.admit(1.1, 100.0) for _ in range(100)) == 30


def test_a_reservation_beyond_the_budget_says_how_long_to_wait() -> None:
    """FETCHes are paced, not dropped: each takes its frames, into debt, and waits it off."""
    bucket = TokenBucket(ALLOWANCE, now=0.0)  # 50/s, 100 at once
    assert [bucket.reserve(0.0, 3.0, 16) for _ in range(6)] == [0.0] * 6  # 96 of 100
    assert bucket.reserve(0.0, 3.0, 16) == pytest.approx(12 / 50)
    assert bucket.reserve(0.0, 3.0, 16) == pytest.approx(28 / 50)
    # Waiting pays the debt off: 1.12 s later 56 frames have come back, so 28 are there.
    assert bucket.reserve(1.12, 3.0, 16) == 0.0
    assert bucket.reserve(1.12, 3.0, 16) == pytest.approx(4 / 50)
    # Over any run, the frames answered by a time never exceed the burst plus the rate.
    bucket = TokenBucket(ALLOWANCE, now=0.0)
    now = 0.0
    for _ in range(1000):
        now += 0.001
        ready_at = now + bucket.reserve(now, 3.0, 16)
    assert 1000 * 16 <= 100 + 50 * ready_at + 1e-6


def test_addresses_are_budgeted_by_host_and_an_ipv6_host_by_its_64() -> None:
    assert address_key("203.0.113.5") == "203.0.113.5"
    assert address_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:2") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("not an address") == "not an address"


def test_new_mailboxes_per_address_come_at_once_then_by_the_hour() -> None:
    budgets = RegistrationBudgets(20)
    assert sum(budgets.admit("203.0.113.5", 0.0) for _ in range(50)) == 20
    assert sum(budgets.admit("2001:db8::1", 0.0) for _ in range(15)) == 15
    assert sum(budgets.admit("2001:db8::2", 0.0) for _ in range(15)) == 5  # the same /64
    assert budgets.admit("198.51.100.1", 0.0)  # another address is not held up
    assert not budgets.admit("203.0.113.5", 179.0)
    assert budgets.admit("203.0.113.5", 181.0)  # one every 3 minutes
    assert "203.0.113" not in repr(budgets) and "2001" not in repr(budgets)


def test_the_table_of_addresses_is_bounded() -> None:
    budgets = RegistrationBudgets(1, max_addresses=100)
    for n in range(1000):
        budgets.admit(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert repr(budgets) == "RegistrationBudgets(addresses=100)"
    with pytest.raises(ValueError):
        RegistrationBudgets(0)


def test_new_links_per_address_come_in_a_burst_then_a_few_a_second() -> None:
    budgets = AddressBudgets(8.0, 64)
    assert sum(budgets.admit("203.0.113.5", 0.0) for _ in range(100)) == 64
    assert budgets.admit("198.51.100.1", 0.0)  # another address is not held up
    assert sum(budgets.admit("203.0.113.5", 1.0) for _ in range(100)) == 8
    assert sum(budgets.admit("203.0.113.5", 1.5) for _ in range(100)) == 4
    assert repr(budgets) == "AddressBudgets(addresses=2)"


@pytest.mark.parametrize(
    ("per_second", "burst"),
    [(0.0, 64), (-1.0, 64), (float("inf"), 64), (float("nan"), 64), (8.0, 0), (8.0, 0.5),
     (True, 64), (8.0, float("nan"))],
)
def test_address_budgets_refuse_rates_that_are_no_budget(per_second: float, burst: float) -> None:
    with pytest.raises(ValueError, match="per_second|burst"):
        AddressBudgets(per_second, burst)
