"""`LinkConnection`, `initiate_link` and `LinkServer.handle_stream` over in-memory streams with
Trio's virtual clock: keep-alives, idle and send timeouts, one handshake deadline, bad frames."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mixnode.link import Frame, FrameKind, LinkCore, wire_frame_size
from mixnode.link_driver import (
    LinkClosed,
    LinkConnection,
    LinkServer,
    LinkTimings,
    initiate_link,
)
from tests.mixnode.link_helpers import ALICE, BOB, BODY_SIZE, Tally, core_pair, drip, echo

TIMINGS = LinkTimings(idle_timeout=30.0, keepalive_interval=10.0, send_timeout=5.0)
PACKET = Frame(FrameKind.PACKET, b"packet")


def _connected_pair(
    tally: Tally, timings: LinkTimings = TIMINGS
) -> tuple[LinkConnection, LinkConnection]:
    initiator, responder = core_pair()
    left, right = trio.testing.memory_stream_pair()
    return (
        LinkConnection(left, initiator, timings=timings, count=tally),
        LinkConnection(right, responder, timings=timings, count=tally),
    )


async def test_handshake_then_frames_both_ways(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    keys: list[bytes] = []

    async def handler(connection: LinkConnection) -> None:
        keys.append(connection.peer_static_key)
        await echo(connection)

    server = LinkServer(BOB.private, BODY_SIZE, handler, authorize=lambda key: True, count=tally)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_stream, server_stream, "peer")
        connection = await initiate_link(
            client_stream, ALICE.private, BOB.public, BODY_SIZE, count=tally
        )
        assert connection.peer_static_key == BOB.public
        sent = [Frame(FrameKind.PACKET, bytes([i]) * i) for i in range(10)] + [
            Frame(FrameKind.CONTROL, b"c")
        ]
        await connection.send_many(sent)
        assert [await connection.receive() for _ in sent] == sent
        await connection.aclose()
    assert keys == [ALICE.public]
    assert tally.counts == {"handshake_ok": 2}
    assert server.active_connections == 0


async def test_keepalives_hold_an_idle_link_open_and_a_silent_peer_times_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    tally = Tally()
    left, right = _connected_pair(tally)

    async def read_for(connection: LinkConnection, seconds: float) -> None:
        with trio.move_on_after(seconds):
            frame = await connection.receive()
            pytest.fail(f"unexpected {frame!r}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_for, left, 10 * TIMINGS.idle_timeout)
        nursery.start_soon(read_for, right, 10 * TIMINGS.idle_timeout)
    assert not left.closed and not right.closed and tally.counts == {}
    # Now only `left` reads: `right` sends no keep-alives, so `left` gives up.
    start = trio.current_time()
    with pytest.raises(LinkClosed) as closed:
        await left.receive()
    assert closed.value.reason == "idle_timeout"
    assert (
        TIMINGS.idle_timeout - TIMINGS.keepalive_interval
        <= trio.current_time() - start
        <= TIMINGS.idle_timeout
    )
    assert tally.counts == {"idle_timeout": 1}
    assert left.closed


async def test_a_peer_dripping_bytes_still_times_out(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    initiator, responder = core_pair()
    ours, theirs = trio.testing.memory_stream_pair()
    connection = LinkConnection(ours, responder, timings=TIMINGS, count=tally)
    wire = initiator.send(PACKET)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drip, theirs, wire)
        with pytest.raises(LinkClosed) as closed:
            await connection.receive()
    assert closed.value.reason == "idle_timeout"
    assert len(wire) > TIMINGS.idle_timeout  # the frame was never complete
    assert tally.counts == {"idle_timeout": 1}


async def test_a_write_the_peer_never_takes_times_out(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    initiator, _ = core_pair()
    ours, _theirs = trio.testing.lockstep_stream_pair()
    connection = LinkConnection(ours, initiator, timings=TIMINGS, count=tally)
    start = trio.current_time()
    with pytest.raises(LinkClosed) as closed:
        await connection.send(PACKET)
    assert closed.value.reason == "send_timeout"
    assert trio.current_time() - start == pytest.approx(TIMINGS.send_timeout)
    assert tally.counts == {"send_timeout": 1}
    with pytest.raises(LinkClosed):
        await connection.send(PACKET)


async def test_a_bad_frame_closes_the_link_and_is_counted(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    _, responder = core_pair()
    ours, theirs = trio.testing.memory_stream_pair()
    connection = LinkConnection(ours, responder, timings=TIMINGS, count=tally)
    await theirs.send_all(bytes(wire_frame_size(BODY_SIZE)))
    with pytest.raises(LinkClosed) as closed:
        await connection.receive()
    assert closed.value.reason == "frame_error"
    assert tally.counts == {"frame_error": 1}
    assert await theirs.receive_some() == b""  # the peer sees the connection closed


async def test_end_of_stream_and_local_close(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    left, right = _connected_pair(tally)
    await left.send(PACKET)
    await left.aclose()
    assert await right.receive() == PACKET  # what was sent before the close still arrives
    with pytest.raises(LinkClosed) as closed:
        await right.receive()
    assert closed.value.reason == "eof"
    with pytest.raises(LinkClosed) as closed:
        await left.receive()
    assert closed.value.reason == "closed"

    left, right = _connected_pair(tally)
    async with trio.open_nursery() as nursery:

        async def close_soon() -> None:
            await trio.sleep(1)
            await right.aclose()

        nursery.start_soon(close_soon)
        with pytest.raises(LinkClosed) as closed:
            await right.receive()
        assert closed.value.reason == "closed"
    assert tally.counts == {}


async def test_the_handshake_has_one_deadline_for_the_whole_exchange(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A peer sending message 1 one byte per second never lets a single read wait 5 s, yet
    the server gives up 5 s after the connection began."""
    tally = Tally()
    server = LinkServer(
        BOB.private, BODY_SIZE, echo, authorize=lambda key: True, count=tally, handshake_timeout=5.0
    )
    ours, theirs = trio.testing.memory_stream_pair()
    message1 = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE).start()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_stream, theirs, "peer")
        nursery.start_soon(drip, ours, message1)
        assert await ours.receive_some() == b""
        assert trio.current_time() - start == pytest.approx(5.0)
    assert tally.counts == {"handshake_timeout": 1}


