"""Every wait on a peer has a deadline and every read a size cap (findings 6-8), against
misbehaving peers and real daemons on loopback."""

from __future__ import annotations

import random
import resource
import subprocess
import time
from pathlib import Path

import httpx
import trio
import trio.testing
from daemon_process import authority_toml, peak_memory_kib, start_daemon, wait_healthy
from dir_helpers import (
    GEOMETRY,
    free_port,
    make_consensus,
    make_network,
    signed_document,
)
from dir_network import (
    clock_starting_now,
    plan_authorities,
    start_authority,
    upload_all,
)
from misbehaving import Misbehaving

from directory.authority import PHASE_MARGIN, timed_out_if_cut_short
from directory.canonical import pack
from directory.consensus import decode_signed_consensus
from directory.counters import Counters
from directory.endpoints import AuthorityEndpoint
from directory.fetcher import ConsensusFetcher
from directory.signatures import SigningKey
from directory.vote import MAX_VOTE_SIZE

EPOCH_MS = 3000


class InOrder(random.Random):
    """Randomness whose shuffles keep the order: the fetcher asks the authorities as listed."""

    def shuffle(self, x: list) -> None:  # type: ignore[override, type-arg]
        pass


async def _sleep_until(deadline_ms: int) -> None:
    await trio.sleep(max(0.0, deadline_ms / 1000 - time.time()))


async def test_a_slow_or_flooding_third_authority_does_not_stop_the_other_two(
    tmp_path: Path,
) -> None:
    """The third authority answers 200 and then a byte every 0.2 s (each read arrives well
    within httpx's per-read timeout), then, the next epoch, an endless body as fast as it
    can. The two honest daemons publish both epochs, with whole-request deadlines and
    capped reads."""
    rng = random.Random(71)
    clock = clock_starting_now(EPOCH_MS)
    plan = plan_authorities(rng, 3)
    endpoints = [endpoint for _, endpoint in plan]
    hostile = Misbehaving("slow")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(hostile.serve, int(endpoints[2].url.rsplit(":", 1)[1]))
            honest = [
                await start_authority(nursery, key, endpoint, endpoints, clock, tmp_path / f"a{i}")
                for i, (key, endpoint) in enumerate(plan[:2])
            ]
            try:
                epoch = clock.epoch_at(time.time()) + 1
                for mode in ("slow", "huge"):
                    hostile.mode = mode
                    await upload_all(
                        [d.to_bytes() for d in make_network(rng, epoch, 3, 1)], endpoints[:2]
                    )
                    await _sleep_until(clock.schedule(epoch).publish_at + 250)
                    for authority in honest:
                        document = authority.store.published(epoch)
                        assert document is not None, (mode, epoch, str(await authority.health()))
                        assert len(decode_signed_consensus(document).signatures) == 2
                    epoch += 1
                counters = (await honest[0].health())["counters"]
                assert counters["pull.relay.timed_out"] >= 1
                assert counters["pull.relay.too_large"] >= 1
                assert counters["push.vote.timed_out"] >= 1
            finally:
                for authority in honest:
                    await authority.stop()
                nursery.cancel_scope.cancel()


