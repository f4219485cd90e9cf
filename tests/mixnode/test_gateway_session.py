"""A client's session at its gateway (`serve_client`) over an in-memory link, with a real
SQLite mailbox store: pipelined FETCHes hand each message out once, acknowledgements end a
lease, and a lease that lapses offers its message again."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from mixnode.gateway_protocol import (
    Ack,
    Empty,
    Error,
    ErrorCode,
    Fetch,
    Message,
    Register,
    Registered,
    decode_reply,
    encode_request,
)
from mixnode.gateway_session import LEASE_SECONDS, Leases, serve_client
from mixnode.link import Frame, FrameKind
from mixnode.mailbox import MailboxLimits, MailboxStore
from mixnode.rate_limit import Allowance, RegistrationBudgets, TokenBucket

OWNER = bytes(range(32))


class MemoryLink:
    """Both ends of a client link in memory: the test writes requests and reads replies."""

    def __init__(self) -> None:
        self.peer_static_key = OWNER
        self._requests_in, self._requests_out = trio.open_memory_channel[Frame](64)
        self._replies_in, self._replies_out = trio.open_memory_channel[Frame](256)

    async def receive(self) -> Frame:
        return await self._requests_out.receive()

    async def send_many(self, frames: list[Frame]) -> None:
        for frame in frames:
            await self._replies_in.send(frame)

    async def request(self, request: Register | Fetch | Ack) -> None:
        await self._requests_in.send(Frame(FrameKind.CONTROL, encode_request(request)))

    async def replies(self, count: int) -> list[object]:
        with trio.fail_after(10):
            return [decode_reply((await self._replies_out.receive()).body) for _ in range(count)]


def ids(replies: list[object]) -> list[bytes]:
    return [r.message_id for r in replies if isinstance(r, Message)]


async def test_pipelined_fetches_hand_each_message_out_once_until_its_lease_lapses(
    tmp_path: Path,
) -> None:
    clock = [1000.0]
    store = MailboxStore(tmp_path / "m.sqlite", MailboxLimits(), rng=random.Random(3).randbytes)
    link = MemoryLink()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_client(
                link, store, on_packet=lambda _: None, count=lambda _: None,
                now=lambda: clock[0], fetch_wait=lambda _: 0.0, may_register=lambda: True,
            )
        )
        await link.request(Register())
        (registered,) = await link.replies(1)
        assert isinstance(registered, Registered)
        for n in range(6):
            store.store(registered.mailbox_id, b"\x01" + bytes(16) + b"message %d" % n, now=0.0)
        # Two FETCHes before either answer is read: six messages, each once, then fillers.
        await link.request(Fetch(4))
        await link.request(Fetch(4))
        first, second = await link.replies(4), await link.replies(4)
        assert len(ids(first)) == 4 and len(ids(second)) == 2
        assert sum(isinstance(r, Empty) for r in second) == 2
        assert len(set(ids(first) + ids(second))) == 6
        # The first four acknowledged (gone); the other two are leased: nothing to hand out.
        await link.request(Fetch(4, tuple(ids(first))))
        assert ids(await link.replies(4)) == []
        # An acknowledgement by ACK ends a lease as well; a lapsed lease offers it again.
        await link.request(Ack((ids(second)[0],)))
        clock[0] += LEASE_SECONDS + 1
        await link.request(Fetch(4))
        assert ids(await link.replies(4)) == [ids(second)[1]]
        nursery.cancel_scope.cancel()
    store.close()


async def test_a_link_polling_past_its_budget_is_answered_later_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """A link that asks for 800 frames at once, with a budget of 400 frames a second and a
    burst of 100: its answers come as the budget allows (1.75 s), every frame of them. (The
    real clock: the store's calls run in threads, which a virtual clock would jump over.)"""
    store = MailboxStore(tmp_path / "m.sqlite", MailboxLimits(), rng=random.Random(4).randbytes)
    budget = TokenBucket(
        Allowance(factor=1.0, floor=400.0, burst_seconds=0.25), now=trio.current_time()
    )
    outcomes: list[str] = []
    link = MemoryLink()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_client(
                link, store, on_packet=lambda _: None, count=outcomes.append,
                now=trio.current_time,
                fetch_wait=lambda frames: budget.reserve(trio.current_time(), 0.0, frames),
                may_register=lambda: True,
            )
        )
        await link.request(Register())
        (registered,) = await link.replies(1)
        for n in range(3):
            store.store(registered.mailbox_id, b"\x01" + bytes(16) + b"mail %d" % n, now=0.0)
        started = trio.current_time()

        async def flood() -> None:
            for _ in range(50):
                await link.request(Fetch(16))

        nursery.start_soon(flood)
        replies = []
        for _ in range(50):
            replies += await link.replies(16)
        took = trio.current_time() - started
        assert len(replies) == 800 and len(ids(replies)) == 3
        assert (800 - 100) / 400 - 0.1 <= took <= (800 - 100) / 400 + 2.0
        assert outcomes.count("fetch_paced") >= 40
        nursery.cancel_scope.cancel()
    store.close()


