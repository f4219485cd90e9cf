"""`LinkServer` and `open_link` over real sockets on 127.0.0.1: frames both ways, wrong keys,
misbehaving peers next to a good one, connection caps and authorization."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import trio

from mixnode.link import Frame, FrameKind, LinkCore, encode_frame
from mixnode.link_driver import (
    LinkClosed,
    LinkConnection,
    LinkServer,
    initiate_link,
    open_link,
)
from mixnode.rate_limit import AddressBudgets
from tests.mixnode.link_helpers import (
    ALICE,
    BOB,
    BODY_SIZE,
    HOST,
    LOOPBACK_TIMINGS,
    MALLORY,
    TEST_DEADLINE,
    Tally,
    echo,
    noise_peer,
    raw_plaintext,
    wait_until,
)

TIMINGS = LOOPBACK_TIMINGS


def _server(
    tally: Tally,
    authorize: Callable[[bytes], bool] = lambda key: True,
    handshake_timeout: float = 1.0,
    **caps: Any,
) -> LinkServer:
    return LinkServer(
        BOB.private,
        BODY_SIZE,
        echo,
        authorize=authorize,
        count=tally,
        handshake_timeout=handshake_timeout,
        timings=TIMINGS,
        **caps,
    )


async def _open(
    port: int, tally: Tally | None = None, remote: bytes = BOB.public
) -> LinkConnection:
    return await open_link(
        HOST,
        port,
        ALICE.private,
        remote,
        BODY_SIZE,
        handshake_timeout=5.0,
        timings=TIMINGS,
        count=tally or Tally(),
    )


async def _round_trip(connection: LinkConnection, body: bytes) -> None:
    frame = Frame(FrameKind.PACKET, body)
    await connection.send(frame)
    assert await connection.receive() == frame


async def _closed_by_server(stream: trio.SocketStream) -> bool:
    """True once the server closed the connection (EOF or reset)."""
    try:
        while await stream.receive_some(4096):
            pass
    except trio.BrokenResourceError:
        pass
    return True


async def test_frames_both_ways_over_loopback() -> None:
    tally = Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_server(tally).serve, HOST, 0)
            connection = await _open(port, tally)
            assert connection.peer_static_key == BOB.public
            frames = [Frame(FrameKind.PACKET, os.urandom(BODY_SIZE)) for _ in range(200)]
            await connection.send_many(frames)
            assert [await connection.receive() for _ in frames] == frames
            await connection.aclose()
            nursery.cancel_scope.cancel()
    assert tally.counts == {"handshake_ok": 2}


async def test_wrong_responder_key_and_closed_port() -> None:
    tally, client = Tally(), Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_server(tally).serve, HOST, 0)
            with pytest.raises(LinkClosed) as closed:
                await _open(port, client, remote=MALLORY.public)
            assert closed.value.reason == "handshake_failed"
            await wait_until(lambda: tally["handshake_failed"] == 1)
            nursery.cancel_scope.cancel()
        with pytest.raises(LinkClosed) as closed:
            await _open(port, client)  # the server is gone: nothing listens on the port
        assert closed.value.reason == "connect_failed"
    assert client.counts == {"handshake_failed": 1, "connect_failed": 1}
    assert tally.counts == {"handshake_failed": 1}


async def test_misbehaving_peers_are_dropped_and_counted_while_a_good_peer_goes_on() -> None:
    tally = Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_server(tally).serve, HOST, 0)
            good = await _open(port)
            await _round_trip(good, b"before")

            garbage = await trio.open_tcp_stream(HOST, port)
            await garbage.send_all(os.urandom(500))

            stalled = await trio.open_tcp_stream(HOST, port)  # connects, never speaks

            half_open = await trio.open_tcp_stream(HOST, port)  # stops after message 1
            await half_open.send_all(
                LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE).start()
            )

            # A peer that completes the handshake, then sends a frame of an unknown kind.
            wrong_frame = await trio.open_tcp_stream(HOST, port)
            reference = noise_peer(initiator=True, local=MALLORY, remote_public=BOB.public)
            await wrong_frame.send_all(bytes(reference.write_message()))
            reference.read_message(await wrong_frame.receive_some(48))
            await wrong_frame.send_all(
                bytes(reference.write_message())
                + reference.encrypt(encode_frame(Frame(FrameKind.PACKET, b"fine"), BODY_SIZE))
                + reference.encrypt(raw_plaintext(9, 0, b"", b""))
            )

            # The good peer keeps exchanging frames while the others are dealt with.
            for index in range(20):
                await _round_trip(good, b"during %d" % index)
                await trio.sleep(0.05)
            for bad in (garbage, stalled, half_open, wrong_frame):
                assert await _closed_by_server(bad)
            await _round_trip(good, b"after")
            assert tally.counts == {
                "handshake_ok": 2,
                "handshake_failed": 1,
                "handshake_timeout": 2,
                "frame_error": 1,
            }
            await good.aclose()
            nursery.cancel_scope.cancel()


async def test_unauthorized_peer_is_refused_after_the_handshake() -> None:
    tally = Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                _server(tally, authorize=lambda key: key == MALLORY.public).serve, HOST, 0
            )
            connection = await _open(port)
            with pytest.raises(LinkClosed) as closed:
                await connection.receive()
            assert closed.value.reason in {"eof", "broken"}
            nursery.cancel_scope.cancel()
    assert tally.counts == {"handshake_ok": 1, "refused_unauthorized": 1}


async def test_connection_caps_per_address_and_in_total() -> None:
    tally = Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            server = _server(
                tally,
                handshake_timeout=TEST_DEADLINE,
                max_connections=3,
                max_connections_per_address=2,
            )
            port = await nursery.start(server.serve, HOST, 0)
            # Two stalled handshakes from 127.0.0.1 fill that address's share.
            stalled = [await trio.open_tcp_stream(HOST, port) for _ in range(2)]
            await wait_until(lambda: server.active_connections == 2)
            third = await trio.open_tcp_stream(HOST, port)
            assert await _closed_by_server(third)
            assert tally["refused_capacity"] == 1
            # Another source address still gets in, and fills the total.
            other = await trio.open_tcp_stream(HOST, port, local_address="127.0.0.2")
            await wait_until(lambda: server.active_connections == 3)
            fourth = await trio.open_tcp_stream(HOST, port, local_address="127.0.0.3")
            assert await _closed_by_server(fourth)
            assert tally["refused_capacity"] == 2
            # Freeing a slot of 127.0.0.1 lets a good peer from there in.
            await other.aclose()
            await stalled[0].aclose()
            await wait_until(lambda: server.active_connections == 1)
            good = await _open(port)
            await _round_trip(good, b"in")
            await good.aclose()
            await stalled[1].aclose()
            await wait_until(lambda: server.active_connections == 0)
            nursery.cancel_scope.cancel()
    assert tally.counts == {"refused_capacity": 2, "handshake_ok": 1, "handshake_failed": 3}


async def test_an_address_that_opens_links_in_a_loop_is_cut_off_before_its_handshakes() -> None:
    """A peer that completes handshakes as fast as it can (each costs the responder's CPU)
    gets its burst, then is closed before the handshake, counted; a peer at another address
    is served meanwhile, and the flooding address gets a link again once its budget refills."""
    tally = Tally()
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            server = _server(tally, new_connections_per_address=AddressBudgets(2.0, 5))
            port = await nursery.start(server.serve, HOST, 0)
            opened = refused = 0
            started = trio.current_time()
            while opened + refused < 40:
                try:
                    connection = await _open(port)
                except LinkClosed:
                    refused += 1
                    continue
                opened += 1
                await connection.aclose()
            elapsed = trio.current_time() - started
            assert 5 <= opened <= 5 + 2.0 * elapsed + 1
            assert refused == 40 - opened
            await wait_until(lambda: tally["refused_rate"] == refused)
            assert tally["handshake_ok"] == opened and tally["handshake_failed"] == 0

            stream = await trio.open_tcp_stream(HOST, port, local_address="127.0.0.2")
            other = await initiate_link(stream, ALICE.private, BOB.public, BODY_SIZE, timings=TIMINGS)
            await _round_trip(other, b"another address")
            await other.aclose()

            await trio.sleep(0.6)  # one new link a half second
            again = await _open(port)
            await _round_trip(again, b"later")
            await again.aclose()
            nursery.cancel_scope.cancel()


async def test_the_handler_learns_the_peers_address_and_no_repr_shows_it() -> None:
    """What per-address budgets key on (a gateway's new mailboxes): the address the server
    accepted the connection from, on the connection, and nowhere it could be printed."""
    seen: list[LinkConnection] = []

    async def handler(connection: LinkConnection) -> None:
        seen.append(connection)
        await echo(connection)

    server = LinkServer(BOB.private, BODY_SIZE, handler, authorize=lambda key: True,
                        count=Tally(), handshake_timeout=1.0, timings=TIMINGS)
    with trio.fail_after(TEST_DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve, HOST, 0)
            connection = await _open(port)
            await _round_trip(connection, os.urandom(BODY_SIZE))
            assert connection.source == ""  # the dialling side has none
            await connection.aclose()
            nursery.cancel_scope.cancel()
    assert [c.source for c in seen] == [HOST]
    assert HOST not in repr(seen[0]) and HOST not in repr(server)
