"""`NodeDaemon`: a mix node or gateway, the thin Trio driver around the packet pipeline.

Tasks (one nursery):
- consensus: `ConsensusFetcher.run` keeps the consensus in force; each new one rotates the
  Sphinx keys and replay filters and refreshes the table of next hops;
- descriptor: each epoch, uploads the signed descriptor of the next epoch (keys of e+1 … e+3);
- node links: a Noise `LinkServer` for other nodes (a peer whose static key is not a node of
  the current or previous consensus is refused after the handshake);
- client links (gateways): a `LinkServer` for clients, each served by `serve_client`;
- scheduler: one task, one heap of (deadline, action), never a task per packet;
- loops: λ_M loop cover and the n−1 alarm;
- metrics: Prometheus exposition on a local port.

`stop()` (SIGTERM) stops accepting, sends what falls due within the grace period, closes the
stores (replay filters and mailboxes are already durable) and returns.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import httpx
import hypercorn.config
import hypercorn.trio
import trio
import trio.lowlevel
from prometheus_client import make_asgi_app

from directory.consensus import Consensus
from directory.descriptor import Address, Role, sign_descriptor
from directory.fetcher import ConsensusFetcher
from directory.signatures import SigningKey, node_id
from directory.upload import upload_descriptor
from mixnode.crypto_workers import CryptoWorkers, WorkerView
from mixnode.gateway_session import serve_client
from mixnode.key_ring import LinkKey, SphinxKeyRing
from mixnode.link import Frame, FrameKind
from mixnode.link_driver import LinkConnection, LinkServer, LinkTimings, PeerLinks
from mixnode.loop_cover import LoopCover
from mixnode.mailbox import (
    MailboxCounts,
    MailboxLimits,
    MailboxStorageError,
    MailboxStore,
    StoreOutcome,
)
from mixnode.node_config import NodeConfig
from mixnode.node_metrics import NodeMetrics
from mixnode.packet_pipeline import (
    Dropped,
    EpochView,
    LoopReturned,
    Outcome,
    PacketPipeline,
    Scheduled,
    SendPacket,
    StoreMessage,
    known_nodes,
)
from mixnode.rate_limit import AddressBudgets, RegistrationBudgets, TokenBucket
from mixnode.replay_filter import ReplayFilters
from mixnode.scheduler import DelayScheduler, SchedulerTask
from mixnode.surb_ack import AckPacket, ack_packet

log = logging.getLogger(__name__)

VERSION = "0.1.0"
LOOP_ALARM_RATIO = 0.5
"""The share of recent loops missing above which the node warns of a possible n−1 attack."""
LOOP_ALARM_MINIMUM = 20
"""Loops that must have resolved before the alarm may sound."""
STORE_RETRY_SECONDS = 1.0
"""The pause after the mailbox store failed (disk full, I/O error) before the next batch."""


@dataclass(frozen=True, slots=True)
class Peer:
    """How to reach a node of the consensus."""

    link_key: bytes
    host: str
    port: int


class NodeDaemon:
    def __init__(
        self,
        config: NodeConfig,
        identity: SigningKey,
        link_key: LinkKey,
        *,
        rng: random.Random | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.identity = identity
        self.link_key = link_key
        self.node_id = node_id(identity.public_key)
        self.rng = rng if rng is not None else random.Random(os.urandom(32))
        self.now = now
        self.metrics = NodeMetrics()
        # Children bound once: `labels()` on the hot path costs more than the increment.
        self._received = {
            link: self.metrics.packets_received.labels(link) for link in ("node", "client")
        }
        self._sent = self.metrics.packets_sent
        idle = config.limits.idle_timeout
        self._timings = LinkTimings(idle_timeout=idle, keepalive_interval=min(15.0, idle / 4))
        data = config.data_dir
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.keys = SphinxKeyRing(data / "sphinx-keys")
        epoch_seconds = config.clock.length_ms / 1000
        expected_items = max(
            10_000, round(config.limits.expected_packets_per_second * 3 * epoch_seconds)
        )
        self.replay = ReplayFilters(data / "replay", expected_items=expected_items)
        self.mailboxes: MailboxStore | None = None
        if config.role is Role.GATEWAY:
            limits = config.limits
            self.mailboxes = MailboxStore(
                data / "mailboxes.sqlite3",
                MailboxLimits(
                    max_mailboxes=limits.max_mailboxes,
                    max_messages=limits.mailbox_max_messages,
                    max_bytes=limits.mailbox_max_bytes,
                    expire_after=limits.mailbox_expire_days * 86400,
                    max_total_bytes=limits.mailbox_store_max_bytes,
                ),
            )
        # One HTTP client for the daemon's life: making one blocks the loop for ~40 ms.
        self.http = httpx.AsyncClient(timeout=10.0)
        self.fetcher = ConsensusFetcher(
            config.authorities,
            config.geometry,
            config.clock,
            cache_dir=data / "consensus",
            rng=self.rng,
            now=now,
            http_client=self.http,
        )
        self.loop_recipient = self.rng.randbytes(32)
        self.loops = LoopCover(config.geometry, self.node_id, self.loop_recipient, rng=self.rng)
        self.delay_queue: DelayScheduler[SendPacket | StoreMessage | LoopReturned] = (
            DelayScheduler(config.limits.queue_capacity)
        )
        self.scheduler = SchedulerTask(
            self.delay_queue, observe_lateness=self.metrics.lateness.observe
        )
        self.pipeline: PacketPipeline | None = None
        self.consensus: Consensus | None = None
        self._registrations = RegistrationBudgets(
            config.limits.registrations_per_address_per_hour
        )
        self._previous: Consensus | None = None
        self._peers: dict[bytes, Peer] = {}
        self._peer_by_link_key: dict[bytes, Peer] = {}
        self._node_link_keys: frozenset[bytes] = frozenset()
        self._deliveries_in, self._deliveries_out = trio.open_memory_channel[StoreMessage](
            config.limits.queue_capacity
        )
        self._stopping = trio.Event()
        self.links = PeerLinks(
            link_key.private_key,
            config.geometry.packet_size,
            self._resolve,
            rng=self.rng,
            count=self.metrics.count_link_event,
            queue_size=config.limits.peer_queue_capacity,
            handshake_timeout=config.limits.handshake_timeout,
            timings=self._timings,
        )
        self.workers: CryptoWorkers | None = None
        if config.workers > 1:
            self.workers = CryptoWorkers(
                config.workers,
                config.geometry,
                data,
                is_gateway=config.role is Role.GATEWAY,
                expected_items=expected_items,
                on_outcome=self._on_outcome,
                on_busy=lambda: self.metrics.packets_dropped.labels("workers_busy").inc(),
            )
        self._worker_filters = [] if self.workers is None else self.workers.replay_filters()
        self.bound_port: int | None = None
        self.bound_client_port: int | None = None
        self.bound_metrics_port: int | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a clean shutdown (what SIGTERM does)."""
        self._stopping.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop()`; `task_status.started()` once listening (before the first
        consensus: the node must be reachable for the authorities to list it).

        Stopping: the listeners, loops, uploads and consensus tasks end first (no new
        packets), while the scheduler, the outgoing links and the mailbox writer go on for
        the grace period; then what is still waiting is counted, mail is stored, and the rest
        ends."""
        epoch = self.config.clock.epoch_at(self.now())
        self.keys.ensure(epoch, 4)
        try:
            async with trio.open_nursery() as core:
                if self.workers is not None:
                    await core.start(self.workers.run)
                await core.start(self.links.run)
                await core.start(self.scheduler.run, self._on_due)
                if self.mailboxes is not None:
                    core.start_soon(self._store_deliveries)
                accepting = trio.CancelScope()
                core.start_soon(self._serve_all, accepting, task_status)
                await self._stopping.wait()
                accepting.cancel()
                await self._drain()
                core.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.http.aclose()
            self.close()

    def close(self) -> None:
        self.replay.close()
        if self.mailboxes is not None:
            self.mailboxes.close()

    async def _serve_all(
        self, scope: trio.CancelScope, task_status: trio.TaskStatus[None]
    ) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                node_server = self._link_server(self._serve_node, self._authorize_node)
                self.bound_port = await nursery.start(
                    node_server.serve, self.config.listen_host, self.config.listen_port
                )
                if self.mailboxes is not None and self.config.client_listen is not None:
                    # Any client may connect: registering is what a new one does first.
                    client_server = self._link_server(self._serve_client, lambda _key: True)
                    host, port = self.config.client_listen
                    self.bound_client_port = await nursery.start(client_server.serve, host, port)
                nursery.start_soon(self._upload_descriptors)
                nursery.start_soon(self._follow_consensus)
                nursery.start_soon(self._send_loops)
                nursery.start_soon(self._housekeeping)
                if self.config.metrics_listen is not None:
                    self.bound_metrics_port = await nursery.start(self._serve_metrics)
                task_status.started()

    def _link_server(
        self, handler: Callable[[LinkConnection], Awaitable[None]], authorize: Callable[[bytes], bool]
    ) -> LinkServer:
        limits = self.config.limits
        return LinkServer(
            self.link_key.private_key,
            self.config.geometry.packet_size,
            handler,
            authorize=authorize,
            count=self.metrics.count_link_event,
            handshake_timeout=limits.handshake_timeout,
            timings=self._timings,
            max_connections=limits.max_connections,
            max_connections_per_address=limits.max_connections_per_address,
            new_connections_per_address=AddressBudgets(
                limits.new_connections_per_address_per_second,
                limits.new_connections_burst_per_address,
            ),
        )

    async def _drain(self) -> None:
        """Send what falls due within the grace period; what is left is lost (counted), but
        mail that has arrived is stored."""
        grace = self.config.limits.shutdown_grace
        left = await self.scheduler.drain(grace)
        while True:  # deliveries due but not yet written
            try:
                left.append(self._deliveries_out.receive_nowait())
            except trio.WouldBlock:
                break
        stores = [a for a in left if isinstance(a, StoreMessage)]
        if stores and self.mailboxes is not None:
            # Mail that has arrived is never thrown away: store it now, delay or not (its
            # SURB-ACKs are not sent: the senders retransmit, and the receiver drops copies).
            try:
                self._store_batch(stores)
            except MailboxStorageError:
                self._count_store_failure(len(stores))
        lost = len(left) - len(stores)
        if lost:
            self.metrics.packets_dropped.labels("shutdown").inc(lost)
        await self.links.aclose(grace=grace)

    async def _serve_metrics(self, *, task_status: trio.TaskStatus[int]) -> None:
        """Prometheus exposition (prometheus-client's ASGI app under hypercorn)."""
        assert self.config.metrics_listen is not None
        host, port = self.config.metrics_listen
        config = hypercorn.config.Config()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None  # access logs would hold peer addresses
        config.errorlog = None
        config.graceful_timeout = 0.5
        config.read_timeout = 10
        app = make_asgi_app(registry=self.metrics.registry)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn.trio.serve, cast(Any, app), config))
            task_status.started(int(binds[0].rsplit(":", 1)[1]))

    # --- consensus, keys, descriptors ------------------------------------------------------

    async def _follow_consensus(self) -> None:
        await self.fetcher.run(on_consensus=self._on_consensus)

    async def _on_consensus(self, consensus: Consensus) -> None:
        if self.consensus is not None and consensus.epoch > self.consensus.epoch:
            self._previous = self.consensus
        self.consensus = consensus
        epoch = consensus.epoch
        self.keys.ensure(epoch, 4)
        self.keys.retire_before(epoch - 1)
        node_keys = self.keys.node_keys(epoch)
        # Filters are written out in a thread (a large one takes a while), then opened: here,
        # or by the crypto workers, which each keep their own.
        filter_sets = [self.replay] if self.workers is None else self._worker_filters
        for key in node_keys.keys:
            for filters in filter_sets:
                await trio.to_thread.run_sync(filters.prepare, key.epoch)
            if self.workers is None:
                self.replay.ensure(key.epoch)
        self.replay.retire_before(epoch - 1)
        documents = [c for c in (self._previous, consensus) if c is not None]
        self._peers = {}
        for document in documents:
            for descriptor in document.descriptors:
                address = descriptor.addresses[0]
                self._peers[descriptor.node_id] = Peer(
                    descriptor.link_key, address.host, address.port
                )
        self._peer_by_link_key = {p.link_key: p for p in self._peers.values()}
        self._node_link_keys = frozenset(self._peer_by_link_key)
        view = EpochView(
            epoch=epoch,
            keys=node_keys,
            max_delay_ms=consensus.parameters.max_delay_ms,
            known_nodes=known_nodes(*(c.descriptor_ids for c in documents)),
        )
        if self.pipeline is None:
            self.pipeline = PacketPipeline(
                self.config.geometry,
                self.replay,
                view,
                loop_recipient=self.loop_recipient,
                is_gateway=self.config.role is Role.GATEWAY,
            )
        else:
            self.pipeline.view = view
        if self.workers is not None:
            self.workers.announce(
                WorkerView(epoch, view.max_delay_ms, view.known_nodes, self.loop_recipient)
            )
        self.metrics.consensus_epoch.set(epoch)
        listed = any(d.node_id == self.node_id for d in consensus.descriptors)
        log.info("consensus of epoch %d in force (this node %s listed)", epoch,
                 "is" if listed else "is not")

    def _descriptor(self, epoch: int) -> bytes:
        self.keys.ensure(epoch, 3)
        descriptor = sign_descriptor(
            self.identity,
            epoch=epoch,
            name=self.config.name,
            role=self.config.role,
            link_key=self.link_key.public_key,
            sphinx_keys=self.keys.public_keys(epoch, 3),
            addresses=self._addresses(),
            version=VERSION,
        )
        return descriptor.to_bytes()

    def _addresses(self) -> tuple[Address, ...]:
        """The node's link address; a gateway's client address second (SPEC §2.3)."""
        node = Address(self.config.public_host, self.public_port)
        if self.config.public_client is None:
            return (node,)
        host, port = self.config.public_client
        if port == 0 and self.bound_client_port is not None:
            port = self.bound_client_port
        return (node, Address(host, port))

    @property
    def public_port(self) -> int:
        if self.config.public_port == 0 and self.bound_port is not None:
            return self.bound_port
        return self.config.public_port

    async def _upload_descriptors(self) -> None:
        """Each epoch e, upload the descriptor of e+1 until the authorities' vote closes."""
        clock = self.config.clock
        while True:
            epoch = clock.epoch_at(self.now())
            target = epoch + 1
            vote_at = clock.schedule(target).vote_at / 1000
            delay = min(1.0, clock.length_ms / 1000 / 16)
            while self.now() < vote_at:
                accepted = await upload_descriptor(
                    self.config.authorities,
                    self._descriptor(target),
                    timeout=min(5.0, max(0.5, vote_at - self.now())),
                    client=self.http,
                )
                self.metrics.descriptor_uploads.labels(
                    "accepted" if accepted else "refused"
                ).inc()
                if accepted >= max(1, len(self.config.authorities) // 2 + 1):
                    break
                await trio.sleep(delay * self.rng.uniform(0.5, 1.0))
            await trio.sleep(max(0.0, clock.start(target) - self.now()) + 0.01)

    # --- links -----------------------------------------------------------------------------

    def _resolve(self, link_key: bytes) -> tuple[str, int] | None:
        peer = self._peer_by_link_key.get(link_key)
        return None if peer is None else (peer.host, peer.port)

    def _authorize_node(self, peer_static_key: bytes) -> bool:
        return peer_static_key in self._node_link_keys

    async def _serve_node(self, connection: LinkConnection) -> None:
        source = connection.peer_static_key  # its packets share one part of a full scheduler
        yielded = trio.current_time()
        while True:
            frame = await connection.receive()
            if frame.kind is FrameKind.PACKET:
                if self.workers is not None and self.pipeline is not None:
                    self._received["node"].inc()
                    await self.workers.submit(frame.body, trio.current_time(), source)
                else:
                    self._on_packet(frame.body, "node", source)
            elif frame.kind is FrameKind.CONTROL:
                self.metrics.count_link_event("unexpected_control")
            # Frames that came in one read are handed out without a checkpoint: give the
            # scheduler its turn at least every millisecond, or its packets leave late.
            now = trio.current_time()
            if now - yielded > 0.001:
                await trio.lowlevel.checkpoint()
                yielded = trio.current_time()

    async def _serve_client(self, connection: LinkConnection) -> None:
        assert self.mailboxes is not None
        limits = self.config.limits
        packets = TokenBucket(limits.client_packets, trio.current_time())
        source = connection.peer_static_key
        fetches = TokenBucket(limits.client_fetches, trio.current_time())

        def rates() -> tuple[float, float]:
            """A client's packets and polled frames a second under the consensus."""
            if self.consensus is None:
                return 0.0, 0.0
            p = self.consensus.parameters
            return (
                (p.lambda_p_mhz + p.lambda_l_mhz + p.lambda_d_mhz) / 1000,
                2 * (p.lambda_p_mhz + p.lambda_l_mhz) / 1000,
            )

        def on_packet(packet: bytes) -> None:
            # Past its budget (mixnode.rate_limit) a client link's packet is dropped before
            # anything is spent on it.
            if not packets.admit(trio.current_time(), rates()[0]):
                self._received["client"].inc()
                self.metrics.packets_dropped.labels("client_rate").inc()
                return
            self._on_packet(packet, "client", source)

        await serve_client(
            connection,
            self.mailboxes,
            on_packet=on_packet,
            count=lambda outcome: self.metrics.control_requests.labels(outcome).inc(),
            now=self.now,
            fetch_wait=lambda frames: fetches.reserve(trio.current_time(), rates()[1], frames),
            may_register=lambda: self._registrations.admit(
                connection.source, trio.current_time()
            ),
        )

    def _on_packet(self, packet: bytes, link: str, source: bytes) -> None:
        """Take one packet from a link; `source` is the peer's static key (never shown)."""
        self._received[link].inc()
        pipeline = self.pipeline
        if pipeline is None:  # no consensus yet: no keys to unwrap with
            self.metrics.packets_dropped.labels("not_ready").inc()
            return
        if self.workers is not None:
            self.workers.submit_nowait(packet, trio.current_time(), source)
            return
        self._on_outcome(pipeline.process(packet, trio.current_time()), 0.0, source)

    def _on_outcome(self, outcome: Outcome, arrival: float, source: Hashable) -> None:
        del arrival
        if isinstance(outcome, Dropped):
            self.metrics.packets_dropped.labels(outcome.reason).inc()
            return
        assert isinstance(outcome, Scheduled)
        # Refusals and evictions are counted by the scheduler.
        self.scheduler.push(outcome.deadline, outcome.action, source=source)

    def _on_due(self, actions: list[SendPacket | StoreMessage | LoopReturned]) -> None:
        for action in actions:
            if isinstance(action, SendPacket):
                self._send(action)
            elif isinstance(action, StoreMessage):
                try:
                    self._deliveries_in.send_nowait(action)
                except trio.WouldBlock:
                    self.metrics.messages_refused.labels("store_queue_full").inc()
            elif self.loops.returned(action.payload):
                self.metrics.loops_returned.inc()

    def _send(self, action: SendPacket) -> None:
        peer = self._peers.get(action.next_node_id)
        if peer is None:
            self.metrics.packets_dropped.labels("unknown_next_hop").inc()
            return
        if self.links.try_send(peer.link_key, Frame(FrameKind.PACKET, action.packet)):
            self._sent.inc()
        else:
            self.metrics.packets_dropped.labels("link_queue_full").inc()

    async def _store_deliveries(self) -> None:
        """Store due deliveries in batches, one transaction (one fsync) each, off the loop.
        A delivery to a mailbox that does not exist (most are a client's drop cover) is
        refused here, from memory, without the trip to a worker thread."""
        mailboxes = self.mailboxes
        assert mailboxes is not None
        unknown = self.metrics.messages_refused.labels(StoreOutcome.UNKNOWN_MAILBOX.value)
        async for first in self._deliveries_out:
            batch = [first]
            while len(batch) < 256:
                try:
                    batch.append(self._deliveries_out.receive_nowait())
                except trio.WouldBlock:
                    break
            wanted = [action for action in batch if mailboxes.may_exist(action.recipient_id)]
            if len(wanted) < len(batch):
                unknown.inc(len(batch) - len(wanted))
            if not wanted:
                continue
            batch = wanted
            # Shielded: a batch taken off the channel is stored even if the stop cancels
            # this task now (`_drain` stores only what is still in the channel; a delivery
            # handed to this task as the drain ended would otherwise be lost).
            with trio.CancelScope(shield=True):
                try:
                    acks = await trio.to_thread.run_sync(self._store_batch, batch)
                except MailboxStorageError:
                    acks = None
            if acks is None:
                # Disk full or failing: the batch is not stored, so no SURB-ACK goes back
                # and each sender sends again later. The gateway keeps forwarding.
                self._count_store_failure(len(batch))
                await trio.sleep(STORE_RETRY_SECONDS)
                continue
            for ack in acks:  # only now that the messages are on disk
                self._send(SendPacket(ack.first_hop, ack.packet))

    def _count_store_failure(self, messages: int) -> None:
        self.metrics.messages_refused.labels("store_failed").inc(messages)
        log.warning("the mailbox store failed (disk full?): %d messages not stored", messages)

    def _store_batch(self, batch: list[StoreMessage]) -> list[AckPacket]:
        """Store a batch in one transaction; the SURB-ACKs of what was stored."""
        assert self.mailboxes is not None
        outcomes = self.mailboxes.store_many(
            [(a.recipient_id, a.message.to_bytes()) for a in batch], now=self.now()
        )
        acks = []
        for action, outcome in zip(batch, outcomes, strict=True):
            if outcome is not StoreOutcome.STORED:
                self.metrics.messages_refused.labels(outcome.value).inc()
                continue
            self.metrics.messages_stored.inc()
            if action.surb_ack is not None:
                ack = ack_packet(self.config.geometry, action.surb_ack)
                self.metrics.surb_acks.labels("sent" if ack else "malformed").inc()
                if ack is not None:
                    acks.append(ack)
        return acks

    # --- cover, housekeeping ---------------------------------------------------------------

    async def _send_loops(self) -> None:
        while True:
            consensus = self.consensus
            rate = consensus.parameters.lambda_m if consensus is not None else 0.0
            if rate <= 0:
                await trio.sleep(1.0)
                continue
            await trio.sleep(self.rng.expovariate(rate))
            consensus = self.consensus
            if consensus is None:
                continue
            loop = self.loops.build(consensus, trio.current_time())
            if loop is None:
                continue
            self.metrics.loops_sent.inc()
            # Through the scheduler as cover: under overload it is dropped before real traffic.
            self.scheduler.push(  # refused or evicted: counted by the scheduler
                trio.current_time(), SendPacket(loop.first_hop, loop.packet, cover=True), cover=True
            )

    async def _housekeeping(self) -> None:
        alarmed = False
        counted: dict[str, int] = {}
        while True:
            await trio.sleep(1.0)
            self.metrics.queue_depth.set(len(self.delay_queue))
            for reason, total in self.delay_queue.drops.items():
                if total > counted.get(reason, 0):
                    self.metrics.packets_dropped.labels(reason).inc(total - counted.get(reason, 0))
                    counted[reason] = total
            missing = self.loops.expire(trio.current_time())
            if missing:
                self.metrics.loops_missing.inc(missing)
            ratio = self.loops.missing_ratio()
            self.metrics.loop_missing_ratio.set(ratio)
            resolved = self.loops.returned_count + self.loops.missing
            if resolved >= LOOP_ALARM_MINIMUM and ratio > LOOP_ALARM_RATIO:
                if not alarmed:
                    log.warning(
                        "%.0f%% of recent loops did not return: packets are being lost or held "
                        "back (possible n-1 attack); see docs/OPERATING.md",
                        100 * ratio,
                    )
                alarmed = True
            else:
                alarmed = False
            if self.mailboxes is not None:
                await self._mailbox_housekeeping(self.mailboxes)

    async def _mailbox_housekeeping(self, mailboxes: MailboxStore) -> None:
        """Expire unused mailboxes and update the gauges, off the loop (with many mailboxes
        the totals are a scan); a failing store is logged and tried again next time."""

        def expire_and_count() -> MailboxCounts:
            mailboxes.expire(now=self.now())
            return mailboxes.counts()

        try:
            counts = await trio.to_thread.run_sync(expire_and_count)
        except MailboxStorageError:
            log.warning("the mailbox store failed during housekeeping")
            return
        self.metrics.mailboxes.set(counts.mailboxes)
        self.metrics.mailbox_bytes.set(counts.payload_bytes)