async def test_initiator_handshake_timeout(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    ours, _silent = trio.testing.memory_stream_pair()
    with pytest.raises(LinkClosed) as closed:
        await initiate_link(
            ours, ALICE.private, BOB.public, BODY_SIZE, handshake_timeout=3.0, count=tally
        )
    assert closed.value.reason == "handshake_timeout"
    assert tally.counts == {"handshake_timeout": 1}


async def test_frames_sent_with_message_3_reach_the_handler(autojump_clock: trio.abc.Clock) -> None:
    tally = Tally()
    got: list[Frame] = []

    async def handler(connection: LinkConnection) -> None:
        got.append(await connection.receive())
        got.append(await connection.receive())

    server = LinkServer(BOB.private, BODY_SIZE, handler, authorize=lambda key: True, count=tally)
    core = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    ours, theirs = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_stream, theirs, "peer")
        await ours.send_all(core.start())
        while not core.established:
            core.receive_data(await ours.receive_some())
        await ours.send_all(
            core.data_to_send() + core.send_many([PACKET, Frame(FrameKind.CONTROL, b"2")])
        )
    assert got == [PACKET, Frame(FrameKind.CONTROL, b"2")]


async def test_a_failing_handler_is_counted_and_the_server_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    tally = Tally()

    async def handler(connection: LinkConnection) -> None:
        frame = await connection.receive()
        if frame.body == b"crash":
            raise KeyError("a bug")
        await connection.send(frame)

    server = LinkServer(BOB.private, BODY_SIZE, handler, authorize=lambda key: True, count=tally)
    async with trio.open_nursery() as nursery:
        for body in (b"crash", b"fine"):
            ours, theirs = trio.testing.memory_stream_pair()
            nursery.start_soon(server.handle_stream, theirs, "peer")
            connection = await initiate_link(
                ours, ALICE.private, BOB.public, BODY_SIZE, count=tally
            )
            await connection.send(Frame(FrameKind.PACKET, body))
            if body == b"crash":
                with pytest.raises(LinkClosed):
                    await connection.receive()
            else:
                assert (await connection.receive()).body == b"fine"
                await connection.aclose()
    assert tally["handler_error"] == 1


async def test_link_timings_are_checked() -> None:
    with pytest.raises(ValueError):
        LinkTimings(idle_timeout=10, keepalive_interval=10)
    with pytest.raises(ValueError):
        LinkTimings(send_timeout=0)
