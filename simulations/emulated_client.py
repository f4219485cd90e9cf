"""An emulated client: the real `mixclient` cores driving one client's traffic.

What runs: `CoverSchedule` (the three Loopix Poisson streams at the consensus rates and the
send queue whose real packets leave only in payload slots), `routes` (forward, loop and
SURB-ACK paths with delays drawn as the client draws them), `e2e.seal`/`open_sealed`
(HPKE), `fragments` and `payload_framing` (frames and the SURB-ACK ‖ frame layout),
`sphinx_packets.create_packet`/`new_surb`/`decrypt_surb_payload`, `AckTracker`
(retransmission timers) and `Reassembler` on the receiving side. Links and mailbox fetches
are in-memory (`EmulatedLinks`).

The workload decides when real messages come to be: `saturated` keeps one message queued
at all times (created when its payload slot takes it, as the model has it), `poisson`
admits messages at the creation times the orchestrator drew (a stationary backlog at time
0 included, as in the model). A drop goes to a uniformly chosen gateway and a mailbox nobody
has, where the gateway discards it; a loop goes through every layer to the client's own
mailbox.

The wiretap learns what each packet is when it is emitted (ground truth only the log keeps).
`emissions` is the hook a deliberately broken client overrides.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from dataclasses import dataclass, field

import trio

from directory.consensus import Consensus
from mixclient.cover_streams import (
    CoverSchedule,
    Emission,
    SendQueue,
    StreamKind,
    StreamRates,
)
from mixclient.e2e import E2ESuite, open_sealed, seal
from mixclient.fragments import Reassembler, fragment
from mixclient.payload_framing import (
    Frame,
    FrameKind,
    decode_frame,
    encode_user_payload,
)
from mixclient.reliability import AckTracker, MessageFailed, Retransmit
from mixclient.routes import Route, forward_route, loop_route, surb_route
from mixnode.gateway_protocol import Delivery, MessageKind
from simulations.emulated_links import Carried, EmulatedLinks
from simulations.emulated_network import (
    MAILBOX_ID_SIZE,
    EmulatedClientIdentity,
    EmulatedNetwork,
)
from simulations.eventlog import PacketKind
from simulations.wiretap import Wiretap
from sphinx_packets import SURBKeys, create_packet, decrypt_surb_payload, new_surb

E2E_INFO = b"trimix-emulation-v1"
MESSAGE_ID_SIZE = 16
MAX_SURB_KEYS = 4096
"""SURB keys kept per client for ACKs still to come (oldest forgotten first)."""


@dataclass(frozen=True, slots=True)
class QueuedFragment:
    """A real packet waiting for a payload slot."""

    message_id: bytes = field(repr=False)
    frame: Frame = field(repr=False)
    recipient: int
    created: float | None
    """When the message came to be; None: saturated, created when its slot takes it."""


@dataclass(slots=True)
class ClientCounts:
    real_sent: int = 0
    retransmissions: int = 0
    failed: int = 0
    acks_received: int = 0
    delivered: int = 0
    loops_returned: int = 0
    drops_discarded: int = 0
    refused: Counter[str] = field(default_factory=Counter)


class ClientDriver:
    """One client: a sending task on its streams and a receiving task on its mailbox."""

    def __init__(
        self,
        identity: EmulatedClientIdentity,
        network: EmulatedNetwork,
        links: EmulatedLinks,
        tap: Wiretap,
        *,
        rng: random.Random,
        horizon: float,
        saturated: bool,
        message_times: list[float],
        surb_acks: bool,
    ) -> None:
        self.identity = identity
        self.index = identity.index
        self.network = network
        self.geometry = network.geometry
        self.consensus: Consensus = network.consensus
        self.links = links
        self.tap = tap
        self.horizon = horizon
        self.saturated = saturated
        self.surb_acks = surb_acks
        self._route_rng = random.Random(rng.randbytes(16))
        self._bytes_rng = random.Random(rng.randbytes(16))
        self.schedule: CoverSchedule[QueuedFragment] = CoverSchedule(
            StreamRates.from_parameters(self.consensus.parameters),
            rng=random.Random(rng.randbytes(16)),
            now=0.0,
        )
        self.real_queue: SendQueue[QueuedFragment] = self.schedule.queue
        """Where real packets wait: the payload stream's queue (a broken client may differ)."""
        self._arrivals: deque[float] = deque(sorted(message_times))
        self.tracker = AckTracker()
        self._pending: dict[bytes, tuple[QueuedFragment, ...]] = {}
        self._surb_keys: dict[bytes, SURBKeys] = {}
        self.reassembler = Reassembler(self.geometry)
        self.inbox = links.attach_client(self.index)
        self.counts = ClientCounts()

    @property
    def backlog(self) -> int:
        """Deliveries in the inbox, not yet processed."""
        return self.inbox.statistics().current_buffer_used

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sends until the horizon, receives until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive)
            task_status.started()
            await self._send_until_horizon()

    # -- sending ------------------------------------------------------------------------------

    async def _send_until_horizon(self) -> None:
        while True:
            now = trio.current_time()
            self._admit(now)
            self._retransmit(now)
            if self.saturated and not len(self.real_queue):
                self._queue_message(None)
            for emission in self.emissions(now):
                self._emit(emission)
            wake = min(self.next_event(), self.horizon)
            if self._arrivals and len(self.tracker) < self.tracker.max_messages:
                wake = min(wake, self._arrivals[0])
            deadline = self.tracker.next_deadline()
            if deadline is not None:
                wake = min(wake, deadline)
            if now >= self.horizon:
                return
            await trio.sleep_until(max(wake, now))

    def emissions(self, now: float) -> list[Emission[QueuedFragment]]:
        """What the client puts on its link at `now` (the real schedule)."""
        return self.schedule.due(now)

    def next_event(self) -> float:
        event = self.schedule.streams.next_event()
        return math.inf if event is None else event.at

    def _admit(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] <= now and len(self.tracker) < self.tracker.max_messages:
            self._queue_message(self._arrivals.popleft())

    def _queue_message(self, created: float | None) -> None:
        """A new real message to a uniformly chosen other client: sealed, fragmented, queued."""
        clients = len(self.network.clients)
        other = self._route_rng.randrange(clients - 1)
        recipient = other + (other >= self.index)
        peer = self.network.clients[recipient]
        body = self._bytes_rng.randbytes(32)
        sealed = seal(E2ESuite.X25519, peer.e2e.public_key, body, info=E2E_INFO)
        message_id = self._bytes_rng.randbytes(MESSAGE_ID_SIZE)
        frames = fragment(message_id, FrameKind.DATA, sealed, self.geometry)
        queued = tuple(QueuedFragment(message_id, frame, recipient, created) for frame in frames)
        if self.surb_acks:
            self.tracker.add_message(message_id, len(frames))
            self._pending[message_id] = queued
        for item in queued:
            if not self.real_queue.put(item):
                self.counts.refused["send_queue_full"] += 1

    def _retransmit(self, now: float) -> None:
        for action in self.tracker.due(now):
            pending = self._pending.get(action.message_id)
            if isinstance(action, MessageFailed):
                self.counts.failed += 1
                self._pending.pop(action.message_id, None)
            elif isinstance(action, Retransmit) and pending is not None:
                self.counts.retransmissions += 1
                self.real_queue.put(pending[action.fragment_index], urgent=True)

    def _emit(self, emission: Emission[QueuedFragment]) -> None:
        at = emission.at
        item = emission.packet
        if item is not None and (
            not self.surb_acks or self.tracker.is_pending(item.message_id, item.frame.fragment_index)
        ):
            self._emit_real(item, at)
        elif emission.kind is StreamKind.LOOP:
            self._emit_loop(at)
        else:
            # A drop: the payload slot had nothing (or a packet acknowledged while it waited).
            self._emit_drop(at)

    def _emit_loop(self, at: float) -> None:
        own = self.identity
        route = loop_route(self.consensus, own.gateway_id, own.mailbox_id, self._route_rng)
        frame = Frame(FrameKind.LOOP, self._bytes_rng.randbytes(MESSAGE_ID_SIZE), 0, 1, 0, b"")
        trace = self.tap.emitted(PacketKind.LOOP, self.index, self.index, at, at)
        self._send(route, encode_user_payload(self.geometry, frame), trace)

    def _emit_drop(self, at: float) -> None:
        """Through every layer to a uniformly chosen gateway and a mailbox nobody has (as
        `mixclient.client` sends it): the gateway discards it."""
        gateway = self._route_rng.choice(self.consensus.gateways)
        nobody = self._bytes_rng.randbytes(MAILBOX_ID_SIZE)
        route = forward_route(self.consensus, self.identity.gateway_id, gateway, nobody, self._route_rng)
        frame = Frame(FrameKind.DROP, self._bytes_rng.randbytes(MESSAGE_ID_SIZE), 0, 1, 0, b"")
        trace = self.tap.emitted(PacketKind.DROP, self.index, -1, at, at)
        self._send(route, encode_user_payload(self.geometry, frame), trace)

    def _emit_real(self, item: QueuedFragment, at: float) -> None:
        peer = self.network.clients[item.recipient]
        route = forward_route(
            self.consensus, self.identity.gateway_id, peer.gateway_id, peer.mailbox_id, self._route_rng
        )
        surb_bytes = None
        if self.surb_acks:
            ack_route = surb_route(
                self.consensus, self.identity.gateway_id, self.identity.mailbox_id, self._route_rng
            )
            surb, keys = new_surb(self.geometry, ack_route.hops, rng=self._bytes_rng.randbytes)
            surb_bytes = surb.to_bytes()
            self.tracker.sent(
                item.message_id,
                item.frame.fragment_index,
                keys.surb_id,
                at,
                forward_delay_ms=route.delay_ms,
                ack_delay_ms=ack_route.delay_ms,
            )
            self._surb_keys[keys.surb_id] = keys
            while len(self._surb_keys) > MAX_SURB_KEYS:
                del self._surb_keys[next(iter(self._surb_keys))]
        created = at if item.created is None else item.created
        trace = self.tap.emitted(PacketKind.REAL, self.index, item.recipient, created, at)
        self.counts.real_sent += 1
        self._send(route, encode_user_payload(self.geometry, item.frame, surb_bytes), trace)

    def _send(self, route: Route, user_payload: bytes, trace: int) -> None:
        packet = create_packet(self.geometry, route.hops, user_payload, rng=self._bytes_rng.randbytes)
        self.links.to_node(route.first_hop, Carried(trace, packet))

    # -- receiving ----------------------------------------------------------------------------

    async def _receive(self) -> None:
        async for delivery in self.inbox:
            self._on_delivery(delivery, trio.current_time())

    def _on_delivery(self, delivery: Delivery, now: float) -> None:
        if delivery.kind is MessageKind.SURB_REPLY:
            keys = self._surb_keys.pop(delivery.surb_id, None)
            if keys is None:
                self.counts.refused["unknown_surb"] += 1
                return
            decrypt_surb_payload(self.geometry, keys, delivery.surb_id, delivery.payload)
            acked = self.tracker.on_ack(delivery.surb_id)
            if acked is not None:
                self.counts.acks_received += 1
                if acked.message_done:
                    self._pending.pop(acked.message_id, None)
            return
        frame = decode_frame(self.geometry, delivery.payload)
        if frame.kind is FrameKind.LOOP:
            self.counts.loops_returned += 1
        elif frame.kind is FrameKind.DROP:
            self.counts.drops_discarded += 1
        else:
            message = self.reassembler.add(frame, now)
            if message is not None:
                open_sealed(self.identity.e2e, message, info=E2E_INFO)
                self.counts.delivered += 1
