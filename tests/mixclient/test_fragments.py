"""Fragmentation and reassembly: exactly once, duplicates and conflicts refused, bounded."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mixclient.e2e import E2EKeyPair, open_sealed, seal
from mixclient.fragments import (
    DEFAULT_EXPIRY_SECONDS,
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_USER_MESSAGE_SIZE,
    Reassembler,
    fragment,
)
from mixclient.payload_framing import (
    Frame,
    FrameKind,
    FramingError,
    decode_frame,
    encode_frame,
    frame_data_size,
)
from sphinx_packets import Geometry

GEOMETRY = Geometry.default()
ROOM = frame_data_size(GEOMETRY)


def _id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _count(reassembler: Reassembler, outcome: str) -> int:
    return reassembler.counters.get(f"reassembly.{outcome}")


@pytest.mark.parametrize(
    ("size", "count", "last"),
    [(0, 1, 0), (1, 1, 1), (ROOM, 1, ROOM), (ROOM + 1, 2, 1), (3 * ROOM, 3, ROOM)],
)
def test_fragment_shapes(size: int, count: int, last: int) -> None:
    frames = fragment(_id(1), FrameKind.DATA, _data(size), GEOMETRY)
    assert len(frames) == count
    assert [f.fragment_index for f in frames] == list(range(count))
    assert all(f.fragment_count == count and f.total_length == size for f in frames)
    assert all(len(f.data) == ROOM for f in frames[:-1]) and len(frames[-1].data) == last
    assert b"".join(f.data for f in frames) == _data(size)
    for frame in frames:
        assert decode_frame(GEOMETRY, encode_frame(GEOMETRY, frame)) == frame


def test_fragment_bad_input() -> None:
    with pytest.raises(FramingError, match="must be bytes"):
        fragment(_id(1), FrameKind.DATA, "text", GEOMETRY)  # type: ignore[arg-type]
    with pytest.raises(FramingError, match="message id"):
        fragment(b"short", FrameKind.DATA, b"x", GEOMETRY)
    with pytest.raises(FramingError, match="Geometry"):
        fragment(_id(1), FrameKind.DATA, b"x", None)  # type: ignore[arg-type]


def test_a_1_mib_sealed_message_fits_the_default_limit() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE >= MAX_USER_MESSAGE_SIZE + 1136
    keypair = E2EKeyPair.generate()
    sealed = seal(keypair.suite, keypair.public_key, _data(1 << 20), info=b"t")
    frames = fragment(_id(9), FrameKind.DATA, sealed, GEOMETRY)
    assert len(frames) == 513
    reassembler = Reassembler(GEOMETRY)
    results = [
        reassembler.add(decode_frame(GEOMETRY, encode_frame(GEOMETRY, f)), 0.0) for f in frames
    ]
    assert results[:-1] == [None] * 512
    assert open_sealed(keypair, results[-1], info=b"t") == _data(1 << 20)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 1 << 20), seed=st.integers(0, 2**32 - 1))
@example(size=1, seed=0)
@example(size=ROOM, seed=1)
@example(size=ROOM + 1, seed=2)
@example(size=1 << 20, seed=3)
def test_shuffled_and_duplicated_fragments_reassemble_exactly_once(size: int, seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    frames = fragment(_id(seed), FrameKind.DATA, data, GEOMETRY)
    wire = [encode_frame(GEOMETRY, f) for f in frames]
    arrivals = [w for w in wire for _ in range(rng.randint(1, 3))]
    rng.shuffle(arrivals)
    # The fragment whose first copy comes last completes the message.
    first_seen: dict[bytes, int] = {}
    for position, w in enumerate(arrivals):
        first_seen.setdefault(w, position)
    completing = max(first_seen.values())

    reassembler = Reassembler(GEOMETRY)
    delivered = []
    for position, w in enumerate(arrivals):
        result = reassembler.add(decode_frame(GEOMETRY, w), now=position * 0.01)
        if result is not None:
            delivered.append((position, result))
    assert delivered == [(completing, data)]
    duplicates = len(arrivals) - len(frames)
    before = arrivals[: completing + 1]
    assert _count(reassembler, "refused.duplicate_fragment") == len(before) - len(set(before))
    assert _count(reassembler, "refused.already_delivered") == duplicates - (
        len(before) - len(set(before))
    )
    assert reassembler.partial_messages == 0 and reassembler.buffered_bytes == 0


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(1, 6 * ROOM), min_size=2, max_size=8), seed=st.integers(0, 999))
def test_interleaved_messages(sizes: list[int], seed: int) -> None:
    rng = random.Random(seed)
    messages = {_id(i): rng.randbytes(size) for i, size in enumerate(sizes)}
    arrivals = [
        f for mid, data in messages.items() for f in fragment(mid, FrameKind.DATA, data, GEOMETRY)
    ]
    arrivals += rng.sample(arrivals, len(arrivals) // 3)
    rng.shuffle(arrivals)
    reassembler = Reassembler(GEOMETRY)
    out = [r for f in arrivals if (r := reassembler.add(f, 0.0)) is not None]
    assert sorted(out) == sorted(messages.values())


def test_conflicting_fragments_are_refused_and_the_first_kept() -> None:
    data = _data(3 * ROOM)
    frames = fragment(_id(1), FrameKind.DATA, data, GEOMETRY)
    reassembler = Reassembler(GEOMETRY)
    assert reassembler.add(frames[0], 0.0) is None
    forged = Frame(FrameKind.DATA, _id(1), 0, 3, 3 * ROOM, b"\x00" * ROOM)
    assert reassembler.add(forged, 0.0) is None
    other_length = Frame(FrameKind.DATA, _id(1), 1, 3, 3 * ROOM - 1, b"\x00" * ROOM)
    assert reassembler.add(other_length, 0.0) is None
    assert _count(reassembler, "refused.conflicting_fragment") == 2
    assert reassembler.add(frames[1], 0.0) is None
    assert reassembler.add(frames[2], 0.0) == data


def test_other_kinds_and_bad_layouts_are_refused() -> None:
    reassembler = Reassembler(GEOMETRY)
    for kind in (FrameKind.DROP, FrameKind.LOOP):
        assert reassembler.add(Frame(kind, _id(1), 0, 1, 3, b"abc"), 0.0) is None
    assert _count(reassembler, "refused.wrong_kind") == 2
    # Consistent for another geometry's room, not for this one.
    small = Frame(FrameKind.DATA, _id(2), 0, 2, 200, b"x" * 100)
    assert reassembler.add(small, 0.0) is None
    assert _count(reassembler, "refused.bad_layout") == 1
    with pytest.raises(TypeError):
        reassembler.add(b"bytes", 0.0)  # type: ignore[arg-type]


def test_oversized_messages_are_refused_before_buffering() -> None:
    reassembler = Reassembler(GEOMETRY, max_message_size=5 * ROOM)
    frames = fragment(_id(1), FrameKind.DATA, _data(5 * ROOM + 1), GEOMETRY)
    assert all(reassembler.add(f, 0.0) is None for f in frames)
    assert _count(reassembler, "refused.too_large") == 6
    assert reassembler.buffered_bytes == 0 and reassembler.partial_messages == 0
    assert reassembler.add(fragment(_id(2), FrameKind.DATA, b"ok", GEOMETRY)[0], 0.0) == b"ok"


def test_partial_table_is_bounded_and_expiry_frees_it() -> None:
    reassembler = Reassembler(GEOMETRY, max_partial_messages=3, expiry_seconds=10.0)
    firsts = [fragment(_id(i), FrameKind.DATA, _data(2 * ROOM, i), GEOMETRY) for i in range(5)]
    for i in range(3):
        assert reassembler.add(firsts[i][0], now=float(i)) is None
    assert reassembler.add(firsts[3][0], now=5.0) is None
    assert _count(reassembler, "refused.table_full") == 1
    assert reassembler.partial_messages == 3
    # A single-fragment message needs no room in the table.
    assert reassembler.add(fragment(_id(99), FrameKind.DATA, b"hi", GEOMETRY)[0], 5.0) == b"hi"
    # Message 0 made no progress since t=0: when the table is full at t=10 it expires.
    assert reassembler.add(firsts[3][0], now=10.0) is None
    assert _count(reassembler, "partial.expired") == 1
    # Message 0's first half is gone; its second half finds the table full (1, 2, 3).
    assert reassembler.add(firsts[0][1], now=10.5) is None
    assert _count(reassembler, "refused.table_full") == 2
    assert reassembler.partial_messages == 3
    # Progress keeps a message alive: message 1 (t=1) gets its second half at t=10.9.
    assert reassembler.add(firsts[1][1], now=10.9) == _data(2 * ROOM, 1)
    assert reassembler.expire(now=13.0) == 1  # message 2, idle since t=2
    assert reassembler.expire(now=19.9) == 0
    assert reassembler.expire(now=20.0) == 1  # message 3, idle since t=10
    assert reassembler.partial_messages == 0 and reassembler.buffered_bytes == 0


def test_buffered_bytes_are_bounded() -> None:
    reassembler = Reassembler(GEOMETRY, max_buffered_bytes=3 * ROOM)
    big = fragment(_id(1), FrameKind.DATA, _data(4 * ROOM), GEOMETRY)
    assert [reassembler.add(f, 0.0) for f in big[:3]] == [None] * 3
    assert reassembler.buffered_bytes == 3 * ROOM
    assert reassembler.add(big[3], 0.0) is None
    assert _count(reassembler, "refused.buffer_full") == 1
    # Expiry releases the bytes; then a message fits again.
    assert reassembler.expire(now=DEFAULT_EXPIRY_SECONDS) == 1
    assert reassembler.buffered_bytes == 0
    assert [reassembler.add(f, 601.0) for f in big[:2]] == [None, None]


def test_delivered_ids_are_bounded_and_restorable() -> None:
    reassembler = Reassembler(GEOMETRY, max_delivered_ids=3)
    for i in range(5):
        assert reassembler.add(fragment(_id(i), FrameKind.DATA, b"m", GEOMETRY)[0], 0.0) == b"m"
    assert reassembler.delivered_ids == (_id(2), _id(3), _id(4))
    assert _count(reassembler, "delivered_id.forgotten") == 2
    assert reassembler.add(fragment(_id(4), FrameKind.DATA, b"m", GEOMETRY)[0], 0.0) is None
    assert _count(reassembler, "refused.already_delivered") == 1

    restarted = Reassembler(GEOMETRY, max_delivered_ids=3)
    partial = fragment(_id(7), FrameKind.DATA, _data(2 * ROOM), GEOMETRY)
    assert restarted.add(partial[0], 0.0) is None
    for message_id in (*reassembler.delivered_ids, _id(7)):
        restarted.mark_delivered(message_id)
    assert restarted.partial_messages == 0 and restarted.buffered_bytes == 0
    assert restarted.add(partial[1], 0.0) is None
    assert restarted.add(fragment(_id(3), FrameKind.DATA, b"m", GEOMETRY)[0], 0.0) is None
    assert _count(restarted, "refused.already_delivered") == 2
    with pytest.raises(ValueError, match="16 bytes"):
        restarted.mark_delivered(b"short")


@pytest.mark.parametrize(
    "options",
    [
        {"max_message_size": 0},
        {"max_message_size": 1 << 32},
        {"max_partial_messages": 0},
        {"max_buffered_bytes": True},
        {"max_delivered_ids": -1},
        {"expiry_seconds": 0},
    ],
)
def test_bad_bounds_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Reassembler(GEOMETRY, **options)  # type: ignore[arg-type]
