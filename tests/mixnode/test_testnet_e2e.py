"""End to end over a real testnet: 3 authority and 8 node processes on 127.0.0.1.

One network serves the whole module (bringing it up takes a few epochs). The tests send real
Sphinx packets over real Noise links: 5 hops into a mailbox across epoch boundaries (key
rotation), replays refused before and after a SIGKILL, misbehaving peers that do not stop the
others, and a gateway killed with SIGKILL that loses no stored message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx
import pytest
import trio

from directory.consensus import Consensus
from directory.fetcher import ConsensusFetcher
from mixclient import Client, ClientConfig, RegistrationRefusedError
from mixnode.gateway_client import FetchedMessage, GatewayClient, GatewayRefusal
from mixnode.gateway_protocol import ErrorCode, MessageKind
from mixnode.key_ring import LinkKey, read_secret_file
from mixnode.link import Frame, FrameKind
from mixnode.link_driver import LinkClosed, open_link
from mixnode.node_config import Limits
from sphinx_packets import (
    NodeDelay,
    PathHop,
    Recipient,
    create_packet,
    decrypt_surb_payload,
    new_surb,
)
from trimix.smoke import smoke_path, smoke_run
from trimix.testnet import (
    PlannedNode,
    TestnetPlan,
    TestnetProcesses,
    network_drops,
    plan_testnet,
    wait_for_consensus,
)

EPOCH_SECONDS = 5.0
REGISTRATIONS_PER_HOUR = 30
QUEUE_CAPACITY = 400
"""Each node's delay queue: small enough for one test's flood to fill it."""
"""The gateways' budget of new mailboxes from 127.0.0.1: the tests before the last register
fewer than ten at each; the last one spends the rest."""
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestnetPlan, TestnetProcesses]]:
    plan = plan_testnet(
        tmp_path_factory.mktemp("testnet"), epoch_seconds=EPOCH_SECONDS,
        registrations_per_hour=REGISTRATIONS_PER_HOUR, queue_capacity=QUEUE_CAPACITY,
    )
    processes = TestnetProcesses(plan)
    try:
        processes.start_all()
        trio.run(_wait_up, plan, processes)
        yield plan, processes
    finally:
        codes = processes.stop_all()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


async def _wait_up(plan: TestnetPlan, processes: TestnetProcesses) -> None:
    def progress(_listed: int, _total: int) -> None:
        assert not processes.exited(), f"daemons exited: {processes.exited()}"

    await wait_for_consensus(plan, timeout=12 * EPOCH_SECONDS + 30, progress=progress)


def _fetcher(plan: TestnetPlan) -> ConsensusFetcher:
    return ConsensusFetcher(
        plan.endpoints, plan.geometry, plan.clock, rng=random.Random(), request_timeout=2.0
    )


async def _metric(node: PlannedNode, name: str, label: str = "") -> float:
    async with httpx.AsyncClient(timeout=2.0) as client:
        text = (await client.get(f"http://127.0.0.1:{node.metrics_port}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not label or label in line) and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            if key == name or key.startswith(name + "{"):
                total += float(value)
    return total


async def _wait_metric(node: PlannedNode, name: str, label: str, at_least: float) -> float:
    with trio.fail_after(60):  # generous: CI machines are slow and shared
        while True:
            try:
                value = await _metric(node, name, label)
            except httpx.HTTPError:
                value = -1.0
            if value >= at_least:
                return value
            await trio.sleep(0.1)


async def _restart(processes: TestnetProcesses, node: PlannedNode) -> None:
    """Start `node` again and wait until it has a consensus and listens."""
    processes.start(node.name)
    await _wait_metric(node, "trimix_consensus_epoch", "", 1)


async def _client(gateway: PlannedNode, key: LinkKey, plan: TestnetPlan) -> GatewayClient:
    """A client link to `gateway`'s client port with static key `key`."""
    assert gateway.client_port is not None
    return await GatewayClient.connect(
        "127.0.0.1", gateway.client_port, key.private_key, gateway.link_public_key,
        plan.geometry.packet_size,
    )