async def test_new_mailboxes_need_the_addresss_budget_and_reopening_does_not(
    tmp_path: Path,
) -> None:
    """Three keys from one address with a budget of two new mailboxes: the third is refused
    with REGISTRATION_LIMITED (and gets nothing else); the first reopens its mailbox freely."""
    store = MailboxStore(tmp_path / "m.sqlite", MailboxLimits(), rng=random.Random(5).randbytes)
    budgets = RegistrationBudgets(2)
    outcomes: list[str] = []

    async def session(key: bytes) -> list[object]:
        link = MemoryLink()
        link.peer_static_key = key
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_client(
                    link, store, on_packet=lambda _: None, count=outcomes.append,
                    now=lambda: 0.0, fetch_wait=lambda _: 0.0,
                    may_register=lambda: budgets.admit("203.0.113.9", 0.0),
                )
            )
            await link.request(Register())
            replies = await link.replies(1)
            await link.request(Fetch(1))
            replies += await link.replies(1)
            nursery.cancel_scope.cancel()
        return replies

    first = await session(bytes(32))
    assert isinstance(first[0], Registered)
    assert isinstance((await session(bytes([1]) * 32))[0], Registered)
    third = await session(bytes([2]) * 32)
    assert third == [Error(ErrorCode.REGISTRATION_LIMITED), Error(ErrorCode.NOT_REGISTERED)]
    again = await session(bytes(32))
    assert again[0] == first[0]  # the same mailbox, without spending budget
    assert outcomes.count("registration_limited") == 1 and outcomes.count("registered") == 3
    store.close()


def test_leases_are_bounded_and_lapse_in_order() -> None:
    leases = Leases(seconds=10.0, limit=3)
    leases.take([b"a", b"b"], now=0.0)
    leases.take([b"c", b"d"], now=5.0)  # over the limit: the oldest lapses early
    assert leases.held() == {b"b", b"c", b"d"}
    leases.release([b"c"], now=10.0)  # acknowledged; and b lapsed at 10 s
    assert leases.held() == {b"d"}
    leases.release([], now=15.0)
    assert leases.held() == frozenset()


@pytest.mark.parametrize("limit", [1, 5])
def test_fetch_leaves_out_what_it_is_told(tmp_path: Path, limit: int) -> None:
    store = MailboxStore(tmp_path / "m.sqlite", MailboxLimits(), rng=random.Random(4).randbytes)
    mailbox = store.register(OWNER, now=0.0)
    for n in range(4):
        store.store(mailbox, b"m%d" % n, now=0.0)
    every = [m.message_id for m in store.fetch(OWNER, limit=10)]
    left = store.fetch(OWNER, limit=limit, exclude=frozenset(every[:2]))
    assert [m.message_id for m in left] == every[2 : 2 + limit]
    store.close()


async def test_a_failing_store_ends_the_session_counted_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """The store refusing writes (SQLite's own "attempt to write a readonly database", as a
    failing disk would): the acknowledging FETCH ends the session, counted, without an
    exception; the messages it would have deleted are all still there for the next one."""
    store = MailboxStore(tmp_path / "m.sqlite", MailboxLimits(), rng=random.Random(5).randbytes)
    outcomes: list[str] = []

    async def session(link: MemoryLink) -> None:
        await serve_client(
            link, store, on_packet=lambda _: None, count=outcomes.append,
            now=trio.current_time, fetch_wait=lambda _: 0.0, may_register=lambda: True,
        )
        outcomes.append("ended")

    first = MemoryLink()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, first)
        await first.request(Register())
        (registered,) = await first.replies(1)
        for n in range(3):
            store.store(registered.mailbox_id, b"\x01" + bytes(16) + b"mail %d" % n, now=0.0)
        await first.request(Fetch(4))
        handed_out = ids(await first.replies(4))
        assert len(handed_out) == 3
        store._db.execute("PRAGMA query_only = ON")  # the test's stand-in for a failing disk
        await first.request(Fetch(4, tuple(handed_out)))
    assert outcomes[-2:] == ["store_failed", "ended"]
    store._db.execute("PRAGMA query_only = OFF")
    second = MemoryLink()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, second)
        await second.request(Fetch(4))
        assert sorted(ids(await second.replies(4))) == sorted(handed_out)
        nursery.cancel_scope.cancel()
    store.close()
