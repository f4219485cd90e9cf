"""Worker processes for the packet crypto: real processes, dispatch by α, replays caught."""

from __future__ import annotations

import random
from pathlib import Path

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from mixnode.crypto_workers import (
    FORWARD,
    OUTCOME,
    CryptoWorkers,
    WorkerView,
    decode_outcome,
    encode_outcome,
    record,
    split_records,
    worker_for,
)
from mixnode.key_ring import SphinxKeyRing
from mixnode.packet_pipeline import (
    Dropped,
    LoopReturned,
    Outcome,
    Scheduled,
    SendPacket,
)
from mixnode.replay_filter import HEADER_SIZE
from sphinx_packets import Geometry, NodeDelay, PathHop, Recipient, create_packet

GEOMETRY = Geometry(hops=5, user_payload_size=256)
EPOCH = 4


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=4096),
    st.booleans(),
)
def test_outcomes_cross_to_the_main_process_unchanged(
    deadline: float, node_id: bytes, packet: bytes, cover: bool
) -> None:
    outcomes: list[Outcome] = [
        Scheduled(deadline, SendPacket(node_id, packet, cover=cover)),
        Scheduled(deadline, LoopReturned(packet)),
        Dropped("replay"),
    ]
    buffer = bytearray(b"".join(encode_outcome(outcome) for outcome in outcomes))
    records = split_records(buffer)
    assert [decode_outcome(kind, body) for kind, body in records] == outcomes
    assert records[0][0] == (OUTCOME if cover else FORWARD)  # a loop of our own is rare


def test_records_split_whole_only() -> None:
    buffer = bytearray(record(1, b"abc") + record(4, b"") + record(2, b"xy")[:3])
    assert split_records(buffer) == [(1, b"abc"), (4, b"")]
    assert len(buffer) == 3
    buffer += record(2, b"xy")[3:]
    assert split_records(buffer) == [(2, b"xy")]


async def test_two_workers_process_packets_and_refuse_replays(tmp_path: Path) -> None:
    rng = random.Random(21)
    ring = SphinxKeyRing(tmp_path / "sphinx-keys", rng=rng.randbytes)
    ring.ensure(EPOCH - 1, 4)
    own_id, next_id = rng.randbytes(32), rng.randbytes(32)
    next_key = ring.public_keys(EPOCH)[0]  # any valid public key will do for the next hop
    outcomes: list[tuple[Outcome, float]] = []
    sources: dict[float, object] = {}
    busy: list[int] = []
    workers = CryptoWorkers(
        2, GEOMETRY, tmp_path, is_gateway=False, expected_items=10_000,
        on_outcome=lambda outcome, arrival, source: (
            outcomes.append((outcome, arrival)), sources.setdefault(arrival, source)
        ),
        on_busy=lambda: busy.append(1),
    )
    packets = []
    for index in range(20):
        path = [
            PathHop(own_id, ring.public_keys(EPOCH)[0], (NodeDelay(100 + index),)),
            PathHop(next_id, next_key, (Recipient(bytes(32)),)),
        ]
        packets.append(create_packet(GEOMETRY, path, rng.randbytes(256), rng=rng.randbytes))
    assert {worker_for(p, 2) for p in packets} == {0, 1}
    # The main process writes the workers' filter files out; the workers only open them.
    prepared = workers.replay_filters()
    for filters in prepared:
        for epoch in range(EPOCH - 1, EPOCH + 2):
            filters.prepare(epoch)
    headers = {path: path.read_bytes()[:HEADER_SIZE] for path in (tmp_path / "replay").rglob("*")
               if path.is_file()}
    assert len(headers) == 2 * 3
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(workers.run)
            workers.announce(WorkerView(EPOCH, 1000, frozenset({next_id}), bytes(32)))
            # With room, a hand-off is no checkpoint: one per packet cost the main process
            # more than the hand-off itself.
            with trio.testing.assert_no_checkpoints():
                for index, packet in enumerate(packets):
                    await workers.submit(packet, arrival=10.0 + index, source=f"peer {index}")
            workers.submit_nowait(packets[3], 50.0, b"k")  # a copy: its worker refuses it
            while len(outcomes) < 21:
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert not busy
    scheduled = [(o, a) for o, a in outcomes if isinstance(o, Scheduled)]
    assert len(scheduled) == 20
    for outcome, arrival in scheduled:
        assert isinstance(outcome.action, SendPacket) and outcome.action.next_node_id == next_id
        index = round(arrival - 10.0)
        assert outcome.deadline == arrival + (100 + index) / 1000  # the delay from arrival
        assert sources[arrival] == f"peer {index}"  # for the scheduler's fair shares
    assert [o for o, _ in outcomes if isinstance(o, Dropped)] == [Dropped("replay")]
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == ["worker-0", "worker-1"]
    for path, header in headers.items():
        assert path.read_bytes()[:HEADER_SIZE] == header  # opened as prepared, not recreated