def _link_key(node: PlannedNode) -> LinkKey:
    return LinkKey(read_secret_file(node.data_dir / "link.key"))


async def test_packets_cross_five_hops_and_two_epoch_boundaries(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    fetcher = _fetcher(plan)
    entry, exit_ = plan.gateways
    async with trio.open_nursery() as nursery:
        first = await nursery.start(fetcher.run)
        started = time.time()
        # A packet may wait for a link to be set up (the first test makes them) or retried
        # after a handshake that timed out on a loaded machine: a long settling time.
        report = await smoke_run(
            lambda: fetcher.current or first, plan.geometry, entry, exit_,
            packets=int(3 * EPOCH_SECONDS * 10), rate=10.0, rng=random.Random(5), settle=30.0,
        )
        nursery.cancel_scope.cancel()
    assert plan.clock.epoch_at(time.time()) - plan.clock.epoch_at(started) >= 2
    drops = await network_drops(plan)
    stored = await _metric(exit_, "trimix_messages_stored_total")
    refused = await _metric(exit_, "trimix_messages_refused_total")
    if report.delivered != report.sent:
        await trio.sleep(10)  # late, or lost? Count again.
        stored_later = await _metric(exit_, "trimix_messages_stored_total")
        raise AssertionError(
            f"lost {report.sent - report.delivered}: dropped {drops}, stored {stored} "
            f"(10 s later {stored_later}), refused {refused}"
        )
    assert report.duplicates == 0
    # Each packet waited at least its drawn delays; the rest is links, crypto and polling.
    assert min(report.overhead_ms) > 0
    assert report.percentile(report.overhead_ms, 50) < 1000


async def test_replay_is_refused_again_after_sigkill_and_restart(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, processes = testnet
    mix = plan.node("mix-1a")
    gateway, exit_ = plan.gateways
    consensus: Consensus = await _fetcher(plan).fetch(plan.clock.epoch_at(time.time()))
    receiver_key = LinkKey.generate()
    receiver = await _client(exit_, receiver_key, plan)
    mailbox = await receiver.register()
    rng = random.Random(9)
    # mix-1a first (the test speaks to it as gateway-1 would), then a mix of each layer.
    path, _ = smoke_path(consensus, mix.node_id, exit_.node_id, mailbox, rng)
    packet = create_packet(plan.geometry, path, rng.randbytes(plan.geometry.user_payload_size))

    async def send_as_gateway() -> None:
        link = await open_link(
            "127.0.0.1", mix.port, _link_key(gateway).private_key, mix.link_public_key,
            plan.geometry.packet_size,
        )
        await link.send_many([Frame(FrameKind.PACKET, packet)] * 2)
        await trio.sleep(0.2)
        await link.aclose()

    await send_as_gateway()
    await _wait_metric(mix, "trimix_packets_dropped_total", 'reason="replay"', 1)
    processes.kill(mix.name)
    await _restart(processes, mix)
    await send_as_gateway()
    await _wait_metric(mix, "trimix_packets_dropped_total", 'reason="replay"', 2)

    delivered = []
    with trio.move_on_after(6):
        while True:
            batch = await receiver.fetch(16)
            delivered += batch
            if batch:
                await receiver.ack([m.message_id for m in batch])
            await trio.sleep(0.2)
    await receiver.aclose()
    assert len(delivered) == 1  # once, despite three copies and a restart


async def test_misbehaving_peers_do_not_stop_forwarding(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    fetcher = _fetcher(plan)
    entry, exit_ = plan.gateways
    targets = [n for n in plan.nodes if n.role == "mix"]
    before = {n.name: await _metric(n, "trimix_link_events_total", "handshake_") for n in targets}

    async def garbage(node: PlannedNode) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", node.port)
        with trio.move_on_after(3):
            try:
                for _ in range(50):
                    await stream.send_all(random.randbytes(512))
                    await trio.sleep(0.05)
            except trio.BrokenResourceError:
                pass  # the node hung up on us, as it should
        await stream.aclose()

    async def half_open(node: PlannedNode) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", node.port)
        try:
            await stream.send_all(random.randbytes(10))  # part of a handshake, then silence
            await trio.sleep(8)
        except trio.BrokenResourceError:
            pass
        await stream.aclose()

    async def stranger(node: PlannedNode) -> None:
        outsider = LinkKey.generate()  # completes Noise, but is no node of the consensus
        try:
            link = await open_link("127.0.0.1", node.port, outsider.private_key,
                                   node.link_public_key, plan.geometry.packet_size)
            await link.send(Frame(FrameKind.PACKET, bytes(plan.geometry.packet_size)))
            await link.receive()
        except LinkClosed:
            pass

    flood: dict[str, float] = {}

    async def flooding_client() -> None:
        """A registered client link that sends packets as fast as the link takes them."""
        flooder = await _client(entry, LinkKey.generate(), plan)
        await flooder.register()
        junk = [Frame(FrameKind.PACKET, random.randbytes(plan.geometry.packet_size))] * 100
        started = trio.current_time()
        with trio.move_on_after(4):
            while True:
                await flooder.connection.send_many(junk)
                flood["sent"] = flood.get("sent", 0) + len(junk)
        flood["seconds"] = trio.current_time() - started
        await flooder.aclose()

    polled: dict[str, float] = {"frames": 0}

    async def polling_client() -> None:
        """A registered client link at the exit gateway that polls as fast as it is answered,
        eight FETCHes of 16 frames always in flight."""
        poller = await _client(exit_, LinkKey.generate(), plan)
        await poller.register()
        window = trio.Semaphore(8)
        started = trio.current_time()

        async def ask() -> None:
            while True:
                await window.acquire()
                await poller.send_fetch(16)

        with trio.move_on_after(4):
            async with trio.open_nursery() as inner:
                inner.start_soon(ask)
                while True:
                    await poller.receive_fetch(16, deadline=trio.current_time() + 30)
                    window.release()
                    polled["frames"] += 16
        polled["seconds"] = trio.current_time() - started
        await poller.aclose()

    dropped_before = await _metric(entry, "trimix_packets_dropped_total", 'reason="client_rate"')
    async with trio.open_nursery() as nursery:
        first = await nursery.start(fetcher.run)
        for node in targets:
            nursery.start_soon(garbage, node)
            nursery.start_soon(half_open, node)
            nursery.start_soon(stranger, node)
        nursery.start_soon(flooding_client)
        nursery.start_soon(polling_client)
        report = await smoke_run(
            lambda: fetcher.current or first, plan.geometry, entry, exit_,
            packets=60, rate=10.0, rng=random.Random(6), settle=30.0,
        )
        nursery.cancel_scope.cancel()
    assert report.delivered == report.sent
    # The flooding link got its burst and its rate (50/s here: the floor), no more; the
    # smoke's own link, beside it at the same gateway, lost nothing.
    limits = Limits()
    rate = limits.client_packet_rate_floor
    allowed = rate * (limits.client_burst_seconds + flood["seconds"])
    dropped = await _wait_metric(
        entry, "trimix_packets_dropped_total", 'reason="client_rate"',
        dropped_before + flood["sent"] - allowed - rate,  # what it sent until the link closed
    )
    assert flood["sent"] > 2 * allowed and dropped - dropped_before <= flood["sent"]
    # The poller got its burst and 1,000 frames a second (the floor), however fast it asked.
    fetch_rate = limits.client_fetch_rate_floor
    assert polled["frames"] <= fetch_rate * (limits.client_burst_seconds + polled["seconds"])
    assert await _metric(exit_, "trimix_gateway_requests_total", 'outcome="fetch_paced"') >= 1
    for node in targets:
        refused = await _metric(node, "trimix_link_events_total", "handshake_")
        unauthorized = await _metric(node, "trimix_link_events_total", "refused_unauthorized")
        assert refused > before[node.name] and unauthorized >= 1


async def test_a_flooding_mix_fills_only_its_own_share_of_the_next_ones_queue(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    """A byzantine mix of the consensus floods a mix of the next layer with valid packets,
    each held for nearly the longest delay allowed, so that its delay queue (QUEUE_CAPACITY
    here) stays full. The honest packets that reach that mix meanwhile from another peer
    still go through: the flood fills only its own share of the queue."""
    plan, _ = testnet
    geometry = plan.geometry
    entry, exit_ = plan.gateways
    nodes = {node.name: node for node in plan.nodes}
    victim, impostor, honest_hops = nodes["mix-3a"], nodes["mix-2b"], ["mix-1a", "mix-2a"]
    consensus = await _fetcher(plan).fetch(plan.clock.epoch_at(time.time()))
    epoch = consensus.epoch
    rng = random.Random(23)

    def hop(node: PlannedNode, delay_ms: int) -> PathHop:
        key = consensus.descriptor(node.node_id).sphinx_key(epoch)
        return PathHop(node.node_id, key, (NodeDelay(delay_ms),))

    # Each flood packet waits at the victim for 95 % of the cap, then dies at the exit
    # gateway (a mailbox nobody has): 10 per 10 ms keep a queue of QUEUE_CAPACITY full.
    hold = consensus.parameters.max_delay_ms * 95 // 100
    exit_key = consensus.descriptor(exit_.node_id).sphinx_key(epoch)
    flood = [
        create_packet(geometry, [
            hop(victim, hold), PathHop(exit_.node_id, exit_key, (Recipient(rng.randbytes(32)),)),
        ], bytes(geometry.user_payload_size), rng=rng.randbytes)
        for _ in range(3000)
    ]
    receiver = await _client(exit_, LinkKey.generate(), plan)
    mailbox = await receiver.register()
    sender = await _client(entry, LinkKey.generate(), plan)
    await sender.register()
    honest = 20
    honest_path = [hop(entry, 5), *(hop(nodes[name], 5) for name in honest_hops), hop(victim, 5),
                   PathHop(exit_.node_id, exit_key, (Recipient(mailbox), NodeDelay(5)))]
    # No SURB-ACK (a zero field): the exit stores the rest, which the receiver fetches.
    frames = [rng.randbytes(geometry.user_payload_size - geometry.surb_size) for _ in range(honest)]
    evicted_before = await _metric(victim, "trimix_packets_dropped_total", 'reason="real_evicted"')
    refused_before = await _metric(victim, "trimix_packets_dropped_total", 'reason="real_refused"')
    link = await open_link("127.0.0.1", victim.port, _link_key(impostor).private_key,
                           victim.link_public_key, geometry.packet_size)
    full = trio.Event()

    async def flood_it() -> None:
        for start in range(0, len(flood), 10):
            await link.send_many([Frame(FrameKind.PACKET, p) for p in flood[start:start + 10]])
            await trio.sleep(0.01)
            if start == 1000:
                full.set()  # after 1 s of it: the longest a flood packet is held

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood_it)
            await full.wait()
            for frame in frames:  # while the victim's queue is full of the flood
                payload = bytes(geometry.surb_size) + frame
                await sender.send_packet(create_packet(geometry, honest_path, payload))
                await trio.sleep(0.05)
        fetched: list[bytes] = []
        with trio.move_on_after(30):  # each honest packet needs well under a second
            while len(fetched) < honest:
                batch = await receiver.fetch(16)
                await receiver.ack([m.message_id for m in batch])
                fetched += [m.message.payload for m in batch]
                await trio.sleep(0.05 if not batch else 0)
    await link.aclose()
    await sender.aclose()
    await receiver.aclose()
    assert sorted(fetched) == sorted(frames)  # every honest packet, once
    # The victim's queue was full: it refused the flood past the flood's share, and evicted
    # flood packets to take the honest ones.
    await _wait_metric(victim, "trimix_packets_dropped_total", 'reason="real_refused"',
                       refused_before + 1)
    evicted = await _metric(victim, "trimix_packets_dropped_total", 'reason="real_evicted"')
    assert evicted - evicted_before >= 1


async def test_gateway_sigkill_loses_no_stored_message(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, processes = testnet
    entry, exit_ = plan.gateways
    consensus = await _fetcher(plan).fetch(plan.clock.epoch_at(time.time()))
    receiver_key = LinkKey.generate()
    assert exit_.client_port is not None and entry.client_port is not None
    receiver = await _client(exit_, receiver_key, plan)
    mailbox = await receiver.register()
    await receiver.aclose()
    sender_key = LinkKey.generate()
    sender = await _client(entry, sender_key, plan)
    await sender.register()
    stored_before = await _metric(exit_, "trimix_messages_stored_total")
    rng = random.Random(13)
    count = 20
    for _ in range(count):
        path, _ = smoke_path(consensus, entry.node_id, exit_.node_id, mailbox, rng)
        await sender.send_packet(
            create_packet(plan.geometry, path, rng.randbytes(plan.geometry.user_payload_size))
        )
    await sender.aclose()
    await _wait_metric(exit_, "trimix_messages_stored_total", "", stored_before + count)
    processes.kill(exit_.name)
    await _restart(processes, exit_)
    receiver = await _client(exit_, receiver_key, plan)
    assert await receiver.register() == mailbox
    fetched = []
    with trio.fail_after(60):
        while len(fetched) < count:
            batch = await receiver.fetch(16)
            fetched += batch
            await receiver.ack([m.message_id for m in batch])
    assert await receiver.fetch(4) == []  # acknowledged mail is gone
    await receiver.aclose()
    assert len({m.message_id for m in fetched}) == count


async def test_exit_gateway_answers_the_surb_ack_once_stored(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = testnet
    geometry = plan.geometry
    entry, exit_ = plan.gateways
    consensus = await _fetcher(plan).fetch(plan.clock.epoch_at(time.time()))
    assert entry.client_port is not None and exit_.client_port is not None
    sender_key, receiver_key = LinkKey.generate(), LinkKey.generate()
    sender = await _client(entry, sender_key, plan)
    receiver = await _client(exit_, receiver_key, plan)
    own_mailbox = await sender.register()
    their_mailbox = await receiver.register()
    rng = random.Random(17)
    # The SURB-ACK's path: a mix of each layer, then the sender's own gateway and mailbox.
    back, _ = smoke_path(consensus, entry.node_id, entry.node_id, own_mailbox, rng)
    surb, keys = new_surb(geometry, back[1:], rng=rng.randbytes)
    frame = rng.randbytes(geometry.user_payload_size - geometry.surb_size)
    path, _ = smoke_path(consensus, entry.node_id, exit_.node_id, their_mailbox, rng)
    await sender.send_packet(create_packet(geometry, path, surb.to_bytes() + frame))

    async def first_message(client: GatewayClient) -> FetchedMessage:
        with trio.fail_after(60):
            while True:
                fetched = await client.fetch(4)
                if fetched:
                    await client.ack([m.message_id for m in fetched])
                    return fetched[0]
                await trio.sleep(0.05)

    delivered = await first_message(receiver)
    assert delivered.message.payload == frame  # the SURB-ACK is not given to the recipient
    ack = await first_message(sender)
    assert ack.message.kind is MessageKind.SURB_REPLY and ack.message.surb_id == keys.surb_id
    assert decrypt_surb_payload(geometry, keys, keys.surb_id, ack.message.payload) == bytes(
        geometry.user_payload_size
    )
    await sender.aclose()
    await receiver.aclose()


async def test_sigterm_stores_the_mail_it_was_holding(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, processes = testnet
    geometry = plan.geometry
    entry, exit_ = plan.gateways
    # An earlier test restarted the exit: wait for a consensus that lists it again.
    fetcher = _fetcher(plan)
    with trio.fail_after(12 * EPOCH_SECONDS):
        while True:
            consensus = await fetcher.fetch(plan.clock.epoch_at(time.time()))
            if exit_.node_id in {d.node_id for d in consensus.descriptors}:
                break
            await trio.sleep(0.5)
    assert entry.client_port is not None and exit_.client_port is not None
    receiver_key = LinkKey.generate()
    receiver = await _client(exit_, receiver_key, plan)
    mailbox = await receiver.register()
    await receiver.aclose()
    received_before = await _metric(exit_, "trimix_packets_received_total")
    rng = random.Random(23)
    count = 10
    hold = consensus.parameters.max_delay_ms  # the exit holds each packet this long
    frame_size = geometry.user_payload_size - geometry.surb_size
    # Straight to the exit over a node link, as a layer-3 mix would send them, each to be
    # held for the longest delay: when the exit is asked to stop, it holds them all.
    last_mix = plan.node("mix-3a")
    key = consensus.descriptor(exit_.node_id).sphinx_key(consensus.epoch)
    packets = [
        create_packet(
            geometry,
            [PathHop(exit_.node_id, key, (Recipient(mailbox), NodeDelay(hold)))],
            bytes(geometry.surb_size) + rng.randbytes(frame_size),
        )
        for _ in range(count)
    ]
    link = await open_link(
        "127.0.0.1", exit_.port, _link_key(last_mix).private_key, exit_.link_public_key,
        geometry.packet_size,
    )
    await link.send_many([Frame(FrameKind.PACKET, packet) for packet in packets])
    await _wait_metric(exit_, "trimix_packets_received_total", "", received_before + count)
    assert processes.terminate(exit_.name) == 0
    await link.aclose()
    await _restart(processes, exit_)
    receiver = await _client(exit_, receiver_key, plan)
    fetched = []
    with trio.fail_after(60):
        while len(fetched) < count:
            batch = await receiver.fetch(16)
            fetched += batch
            await receiver.ack([m.message_id for m in batch])
            await trio.sleep(0.05)
    await receiver.aclose()
    assert len(fetched) == count


async def test_new_mailboxes_from_one_address_are_budgeted_and_the_client_says_so(
    testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    """(Last: it spends the exit's budget of new mailboxes for 127.0.0.1.) Fresh keys from
    one address get REGISTRATION_LIMITED within the budget; a key with a mailbox still
    reopens it; a new `Client` there fails at once with RegistrationRefusedError, not after
    its startup timeout."""
    plan, _ = testnet
    _, exit_ = plan.gateways
    existing = LinkKey.generate()
    first = await _client(exit_, existing, plan)
    mailbox = await first.register()
    await first.aclose()
    refused = None
    with trio.fail_after(120):
        for attempt in range(REGISTRATIONS_PER_HOUR + 1):
            gateway = await _client(exit_, LinkKey.generate(), plan)
            try:
                await gateway.register()
            except GatewayRefusal as refusal:
                refused = (attempt, refusal.code)
                break
            finally:
                await gateway.aclose()
    assert refused is not None and refused[1] is ErrorCode.REGISTRATION_LIMITED
    again = await _client(exit_, existing, plan)
    assert await again.register() == mailbox
    await again.aclose()
    assert await _metric(
        exit_, "trimix_gateway_requests_total", 'outcome="registration_limited"'
    ) >= 1
    config = ClientConfig.from_toml(plan.client_config("late-comer", gateway=exit_))
    started = trio.current_time()
    with pytest.raises(RegistrationRefusedError, match="new mailboxes from this network"):
        async with Client(config):
            pass
    assert trio.current_time() - started < config.startup_timeout / 2
