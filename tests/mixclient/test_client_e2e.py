"""The client end to end over a real testnet: 3 authority and 8 node processes on 127.0.0.1.

Clients run in this process (and one in a child process, to be killed); every packet crosses
real Noise links and five real hops. The network's client rates are raised (λ_P = 50/s) so
that hundreds of messages fit in seconds. Tests run in file order: the last ones kill nodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from scipy import stats as scipy_stats

from mixclient import Client, ClientConfig, NoReplySurbsError, ReceivedMessage
from mixclient.address import ClientAddress
from mixnode.gateway_protocol import (
    Delivery,
    Fetch,
    Message,
    MessageKind,
    Registered,
    decode_request,
    encode_reply,
)
from mixnode.key_ring import read_secret_file
from mixnode.link import Frame, FrameKind
from mixnode.link_driver import LinkConnection, LinkServer
from mixnode.node_config import load_node_config
from tests.mixclient.client_process import payload
from trimix.testnet import PlannedNode, TestnetPlan, TestnetProcesses, plan_testnet

from .testnet_fixture import restart_node, running_testnet

RATES = (50.0, 2.0, 2.0)
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestnetPlan, TestnetProcesses]]:
    plan = plan_testnet(
        tmp_path_factory.mktemp("client-testnet"), epoch_seconds=10.0, client_rates=RATES
    )
    with running_testnet(plan) as processes:
        yield plan, processes


@asynccontextmanager
async def two_clients(
    plan: TestnetPlan, tag: str, *, seeds: tuple[int | None, int | None] = (None, None),
    on_emit: list[tuple[float, bool, float]] | None = None,
) -> AsyncIterator[tuple[Client, Client]]:
    """alice at gateway-1 and bob at gateway-2, fresh state directories."""
    first, second = plan.gateways
    configs = [
        ClientConfig.from_toml(plan.client_config(f"{tag}-alice", gateway=first)),
        ClientConfig.from_toml(plan.client_config(f"{tag}-bob", gateway=second)),
    ]
    rngs = [random.Random(s) if s is not None else None for s in seeds]
    record = (
        (lambda e: on_emit.append((e.at, e.real, e.scheduled))) if on_emit is not None else None
    )
    async with Client(configs[0], rng=rngs[0], on_emit=record) as alice:
        async with Client(configs[1], rng=rngs[1]) as bob:
            yield alice, bob


async def collect(client: Client, count: int, into: list[ReceivedMessage]) -> None:
    async for message in client.messages():
        into.append(message)
        if len(into) >= count:
            return


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_cover_traffic_is_the_same_process_idle_and_sending(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, processes = testnet
    # The whole network shares this machine's two cores with the client. While alice sends,
    # her ACKs and bob's stored fragments keep the cores busy, and every process waits for
    # CPU, alice included: her link would show the machine's load, not her behaviour. On a
    # user's own machine the network's load is elsewhere; the daemons get a lower CPU
    # priority here (for the rest of this module too) to measure the client alone.
    for process in processes.running.values():
        os.setpriority(os.PRIO_PROCESS, process.pid, 10)
    emitted: list[tuple[float, bool, float]] = []
    window = 8.0
    async with two_clients(plan, "cover", seeds=(7, None), on_emit=emitted) as (alice, bob):
        await trio.sleep(1.0)  # past the first poll and handshake
        start = trio.current_time()
        await trio.sleep(window)
        middle = trio.current_time()
        received: list[ReceivedMessage] = []
        async def keep_sending(seed: int) -> None:
            while True:
                await alice.send(bob.address, payload(20_000, seed))

        with trio.move_on_after(window):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, bob, 10**6, received)
                for seed in range(6):  # keep the payload stream busy with real packets
                    nursery.start_soon(keep_sending, seed)
        end = trio.current_time()
    idle = [at for at, _, _ in emitted if start <= at < middle]
    busy = [at for at, _, _ in emitted if middle <= at < end]
    real_busy = sum(1 for at, real, _ in emitted if middle <= at < end and real)
    total_rate = sum(RATES)
    for times, span in ((idle, middle - start), (busy, end - middle)):
        expected = total_rate * span
        # A Poisson count: within 4.5 standard deviations of λ·t.
        assert abs(len(times) - expected) < 4.5 * expected**0.5, (len(times), expected)
    assert real_busy > 0.5 * RATES[0] * (end - middle), "the busy phase sent few real packets"
    assert not any(real for at, real, _ in emitted if start <= at < middle)
    gaps_idle = [b - a for a, b in itertools.pairwise(idle)]
    gaps_busy = [b - a for a, b in itertools.pairwise(busy)]
    result = scipy_stats.ks_2samp(gaps_idle, gaps_busy)
    assert result.pvalue > 0.001, f"inter-packet times differ: {result}"
    # And the slots are a Poisson process with the total rate, busy as idle. (The slot times
    # are the schedule's: the link times above add the time to send each packet, built
    # ahead of its slot.)
    for low, high in ((start, middle), (middle, end)):
        slots = sorted(due for at, _, due in emitted if low <= at < high)
        fit = scipy_stats.kstest(
            [b - a for a, b in itertools.pairwise(slots)], "expon", args=(0, 1 / total_rate)
        )
        assert fit.pvalue > 0.001, f"slot gaps are not Exp(λ): {fit}"


async def test_two_hundred_messages_and_one_mebibyte_each_delivered_once(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    rng = random.Random(200)
    # Sizes from 1 byte to 256 KiB with both ends included: log-uniform, most of them below
    # 16 KiB as chat messages are, ten from 16 to 256 KiB (a photo).
    sizes = [1, 256 * 1024] + [int(2 ** rng.uniform(14, 18)) for _ in range(8)]
    sizes += [int(2 ** rng.uniform(0, 14)) for _ in range(190)]
    rng.shuffle(sizes)
    to_bob = [payload(size, seed) for seed, size in enumerate(sizes[:100])]
    to_alice = [payload(size, 1000 + seed) for seed, size in enumerate(sizes[100:])]
    big = payload(1 << 20, 5)
    async with two_clients(plan, "bulk") as (alice, bob):
        got_bob: list[ReceivedMessage] = []
        got_alice: list[ReceivedMessage] = []
        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, bob, len(to_bob) + 1, got_bob)
                nursery.start_soon(collect, alice, len(to_alice), got_alice)
                async with trio.open_nursery() as senders:
                    for data in to_bob:
                        senders.start_soon(alice.send, bob.address, data)
                    for data in to_alice:
                        senders.start_soon(bob.send, alice.address, data)
                    senders.start_soon(alice.send, bob.address, big)
    assert Counter(digest(m.data) for m in got_bob) == Counter(map(digest, [*to_bob, big]))
    assert Counter(digest(m.data) for m in got_alice) == Counter(map(digest, to_alice))
    assert all(m.sender == alice.address for m in got_bob)
    assert all(m.sender == bob.address for m in got_alice)
    # Exactly once: nothing more arrives.
    with trio.move_on_after(3):
        async with two_clients(plan, "bulk") as (alice_again, bob_again):
            extra: list[ReceivedMessage] = []
            await collect(bob_again, 1, extra)
    assert not extra


async def test_anonymous_message_and_its_reply(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    async with two_clients(plan, "anonymous") as (alice, bob):
        secret = b"who sent this?"
        got: list[ReceivedMessage] = []
        with trio.fail_after(60):
            await alice.send_anonymous(bob.address, secret, reply_surbs=2)
            await collect(bob, 1, got)
        message = got[0]
        assert message.data == secret and message.anonymous
        assert message.sender is None and message.conversation is not None
        own = ClientAddress.parse(alice.address)
        view = repr(message).encode() + message.data + message.conversation.encode()
        for part in (own.mailbox_id, own.public_key, own.gateway_id):
            assert part not in view and part.hex().encode() not in view
        assert bob.reply_surbs_left(message.conversation) == 2

        answers: list[ReceivedMessage] = []
        with trio.fail_after(60):
            await message.reply(b"someone kind")
            await collect(alice, 1, answers)
        assert answers[0].data == b"someone kind" and answers[0].sender is None
        # A reply that needs more SURBs than are left is refused at once.
        with trio.fail_after(1):
            with pytest.raises(NoReplySurbsError):
                await message.reply(bytes(10_000))
            await message.reply(b"last one")
            with pytest.raises(NoReplySurbsError):
                await message.reply(b"one too many")


async def test_a_post_quantum_address_receives_sealed_messages(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    first, second = plan.gateways
    sender = ClientConfig.from_toml(plan.client_config("pq-sender", gateway=first))
    receiver = ClientConfig.from_toml(
        plan.client_config("pq-receiver", gateway=second, suite="mlkem768-x25519")
    )
    async with Client(sender) as alice, Client(receiver) as bob:
        assert len(bob.address) == 2068  # the ML-KEM-768 + X25519 key is in the address
        got: list[ReceivedMessage] = []
        with trio.fail_after(60):
            await alice.send(bob.address, b"quantum-safe")
            await collect(bob, 1, got)
        assert got[0].data == b"quantum-safe" and got[0].sender == alice.address


async def test_client_killed_mid_send_delivers_the_message_once(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    first, second = plan.gateways
    sender_config = plan.client_config("killed-sender", gateway=first)
    async with two_clients(plan, "killed") as (_alice, bob):
        size, seed = 200_000, 77  # 98 fragments: about 2 s of payload slots
        command = [sys.executable, "-m", "tests.mixclient.client_process"]
        child = subprocess.Popen(
            [*command, "send", str(sender_config), bob.address, str(size), str(seed)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert child.stdout is not None
            with trio.fail_after(60):
                while "sending" not in await trio.to_thread.run_sync(child.stdout.readline):
                    pass
            await trio.sleep(0.6)  # some fragments out, not all acknowledged
            child.kill()
        finally:
            child.kill()
            child.wait(timeout=10)
        drain = subprocess.Popen(
            [*command, "drain", str(sender_config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            got: list[ReceivedMessage] = []
            with trio.fail_after(120):
                await collect(bob, 1, got)
                output = await trio.to_thread.run_sync(drain.communicate)
            assert "outbox 1" in output[0] and "drained" in output[0], output
            assert drain.returncode == 0
        finally:
            drain.kill()
            drain.wait(timeout=10)
        assert got[0].data == payload(size, seed)
        with trio.move_on_after(3):
            await collect(bob, 2, got)
        assert len(got) == 1


async def test_exit_gateway_sigkill_loses_nothing_acknowledged(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, processes = testnet
    exit_gateway = plan.gateways[1]
    messages = [payload(3_000, 300 + i) for i in range(30)]
    async with two_clients(plan, "exit-kill") as (alice, bob):
        acked: list[bytes] = []
        got: list[ReceivedMessage] = []

        async def send(data: bytes) -> None:
            await alice.send(bob.address, data)
            acked.append(data)

        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, bob, len(messages), got)
                async with trio.open_nursery() as senders:
                    for data in messages:
                        senders.start_soon(send, data)
                    while len(acked) < 5:
                        await trio.sleep(0.05)
                    processes.kill(exit_gateway.name)
                    killed_with = len(acked)
                    await restart_node(processes, exit_gateway)
    assert killed_with < len(messages), "everything was acknowledged before the kill"
    assert Counter(digest(m.data) for m in got) == Counter(map(digest, messages))


async def test_a_link_lost_while_a_poll_is_taken_loses_no_message(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    """The exit gateway dies while bob is still storing a fragment it fetched. Bob's link
    task ends at once; what bob had fetched must still be taken whole (stored, reassembled,
    queued for the app), or the copy the restarted gateway hands out again would look like
    a duplicate of a message bob never kept, and be acknowledged away."""
    plan, processes = testnet
    exit_gateway = plan.gateways[1]
    data = payload(500, 901)  # one fragment
    async with two_clients(plan, "poll-cut") as (alice, bob):
        # The real store, its first `add_inbound` held back until the link is gone.
        store = bob._state
        add_inbound = store.add_inbound
        entered, release = threading.Event(), threading.Event()

        def held(frames: list[tuple[bytes, int, bytes]]) -> None:
            entered.set()
            release.wait(30)
            add_inbound(frames)

        store.add_inbound = held  # type: ignore[method-assign]
        got: list[ReceivedMessage] = []
        try:
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(alice.send, bob.address, data)
                    while not entered.is_set():
                        await trio.sleep(0.01)
                    processes.kill(exit_gateway.name)
                    await trio.sleep(1.0)  # bob's polls meet the dead link
                    release.set()
                    await restart_node(processes, exit_gateway)
            with trio.move_on_after(30) as scope:
                async for message in bob.messages():
                    got.append(message)
                    scope.deadline = min(scope.deadline, trio.current_time() + 2)  # a copy?
        finally:
            release.set()
    assert [digest(m.data) for m in got] == [digest(data)], f"{len(got)} messages, not 1"


async def test_a_byzantine_gateway_stops_nothing_and_is_retried_with_growing_backoff(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    """A compromised entry gateway: an impostor holding gateway-1's link key, on its client
    port, answers with garbage, with junk mail, with nothing at all, and with answers of the
    wrong kind, a way per connection. carol's client neither ends nor hands junk to the app:
    it counts what it drops, and it tries again with a growing backoff, not in a loop (each
    impostor link opens, then fails within seconds). Once the real gateway is back, mail
    flows both ways."""
    plan, processes = testnet
    entry, other = plan.gateways
    node_config = load_node_config(entry.config)
    assert node_config.client_listen is not None
    host, port = node_config.client_listen
    geometry = node_config.geometry
    carol_config = dataclasses.replace(
        ClientConfig.from_toml(plan.client_config("byzantine-carol", gateway=entry)),
        link_timeout=2.0,
    )
    dave_config = ClientConfig.from_toml(plan.client_config("byzantine-dave", gateway=other))
    modes = ("garbage", "junk", "silent", "wrong_kind")
    connections: list[str] = []

    async def impostor(connection: LinkConnection) -> None:
        mode = modes[len(connections) % len(modes)]
        connections.append(mode)
        await connection.receive()  # the REGISTER
        if mode == "garbage":
            await connection.send(Frame(FrameKind.CONTROL, b"\xee" * 40))
        else:
            await connection.send(Frame(FrameKind.CONTROL, encode_reply(Registered(mailbox))))
        fetches = 0
        while True:  # until the client closes the link (LinkClosed ends the handler)
            frame = await connection.receive()
            if frame.kind is not FrameKind.CONTROL or mode in ("garbage", "silent"):
                continue  # the client's packets, or a FETCH the impostor leaves unanswered
            request = decode_request(frame.body)
            if not isinstance(request, Fetch):
                continue
            fetches += 1
            if mode == "junk" and fetches > 3:
                return  # the impostor hangs up
            replies: list[Registered | Message] = []
            for n in range(request.count):
                if mode == "wrong_kind":
                    replies.append(Registered(mailbox))
                elif n % 2:
                    delivery = Delivery(MessageKind.FORWARD, bytes(16), os.urandom(
                        geometry.user_payload_size))
                    replies.append(Message(os.urandom(16), delivery.to_bytes()))
                else:
                    delivery = Delivery(MessageKind.SURB_REPLY, os.urandom(16), os.urandom(
                        geometry.payload_size))
                    replies.append(Message(os.urandom(16), delivery.to_bytes()))
            await connection.send_many([Frame(FrameKind.CONTROL, encode_reply(r)) for r in replies])

    async with Client(carol_config) as carol, Client(dave_config) as dave:
        mailbox = ClientAddress.parse(carol.address).mailbox_id
        received: list[ReceivedMessage] = []
        with trio.fail_after(200):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, carol, 1, received)
                processes.kill(entry.name)
                killed_at = trio.current_time()
                server = LinkServer(
                    read_secret_file(node_config.link_key_file), geometry.packet_size, impostor,
                    authorize=lambda _key: True,
                )
                async with trio.open_nursery() as hostile:
                    await hostile.start(server.serve, host, port)
                    await trio.sleep(25)
                    hostile.cancel_scope.cancel()
                assert received == [], "the impostor's junk reached the app"
                dropped = carol.stats.dropped
                await restart_node(processes, entry)
                await carol.send(dave.address, b"after the impostor")
                got: list[ReceivedMessage] = []
                await collect(dave, 1, got)
                await dave.send(carol.address, b"and back")
        assert [m.data for m in got] == [b"after the impostor"]
        assert [m.data for m in received] == [b"and back"]
        # Meanwhile gateway-1 was missing from the consensus (10 s epochs): carol's slots
        # passed empty, at their times (a client that raced through its schedule instead
        # would have sent nothing for hours after, and `send` above would not have returned).
        unroutable = carol.stats.slots_unroutable
        assert 0 < unroutable <= sum(RATES) * (trio.current_time() - killed_at)
    assert set(modes) <= set(connections), f"the impostor saw only {connections}"
    # Backoff: 0.25-0.5 s, then twice that after each failure, whatever the link did before
    # failing, up to 30 s. A client that started afresh after every link that opened came
    # back about every second: 19 times in 20 s.
    assert len(connections) <= 8, f"{len(connections)} connections in 25 s: {connections}"
    assert dropped.get("undecodable", 0) >= 1 and dropped.get("unmatched_reply", 0) >= 1


async def test_a_killed_mix_does_not_lose_or_duplicate_messages(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, processes = testnet
    victim: PlannedNode = plan.node("mix-2a")
    messages = [payload(5_000, 400 + i) for i in range(20)]
    async with two_clients(plan, "mix-kill") as (alice, bob):
        got: list[ReceivedMessage] = []
        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, bob, len(messages), got)
                async with trio.open_nursery() as senders:
                    for data in messages:
                        senders.start_soon(alice.send, bob.address, data)
                    await trio.sleep(0.3)
                    processes.kill(victim.name)
        retransmissions = alice.stats.retransmissions
        with trio.move_on_after(3):
            await collect(bob, len(messages) + 1, got)
    assert Counter(digest(m.data) for m in got) == Counter(map(digest, messages))
    assert retransmissions > 0, "no packet crossed the killed mix: the test proved nothing"
