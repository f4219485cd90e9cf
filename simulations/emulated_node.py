"""An emulated mix or gateway: the real `mixnode` cores behind an in-memory inbox.

What runs is what the daemon runs: `PacketPipeline` (Sphinx unwrap with the node's key,
replay check in a real `ReplayFilters` Bloom file, delay cap, routing decision),
`DelayScheduler` driven by one `SchedulerTask`, `LoopCover` at λ_M (a loop goes onto the
scheduler as cover, due at once, as `mixnode.node_daemon` sends it), and at a gateway the
SURB-ACK answer (`mixnode.surb_ack.ack_packet`) once a message is stored. The daemon's
sockets, Noise links, SQLite mailboxes and metrics are replaced by `EmulatedLinks` and an
in-memory hand-over to the recipient client.

The wiretap is told what an observer of the links sees (a packet entering and leaving a
pool) and, apart from that view, which pool the packet is in: at a gateway, a packet that
goes on to a mix is in the ingress pool, one stored in a mailbox in the egress pool. A
node's own loop is consumed when it comes back: the hold the real code gives it there is
invisible on the links, so the log ends it on arrival.

`pipeline_factory` lets a deliberately broken variant replace the pipeline
(`simulations.broken_variants`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import trio

from directory.consensus import Consensus
from mixnode.loop_cover import LoopCover
from mixnode.packet_pipeline import (
    Action,
    Dropped,
    EpochView,
    LoopReturned,
    PacketPipeline,
    SendPacket,
    StoreMessage,
    known_nodes,
)
from mixnode.replay_filter import ReplayFilters
from mixnode.scheduler import DelayScheduler, SchedulerTask
from mixnode.surb_ack import ack_packet
from simulations.emulated_links import Carried, EmulatedLinks
from simulations.emulated_network import EmulatedNetwork, EmulatedNode
from simulations.eventlog import PacketKind
from simulations.wiretap import Wiretap

SCHEDULER_CAPACITY = 200_000
LOOP_RECIPIENT_SIZE = 32

PipelineFactory = Callable[..., PacketPipeline]

Item = tuple[int | None, Action]


class NodeDriver:
    """One node: its inbox task, its scheduler task and its loop task."""

    def __init__(
        self,
        node: EmulatedNode,
        network: EmulatedNetwork,
        links: EmulatedLinks,
        tap: Wiretap,
        *,
        mailboxes: dict[bytes, int],
        replay_directory: Path,
        expected_packets: int,
        horizon: float,
        rng: random.Random,
        surb_acks: bool,
        pipeline_factory: PipelineFactory = PacketPipeline,
    ) -> None:
        self.node = node
        self.geometry = network.geometry
        self.consensus: Consensus = network.consensus
        self.links = links
        self.tap = tap
        self.mailboxes = mailboxes
        self.horizon = horizon
        self.surb_acks = surb_acks
        self._interval_rng = random.Random(rng.randbytes(16))
        self.loop_recipient = rng.randbytes(LOOP_RECIPIENT_SIZE)
        self.replay = ReplayFilters(replay_directory, expected_items=max(1000, expected_packets))
        parameters = self.consensus.parameters
        for key in node.keys:
            self.replay.ensure(key.epoch)
        view = EpochView(
            self.consensus.epoch,
            node.keys,
            parameters.max_delay_ms,
            known_nodes(self.consensus.descriptor_ids),
        )
        self.pipeline = pipeline_factory(
            self.geometry,
            self.replay,
            view,
            loop_recipient=self.loop_recipient,
            is_gateway=node.is_gateway,
        )
        self.scheduler: SchedulerTask[Item] = SchedulerTask(DelayScheduler(SCHEDULER_CAPACITY))
        self.loops = LoopCover(self.geometry, node.node_id, self.loop_recipient, rng=random.Random(rng.randbytes(16)))
        self.inbox = links.attach_node(node.node_id)
        self.dropped: Counter[str] = Counter()
        self.unwrapped = 0
        self.acks_sent = 0
        self.discarded = 0
        self.loops_returned = 0

    @property
    def backlog(self) -> int:
        """Packets in the inbox, not yet processed."""
        return self.inbox.statistics().current_buffer_used

    def close(self) -> None:
        self.replay.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Runs until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.scheduler.run, self._on_due)
            nursery.start_soon(self._receive)
            if self.consensus.parameters.lambda_m > 0:
                nursery.start_soon(self._send_loops)
            task_status.started()

    async def _receive(self) -> None:
        tap, pipeline, node = self.tap, self.pipeline, self.node
        async for carried in self.inbox:
            now = trio.current_time()
            outcome = pipeline.process(carried.packet, now)
            self.unwrapped += 1
            if isinstance(outcome, Dropped):
                self.dropped[outcome.reason] += 1
                continue
            action, trace = outcome.action, carried.trace
            if trace is not None:
                if isinstance(action, LoopReturned):
                    tap.received(trace, now)
                else:
                    pool = node.egress_pool if isinstance(action, StoreMessage) else node.pool
                    tap.entered(trace, pool, now)
            self.scheduler.push(outcome.deadline, (trace, action))  # refusals counted by the scheduler

    def _on_due(self, items: list[Item]) -> None:
        now = trio.current_time()
        for trace, action in items:
            if isinstance(action, SendPacket):
                if trace is not None:
                    self.tap.left(trace, now)
                self.links.to_node(action.next_node_id, Carried(trace, action.packet))
            elif isinstance(action, StoreMessage):
                self._store(trace, action, now)
            elif self.loops.returned(action.payload):
                self.loops_returned += 1

    def _store(self, trace: int | None, action: StoreMessage, now: float) -> None:
        if trace is not None:
            self.tap.left(trace, now)
            self.tap.received(trace, now + self.links.latency)
        client = self.mailboxes.get(action.recipient_id)
        if client is None:
            self.discarded += 1  # a drop, to a mailbox nobody has: the store refuses it
            return
        self.links.to_client(client, action.message)
        if self.surb_acks and action.surb_ack is not None:
            ack = ack_packet(self.geometry, action.surb_ack)
            if ack is None:
                self.dropped["malformed_surb_ack"] += 1
                return
            self.acks_sent += 1
            self.links.to_node(ack.first_hop, Carried(None, ack.packet))

    async def _send_loops(self) -> None:
        rate = self.consensus.parameters.lambda_m
        kind = PacketKind.GATEWAY_LOOP if self.node.is_gateway else PacketKind.MIX_LOOP
        at = self._interval_rng.expovariate(rate)
        while at <= self.horizon:
            await trio.sleep_until(at)
            loop = self.loops.build(self.consensus, at)
            if loop is not None:
                trace = self.tap.emitted(kind, self.node.pool, -1, at, at)
                self.scheduler.push(at, (trace, SendPacket(loop.first_hop, loop.packet, cover=True)), cover=True)
            at += self._interval_rng.expovariate(rate)