async def test_a_request_that_its_phase_cuts_short_is_still_counted_as_timed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request's own timeout ends PHASE_MARGIN before its phase does. A task that wakes
    later than that (a busy machine: here the clock jumps past both deadlines at once) meets
    the phase's deadline first; the peer is counted all the same (the flaky counter of the
    test above). A daemon stopping mid-request counts nothing."""
    counters = Counters()

    async def wake_late() -> None:
        await trio.sleep(0.5)
        autojump_clock.jump(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wake_late)
        with trio.move_on_after(1.0) as phase:
            with timed_out_if_cut_short(counters, "push.vote.timed_out"):
                with trio.move_on_after(1.0 - PHASE_MARGIN):  # the request's own timeout
                    await trio.sleep(10)
                counters.increment("the request's own timeout")
    assert phase.cancelled_caught
    assert counters.snapshot() == {"push.vote.timed_out": 1}

    async def stop_soon(scope: trio.CancelScope) -> None:
        await trio.sleep(0.1)
        scope.cancel()

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(1.0) as phase:
            nursery.start_soon(stop_soon, phase)
            with timed_out_if_cut_short(counters, "push.vote.timed_out"):
                await trio.sleep(10)
    assert phase.cancelled_caught
    assert counters.snapshot() == {"push.vote.timed_out": 1}


async def test_the_fetcher_bounds_each_request_in_time_and_size(tmp_path: Path) -> None:
    """A slow authority costs the fetcher one `request_timeout`, a flooding one at most the
    largest consensus allowed: it moves on to the good one."""
    rng = random.Random(72)
    clock = clock_starting_now(60_000)
    keys = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(3)]
    epoch = clock.epoch_at(time.time())
    consensus = make_consensus(rng, keys, epoch, clock)
    slow, huge = Misbehaving("slow"), Misbehaving("huge")
    ports = [free_port() for _ in range(3)]
    endpoints = [
        AuthorityEndpoint(k.public_key, f"http://127.0.0.1:{p}")
        for k, p in zip(keys, ports, strict=True)
    ]
    async with trio.open_nursery() as nursery:
        await nursery.start(slow.serve, ports[0])
        await nursery.start(huge.serve, ports[1])
        good = await start_authority(
            nursery, keys[2], endpoints[2], endpoints, clock, tmp_path / "good"
        )
        try:
            good.store.put_published(epoch, signed_document(consensus, keys[:2]))
            fetcher = ConsensusFetcher(endpoints, GEOMETRY, clock, rng=InOrder(), request_timeout=1)
            with trio.fail_after(10):  # one second for the slow one, then the others
                assert await fetcher.fetch(epoch) == consensus
            assert fetcher.counters.get("consensus.timed_out") == 1
            assert fetcher.counters.get("consensus.too_large") == 1
            # It stopped reading at the cap (16 MiB), not at the 512 MiB it was offered.
            assert 16 * 1024 * 1024 < huge.sent < 64 * 1024 * 1024
        finally:
            await good.stop()
            nursery.cancel_scope.cancel()


def _config(tmp_path: Path, key: SigningKey, port: int, extra: str = "") -> Path:
    from directory.keyfile import write_key_file

    write_key_file(tmp_path / "authority.key", key)
    config = tmp_path / "authority.toml"
    peer = f'\n[[authorities]]\npublic_key = "{"ab" * 32}"\nurl = "http://127.0.0.1:1"\n'
    config.write_text(authority_toml(key.public_key, port, peer + extra))
    return config


async def _post_head(port: int, path: str, length: int, first: bytes) -> bytes:
    """Send a request head and the first bytes of its body; return the answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: {length}\r\n\r\n".encode() + first
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = await stream.receive_some()
            if not chunk:
                break
            answer += chunk
        return answer


