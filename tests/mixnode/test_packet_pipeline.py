"""The node's packet pipeline, without sockets: unwrap, replay, delay cap, routing decisions."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mixnode.gateway_protocol import MessageKind
from mixnode.packet_pipeline import (
    Dropped,
    EpochView,
    LoopReturned,
    PacketPipeline,
    Scheduled,
    SendPacket,
    StoreMessage,
)
from mixnode.replay_filter import ReplayFilters
from mixnode.surb_ack import ack_packet
from sphinx_packets import (
    Geometry,
    NodeDelay,
    NodeKeys,
    PathHop,
    Recipient,
    SphinxKey,
    create_packet,
    create_surb_reply,
    new_surb,
)

GEOMETRY = Geometry(hops=5, user_payload_size=256)
EPOCH = 7


class Node:
    def __init__(self, rng: random.Random) -> None:
        self.node_id = rng.randbytes(32)
        self.key = SphinxKey.generate(EPOCH, rng=rng.randbytes)
        self.previous = SphinxKey.generate(EPOCH - 1, rng=rng.randbytes)

    def hop(self, *commands: object, epoch: int = EPOCH) -> PathHop:
        key = self.key if epoch == EPOCH else self.previous
        return PathHop(self.node_id, key.public_key, tuple(commands))  # type: ignore[arg-type]


@pytest.fixture
def rng() -> random.Random:
    return random.Random(11)


def _pipeline(
    node: Node, tmp_path: Path, known: list[bytes], *, gateway: bool, loop: bytes = bytes(32)
) -> tuple[PacketPipeline, ReplayFilters]:
    replay = ReplayFilters(tmp_path / "replay", expected_items=10_000)
    for epoch in (EPOCH - 1, EPOCH):
        replay.ensure(epoch)
    view = EpochView(EPOCH, NodeKeys((node.key, node.previous)), 1000, frozenset(known))
    return PacketPipeline(GEOMETRY, replay, view, loop_recipient=loop, is_gateway=gateway), replay


def _payload(rng: random.Random) -> bytes:
    return rng.randbytes(GEOMETRY.user_payload_size)


def test_forward_is_scheduled_after_the_drawn_delay(rng: random.Random, tmp_path: Path) -> None:
    a, b = Node(rng), Node(rng)
    pipeline, _ = _pipeline(a, tmp_path, [b.node_id], gateway=False)
    packet = create_packet(GEOMETRY, [a.hop(NodeDelay(250)), b.hop(Recipient(bytes(32)))], _payload(rng))
    outcome = pipeline.process(packet, now=100.0)
    assert isinstance(outcome, Scheduled)
    assert outcome.deadline == pytest.approx(100.25)
    assert isinstance(outcome.action, SendPacket)
    assert outcome.action.next_node_id == b.node_id
    assert len(outcome.action.packet) == GEOMETRY.packet_size


def test_replay_is_dropped_also_after_a_restart(rng: random.Random, tmp_path: Path) -> None:
    a, b = Node(rng), Node(rng)
    pipeline, replay = _pipeline(a, tmp_path, [b.node_id], gateway=False)
    packet = create_packet(GEOMETRY, [a.hop(NodeDelay(1)), b.hop(Recipient(bytes(32)))], _payload(rng))
    assert isinstance(pipeline.process(packet, 0.0), Scheduled)
    assert pipeline.process(packet, 0.0) == Dropped("replay")
    replay.close()
    restarted, _ = _pipeline(a, tmp_path, [b.node_id], gateway=False)
    assert restarted.process(packet, 0.0) == Dropped("replay")


def test_previous_epoch_key_still_works(rng: random.Random, tmp_path: Path) -> None:
    a, b = Node(rng), Node(rng)
    pipeline, _ = _pipeline(a, tmp_path, [b.node_id], gateway=False)
    path = [a.hop(NodeDelay(5), epoch=EPOCH - 1), b.hop(Recipient(bytes(32)))]
    assert isinstance(pipeline.process(create_packet(GEOMETRY, path, _payload(rng)), 0.0), Scheduled)


def test_refusals_are_counted_by_reason(rng: random.Random, tmp_path: Path) -> None:
    a, b, stranger = Node(rng), Node(rng), Node(rng)
    pipeline, _ = _pipeline(a, tmp_path, [b.node_id], gateway=False)
    unknown = create_packet(GEOMETRY, [a.hop(NodeDelay(1)), stranger.hop(Recipient(bytes(32)))], _payload(rng))
    assert pipeline.process(unknown, 0.0) == Dropped("unknown_next_hop")
    slow = create_packet(GEOMETRY, [a.hop(NodeDelay(1001)), b.hop(Recipient(bytes(32)))], _payload(rng))
    assert pipeline.process(slow, 0.0) == Dropped("delay_too_long")
    assert pipeline.process(slow, 0.0) == Dropped("replay")  # its α was recorded
    not_ours = create_packet(GEOMETRY, [b.hop(NodeDelay(1)), a.hop(Recipient(bytes(32)))], _payload(rng))
    assert pipeline.process(not_ours, 0.0) == Dropped("mac")
    assert pipeline.process(b"\x00" * 10, 0.0) == Dropped("malformed")
    assert pipeline.process(bytes(GEOMETRY.packet_size), 0.0) == Dropped("malformed")


def test_exit_gateway_stores_forward_payloads_and_surb_replies(rng: random.Random, tmp_path: Path) -> None:
    gateway = Node(rng)
    pipeline, _ = _pipeline(gateway, tmp_path, [], gateway=True)
    mailbox = rng.randbytes(32)
    payload = _payload(rng)
    packet = create_packet(GEOMETRY, [gateway.hop(Recipient(mailbox), NodeDelay(40))], payload)
    outcome = pipeline.process(packet, now=1.0)
    assert isinstance(outcome, Scheduled) and isinstance(outcome.action, StoreMessage)
    assert outcome.deadline == pytest.approx(1.04)
    assert outcome.action.recipient_id == mailbox
    assert outcome.action.message.kind is MessageKind.FORWARD
    assert outcome.action.message.payload == payload

    surb, keys = new_surb(GEOMETRY, [gateway.hop(Recipient(mailbox))], rng=rng.randbytes)
    _, reply = create_surb_reply(GEOMETRY, surb, payload)
    outcome = pipeline.process(reply, now=2.0)
    assert isinstance(outcome, Scheduled) and isinstance(outcome.action, StoreMessage)
    assert outcome.action.message.kind is MessageKind.SURB_REPLY
    assert outcome.action.message.surb_id == keys.surb_id


def test_tampered_payload_is_caught_at_the_exit(rng: random.Random, tmp_path: Path) -> None:
    gateway = Node(rng)
    pipeline, _ = _pipeline(gateway, tmp_path, [], gateway=True)
    packet = bytearray(create_packet(GEOMETRY, [gateway.hop(Recipient(bytes(32)))], _payload(rng)))
    packet[-1] ^= 1
    assert pipeline.process(bytes(packet), 0.0) == Dropped("payload_tag")
    assert pipeline.process(bytes(packet), 0.0) == Dropped("replay")


def test_mix_delivers_only_its_own_loops(rng: random.Random, tmp_path: Path) -> None:
    mix = Node(rng)
    loop_id = rng.randbytes(32)
    pipeline, _ = _pipeline(mix, tmp_path, [], gateway=False, loop=loop_id)
    loop = create_packet(GEOMETRY, [mix.hop(Recipient(loop_id), NodeDelay(3))], _payload(rng))
    outcome = pipeline.process(loop, 0.0)
    assert isinstance(outcome, Scheduled) and isinstance(outcome.action, LoopReturned)
    other = create_packet(GEOMETRY, [mix.hop(Recipient(rng.randbytes(32)))], _payload(rng))
    assert pipeline.process(other, 0.0) == Dropped("not_a_gateway")


def test_exit_gateway_separates_the_surb_ack_from_the_frame(rng: random.Random, tmp_path: Path) -> None:
    geometry = Geometry.default()
    gateway, hop = Node(rng), Node(rng)
    replay = ReplayFilters(tmp_path / "replay", expected_items=10_000)
    replay.ensure(EPOCH)
    view = EpochView(EPOCH, NodeKeys((gateway.key,)), 1000, frozenset())
    pipeline = PacketPipeline(
        geometry, replay, view, loop_recipient=rng.randbytes(32), is_gateway=True
    )
    surb, keys = new_surb(geometry, [hop.hop(Recipient(rng.randbytes(32)))], rng=rng.randbytes)
    frame = rng.randbytes(geometry.user_payload_size - geometry.surb_size)
    packet = create_packet(geometry, [gateway.hop(Recipient(bytes(32)))], surb.to_bytes() + frame)
    outcome = pipeline.process(packet, 0.0)
    assert isinstance(outcome, Scheduled) and isinstance(outcome.action, StoreMessage)
    assert outcome.action.surb_ack == surb.to_bytes()
    assert outcome.action.message.payload == frame
    ack = ack_packet(geometry, outcome.action.surb_ack)
    assert ack is not None and ack.first_hop == hop.node_id
    assert ack_packet(geometry, b"\x01" * 10) is None
    no_ack = create_packet(geometry, [gateway.hop(Recipient(bytes(32)))], bytes(geometry.surb_size) + frame)
    outcome = pipeline.process(no_ack, 0.0)
    assert isinstance(outcome, Scheduled) and isinstance(outcome.action, StoreMessage)
    assert outcome.action.surb_ack is None and keys.surb_id
