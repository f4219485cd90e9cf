"""`PeerLinks`, a node's outgoing links, against real `LinkServer`s on 127.0.0.1: lazy
connections, bounded queues, reconnect after a server restart, idle peers closed, shutdown."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from mixnode.link import Frame, FrameKind
from mixnode.link_driver import (
    LinkConnection,
    LinkServer,
    PeerLinks,
    backoff_delay,
)
from tests.mixnode.link_helpers import (
    ALICE,
    BOB,
    BODY_SIZE,
    HOST,
    LOOPBACK_TIMINGS,
    MALLORY,
    TEST_DEADLINE,
    Tally,
    keypair,
    wait_until,
)

TIMINGS = LOOPBACK_TIMINGS


def _packet(index: int) -> Frame:
    return Frame(FrameKind.PACKET, index.to_bytes(4, "big"))


class Sink:
    """A node's receiving side: a LinkServer whose handler records every frame's body."""

    def __init__(self, tally: Tally, reply: bool = False) -> None:
        self.bodies: list[int] = []
        self.reply = reply
        self.server = LinkServer(
            BOB.private,
            BODY_SIZE,
            self.handle,
            authorize=lambda key: key == ALICE.public,
            count=tally,
            timings=TIMINGS,
        )

    async def handle(self, connection: LinkConnection) -> None:
        async for frame in connection:
            self.bodies.append(int.from_bytes(frame.body, "big"))
            if self.reply:
                await connection.send(Frame(FrameKind.CONTROL, b"ack" + frame.body))


def _links(addresses: dict[bytes, tuple[str, int]], tally: Tally, **options: object) -> PeerLinks:
    settings: dict[str, object] = {
        "rng": random.Random(1),
        "count": tally,
        "timings": TIMINGS,
        "handshake_timeout": 5.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    settings.update(options)
    return PeerLinks(ALICE.private, BODY_SIZE, addresses.get, **settings)  # type: ignore[arg-type]


@asynccontextmanager
async def _links_to(sink: Sink, tally: Tally, **options: object) -> AsyncIterator[PeerLinks]:
    """A running sink and running PeerLinks that know its address as BOB's; all stopped after."""
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sink.server.serve, HOST, 0)
            links = _links({BOB.public: (HOST, port)}, tally, **options)
            await nursery.start(links.run)
            yield links
            await links.aclose()
            nursery.cancel_scope.cancel()


async def test_frames_flow_in_order_over_one_lazy_connection() -> None:
    tally, sink_tally = Tally(), Tally()
    sink = Sink(sink_tally)
    async with _links_to(sink, tally, max_batch=16) as links:
        await trio.sleep(0.05)
        assert sink.server.active_connections == 0 and links.peer_count == 0  # nothing sent yet
        for index in range(300):
            assert links.try_send(BOB.public, _packet(index))
        await wait_until(lambda: len(sink.bodies) == 300)
        assert sink.bodies == list(range(300))
        assert links.open_links == 1 and sink.server.active_connections == 1
    assert sink_tally.counts == {"handshake_ok": 1}
    assert tally.counts == {"handshake_ok": 1}


async def test_unknown_peer_full_queue_and_full_table_are_refused_and_counted() -> None:
    tally = Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            # Nothing listens at this address: frames stay queued while connects fail.
            listener = trio.socket.socket()
            await listener.bind((HOST, 0))
            dead = listener.getsockname()
            listener.close()
            links = _links(
                {BOB.public: dead, MALLORY.public: dead}, tally, queue_size=3, max_peers=1
            )
            await nursery.start(links.run)
            assert not links.try_send(keypair(9).public, _packet(0))
            assert tally.counts == {"peer_unknown": 1}
            assert [links.try_send(BOB.public, _packet(i)) for i in range(5)] == [True] * 3 + [
                False
            ] * 2
            assert tally["send_queue_full"] == 2
            assert not links.try_send(MALLORY.public, _packet(0))
            assert tally["peer_table_full"] == 1
            assert links.queued_frames == 3
            await wait_until(
                lambda: tally["connect_failed"] >= 2
            )  # it keeps retrying, with backoff
            await links.aclose()
            assert not links.try_send(BOB.public, _packet(9))
            nursery.cancel_scope.cancel()
    assert tally["shutting_down"] == 1
    assert tally["frames_lost"] == 3
    with pytest.raises(RuntimeError):
        _links({}, tally).try_send(BOB.public, _packet(0))  # run() is not running