async def test_an_unpinned_vote_bomb_is_refused_from_its_first_bytes(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Finding 7: 16 MiB of empty msgpack arrays as a vote, bare or behind an envelope that
    names an unpinned signer. The daemon answers from the first bytes, without reading or
    unpacking the rest, and its peak memory grows by less than 16 MiB."""
    port = free_port()
    key = SigningKey.generate()
    config = _config(tmp_path, key, port)
    process = start_daemon(config, tmp_path / "log", processes)
    endpoint = AuthorityEndpoint(key.public_key, f"http://127.0.0.1:{port}")
    await wait_healthy(endpoint, process)
    before = peak_memory_kib(process)
    stranger = SigningKey.generate().public_key
    head = b"\x92\x97" + pack("trimix-vote-v2") + pack(5) + pack(stranger)
    bombs = {
        "malformed": b"\x90" * 65536,
        "unknown_authority": head + b"\x90" * (65536 - len(head)),
    }
    with trio.fail_after(10):
        for code, first in bombs.items():
            for _ in range(5):
                answer = await _post_head(port, "/v1/vote", MAX_VOTE_SIZE, first)
                assert answer.startswith(b"HTTP/1.1 40"), answer[:80]
                assert code.encode() in answer
    assert peak_memory_kib(process) - before < 16 * 1024
    async with httpx.AsyncClient(timeout=5) as client:
        counters = (await client.get(endpoint.route("/v1/health"))).json()["counters"]
    assert counters["vote.rejected.malformed"] == 5
    assert counters["vote.rejected.unknown_authority"] == 5


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


async def test_slow_connections_cannot_take_the_health_endpoint_down(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Finding 8: under a descriptor limit of 200, 500 connections from one source each
    sending a body at a byte per second. The daemon keeps at most its per-source share open,
    resets the others at once, closes the slow ones at the request deadline, and answers
    /v1/health from another source within a second all along."""
    port = free_port()
    key = SigningKey.generate()
    config = _config(tmp_path, key, port, "\n[limits]\nrequest_seconds = 2\n")
    process = start_daemon(config, tmp_path / "log", processes, preexec_fn=_low_descriptor_limit)
    endpoint = AuthorityEndpoint(key.public_key, f"http://127.0.0.1:{port}")
    await wait_healthy(endpoint, process)
    closed_at: list[float] = []
    start = time.monotonic()

    async def slow_client() -> None:
        try:
            with trio.socket.socket() as sock:
                await sock.bind(("127.0.0.2", 0))
                await sock.connect(("127.0.0.1", port))
                stream = trio.SocketStream(sock)
                await stream.send_all(
                    b"POST /v1/descriptor HTTP/1.1\r\nhost: a\r\ncontent-length: 4000\r\n\r\n"
                )
                with trio.move_on_after(15):
                    while True:
                        await stream.send_all(b"\x92")
                        with trio.move_on_after(1):
                            if not await stream.receive_some():
                                break
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        closed_at.append(time.monotonic() - start)

    async with httpx.AsyncClient(timeout=5) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(500):
                nursery.start_soon(slow_client)
            await trio.sleep(0.5)
            for _ in range(3):
                with trio.fail_after(1):
                    response = await client.get(endpoint.route("/v1/health"))
                assert response.status_code == 200
                await trio.sleep(0.5)
        health = (await client.get(endpoint.route("/v1/health"))).json()
    assert len(closed_at) == 500
    # All were closed by the daemon: reset at once, or at the 2 s request deadline.
    assert max(closed_at) < 8
    assert health["max_connections"] <= 200 - 64
    counters = health["counters"]
    assert counters["http.refused.connections_per_source"] >= 500 - 32 - 1
    assert counters.get("http.rejected.request_timeout", 0) >= 1
    assert process.poll() is None


async def test_upload_descriptor_to_every_authority_at_once(tmp_path: Path) -> None:
    """What a node calls each epoch: concurrent uploads with a whole-request deadline; the
    answer is how many authorities hold the descriptor. A closed authority on loopback (a
    testnet) admits the listed node, a slow authority costs one timeout, a dead one nothing."""
    from directory.counters import Counters
    from directory.upload import upload_descriptor

    rng = random.Random(73)
    clock = clock_starting_now(60_000)
    plan = plan_authorities(rng, 3)
    endpoints = [endpoint for _, endpoint in plan]
    node, stranger = make_network(rng, clock.epoch_at(time.time()) + 1, 2, 0)
    slow = Misbehaving("slow")
    counters = Counters()
    async with trio.open_nursery() as nursery:
        await nursery.start(slow.serve, int(endpoints[1].url.rsplit(":", 1)[1]))
        authority = await start_authority(
            nursery,
            *plan[0],
            endpoints,
            clock,
            tmp_path,
            allowed_nodes={node.identity_key: node.role},
        )
        dead = AuthorityEndpoint(plan[2][0].public_key, f"http://127.0.0.1:{free_port()}")
        try:
            with trio.fail_after(5):
                held = await upload_descriptor(
                    [endpoints[0], endpoints[1], dead], node, timeout=1, counters=counters
                )
                assert held == 1
                assert await upload_descriptor([endpoints[0]], node.to_bytes()) == 1
                assert await upload_descriptor([endpoints[0]], stranger, counters=counters) == 0
            assert counters.snapshot() == {
                "upload.accepted": 1,
                "upload.refused_node_not_allowed": 1,
                "upload.timed_out": 1,
                "upload.unreachable": 1,
            }
        finally:
            await authority.stop()
            nursery.cancel_scope.cancel()
