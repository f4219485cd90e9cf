"""What a node does with one incoming Sphinx packet: the sans-I/O heart of a mix or gateway.

    packet → unwrap (keys of the previous, current and next epoch; replay check right after
    the MAC; delay cap from the consensus) → record the replay tag → decide:

    Forward to a node of the consensus  → send it after the delay the sender chose
    Deliver to this node's loop id      → one of our own loops came back (after its delay)
    Deliver / SURB reply at a gateway   → store it in the recipient's mailbox (after its delay)
    anything else                        → drop, counted by reason

The delay is counted from arrival. Time is passed in; nothing here does I/O. The caller puts
`Scheduled` actions on the scheduler and counts `Dropped` reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from mixnode.gateway_protocol import Delivery, MessageKind
from mixnode.surb_ack import split_surb_ack
from sphinx_packets import (
    Deliver,
    DeliverSurbReply,
    Forward,
    Geometry,
    NodeKeys,
    SphinxError,
    unwrap,
)
from sphinx_packets.errors import (
    DelayTooLongError,
    InvalidCommandError,
    InvalidMACError,
    PayloadTagError,
    ReplayError,
)
from sphinx_packets.geometry import SURB_ID_SIZE

DROP_REASONS = (
    "malformed",
    "mac",
    "replay",
    "delay_too_long",
    "invalid_command",
    "payload_tag",
    "unknown_next_hop",
    "not_a_gateway",
)
"""Why a packet is dropped on arrival (metric label values; none names a peer)."""


class ReplayCheck(Protocol):
    def seen(self, tag: bytes, epoch: int | None = None) -> bool: ...

    def record(self, tag: bytes, epoch: int) -> None: ...


@dataclass(frozen=True, slots=True)
class EpochView:
    """What the pipeline takes from the consensus of the current epoch."""

    epoch: int
    keys: NodeKeys = field(repr=False)
    max_delay_ms: int
    known_nodes: frozenset[bytes] = field(repr=False)
    """Node ids of the current and previous consensus: the next hops we forward to."""


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send `packet` to node `next_node_id`."""

    next_node_id: bytes = field(repr=False)
    packet: bytes = field(repr=False)
    cover: bool = False
    """True for this node's own loops: dropped first under overload."""


@dataclass(frozen=True, slots=True)
class StoreMessage:
    """Store `message` in the mailbox `recipient_id` (exit gateway); once stored, answer on
    `surb_ack` if there is one (mixnode.surb_ack)."""

    recipient_id: bytes = field(repr=False)
    message: Delivery
    surb_ack: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LoopReturned:
    """One of this node's loops came back; `payload` identifies it."""

    payload: bytes = field(repr=False)


Action = SendPacket | StoreMessage | LoopReturned


@dataclass(frozen=True, slots=True)
class Scheduled:
    deadline: float
    action: Action


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: str


Outcome = Scheduled | Dropped


class PacketPipeline:
    """Unwraps and routes packets for one node."""

    def __init__(
        self,
        geometry: Geometry,
        replay: ReplayCheck,
        view: EpochView,
        *,
        loop_recipient: bytes,
        is_gateway: bool,
    ) -> None:
        self.geometry = geometry
        self.replay = replay
        self.view = view
        self.loop_recipient = loop_recipient
        self.is_gateway = is_gateway

    def process(self, packet: bytes, now: float) -> Outcome:
        view = self.view
        try:
            result = unwrap(
                self.geometry,
                view.keys,
                packet,
                is_replay_in_epoch=self.replay.seen,  # only the filter of the key that verified
                max_delay_ms=view.max_delay_ms,
            )
        except SphinxError as error:
            return self._refused(error)
        assert result.key_epoch is not None
        self.replay.record(result.replay_tag, result.key_epoch)
        if isinstance(result, Forward):
            if result.next_node_id not in view.known_nodes:
                return Dropped("unknown_next_hop")
            return Scheduled(
                now + result.delay_ms / 1000, SendPacket(result.next_node_id, result.packet)
            )
        deadline = now + result.delay_ms / 1000
        if isinstance(result, Deliver) and result.recipient_id == self.loop_recipient:
            return Scheduled(deadline, LoopReturned(result.payload))
        if not self.is_gateway:
            return Dropped("not_a_gateway")
        if isinstance(result, DeliverSurbReply):
            stored = Delivery(MessageKind.SURB_REPLY, result.surb_id, result.payload)
            return Scheduled(deadline, StoreMessage(result.recipient_id, stored))
        surb_ack, frame = split_surb_ack(self.geometry, result.payload)
        stored = Delivery(MessageKind.FORWARD, bytes(SURB_ID_SIZE), frame)
        return Scheduled(deadline, StoreMessage(result.recipient_id, stored, surb_ack))

    def _refused(self, error: SphinxError) -> Dropped:
        tag = getattr(error, "replay_tag", None)
        epoch = getattr(error, "key_epoch", None)
        if tag is not None and epoch is not None and not isinstance(error, ReplayError):
            # The MAC verified: remember the α so that a copy is refused cheaply.
            self.replay.record(tag, epoch)
        return Dropped(_reason(error))


def _reason(error: SphinxError) -> str:
    if isinstance(error, ReplayError):
        return "replay"
    if isinstance(error, DelayTooLongError):
        return "delay_too_long"
    if isinstance(error, PayloadTagError):
        return "payload_tag"
    if isinstance(error, InvalidMACError):
        return "mac"
    if isinstance(error, InvalidCommandError) and getattr(error, "replay_tag", None):
        return "invalid_command"
    return "malformed"


def known_nodes(*consensus_node_ids: Iterable[bytes]) -> frozenset[bytes]:
    """The union of the node ids of one or more consensuses."""
    union: set[bytes] = set()
    for ids in consensus_node_ids:
        union.update(ids)
    return frozenset(union)