async def test_reconnects_after_the_server_restarts() -> None:
    tally, sink_tally = Tally(), Tally()
    sink = Sink(sink_tally)
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            server_scope = trio.CancelScope()

            async def serve_until_cancelled(
                port: int, *, task_status: trio.TaskStatus[int]
            ) -> None:
                with server_scope:
                    await sink.server.serve(HOST, port, task_status=task_status)

            port = await nursery.start(serve_until_cancelled, 0)
            links = _links({BOB.public: (HOST, port)}, tally)
            await nursery.start(links.run)
            links.try_send(BOB.public, _packet(1))
            await wait_until(lambda: sink.bodies == [1])

            server_scope.cancel()  # the server goes away, closing its connections
            await wait_until(lambda: links.open_links == 0)
            assert links.peer_count == 1
            for index in (2, 3, 4):
                assert links.try_send(BOB.public, _packet(index))
            await wait_until(lambda: tally["connect_failed"] >= 2)

            server_scope = trio.CancelScope()
            assert await nursery.start(serve_until_cancelled, port) == port
            await wait_until(lambda: len(sink.bodies) == 4)
            assert sink.bodies == [1, 2, 3, 4]
            assert tally["handshake_ok"] == 2 and tally["frames_lost"] == 0
            await links.aclose()
            nursery.cancel_scope.cancel()


async def test_an_unused_peer_is_closed_and_forgotten() -> None:
    tally, sink_tally = Tally(), Tally()
    sink = Sink(sink_tally)
    async with _links_to(sink, tally, unused_timeout=0.3) as links:
        links.try_send(BOB.public, _packet(1))
        await wait_until(lambda: sink.bodies == [1])
        await wait_until(lambda: links.peer_count == 0 and sink.server.active_connections == 0)
        links.try_send(BOB.public, _packet(2))  # a new frame makes a new link
        await wait_until(lambda: sink.bodies == [1, 2])
    assert tally.counts == {"handshake_ok": 2}


async def test_shutdown_flushes_queued_frames_within_the_grace_period() -> None:
    tally, sink_tally = Tally(), Tally()
    sink = Sink(sink_tally)
    async with _links_to(sink, tally) as links:
        for index in range(500):
            assert links.try_send(BOB.public, _packet(index))
        await links.aclose(grace=TEST_DEADLINE)
        await wait_until(lambda: links.peer_count == 0)
        await wait_until(lambda: len(sink.bodies) == 500)
    assert sink.bodies == list(range(500))
    assert tally["frames_lost"] == 0


async def test_frames_sent_back_reach_on_frame_even_after_it_fails() -> None:
    tally, sink_tally = Tally(), Tally()
    sink = Sink(sink_tally, reply=True)
    heard: list[tuple[bytes, Frame]] = []

    def on_frame(key: bytes, frame: Frame) -> None:
        if frame.body.endswith(_packet(13).body):
            raise KeyError("a bug in the node")
        heard.append((key, frame))

    async with _links_to(sink, tally, on_frame=on_frame) as links:
        links.try_send(BOB.public, _packet(13))
        links.try_send(BOB.public, _packet(7))
        await wait_until(lambda: len(heard) == 1)
        assert heard == [(BOB.public, Frame(FrameKind.CONTROL, b"ack" + _packet(7).body))]
        assert tally["handler_error"] == 1 and links.open_links == 1


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    initial=st.floats(min_value=0.01, max_value=5.0),
    maximum=st.floats(min_value=5.0, max_value=600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_is_jittered_exponential_and_capped(
    attempt: int, initial: float, maximum: float, seed: int
) -> None:
    delay = backoff_delay(attempt, initial=initial, maximum=maximum, rng=random.Random(seed))
    base = min(maximum, initial * 2 ** min(attempt - 1, 62))
    assert base / 2 <= delay <= base
    assert backoff_delay(0, initial=initial, maximum=maximum, rng=random.Random(seed)) == 0.0


def test_backoff_delays_differ_between_peers() -> None:
    rng = random.Random(3)
    delays = {backoff_delay(4, initial=1.0, maximum=60.0, rng=rng) for _ in range(20)}
    assert len(delays) == 20 and all(4.0 <= delay <= 8.0 for delay in delays)
