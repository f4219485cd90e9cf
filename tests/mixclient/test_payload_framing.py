"""The user payload layout (SURB-ACK ‖ frame) and the 36-byte frame header."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixclient.payload_framing import (
    FRAME_HEADER_SIZE,
    Frame,
    FrameKind,
    FramingError,
    decode_frame,
    decode_user_payload,
    encode_frame,
    encode_user_payload,
    frame_data_size,
    frame_size,
    split_surb_ack,
)
from sphinx_packets import (
    Deliver,
    DeliverSurbReply,
    Geometry,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    new_surb,
)
from tests.sphinx_packets.helpers import forward_path, make_nodes, seeded_rng, walk

GEOMETRY = Geometry.default()
ROOM = 2048
SMALL = Geometry(hops=3, user_payload_size=600)  # surb_size 380: 184 bytes of data room


def _valid_frames(geometry: Geometry) -> st.SearchStrategy[Frame]:
    room = frame_data_size(geometry)

    @st.composite
    def build(draw: st.DrawFn) -> Frame:
        total = draw(st.integers(0, 4 * room + 5))
        count = max(1, -(-total // room))
        index = draw(st.integers(0, count - 1))
        length = room if index < count - 1 else total - room * (count - 1)
        return Frame(
            draw(st.sampled_from(list(FrameKind))),
            draw(st.binary(min_size=16, max_size=16)),
            index,
            count,
            total,
            draw(st.binary(min_size=length, max_size=length)),
        )

    return build()


def _frame(**changes: object) -> Frame:
    fields: dict[str, object] = {
        "kind": FrameKind.DATA,
        "message_id": bytes(range(16)),
        "fragment_index": 1,
        "fragment_count": 3,
        "total_length": 2 * ROOM + 10,
        "data": b"\xab" * ROOM,
    }
    fields.update(changes)
    return Frame(**fields)  # type: ignore[arg-type]


def test_default_sizes() -> None:
    assert frame_size(GEOMETRY) == 2640 - 556 == 2084
    assert frame_data_size(GEOMETRY) == ROOM
    assert GEOMETRY.surb_size == 556


def test_header_byte_layout() -> None:
    encoded = encode_frame(GEOMETRY, _frame())
    assert len(encoded) == 2084
    assert encoded[:4] == bytes([1, FrameKind.DATA, 0, 0])
    assert encoded[4:20] == bytes(range(16))
    assert struct.unpack(">IIII", encoded[20:36]) == (1, 3, ROOM, 2 * ROOM + 10)
    assert encoded[36:] == b"\xab" * ROOM
    last = encode_frame(GEOMETRY, _frame(fragment_index=2, data=b"z" * 10))
    assert last[28:32] == (10).to_bytes(4, "big")
    assert last[36:46] == b"z" * 10 and last[46:] == bytes(ROOM - 10)


@settings(max_examples=100, deadline=None)
@given(frame=_valid_frames(GEOMETRY), surb=st.none() | st.binary(min_size=556, max_size=556))
def test_round_trip(frame: Frame, surb: bytes | None) -> None:
    assert decode_frame(GEOMETRY, encode_frame(GEOMETRY, frame)) == frame
    payload = encode_user_payload(GEOMETRY, frame, None if surb is None or not any(surb) else surb)
    assert len(payload) == GEOMETRY.user_payload_size
    got_surb, got_frame = decode_user_payload(GEOMETRY, payload)
    assert got_frame == frame
    assert got_surb == (surb if surb is not None and any(surb) else None)


@settings(max_examples=50, deadline=None)
@given(frame=_valid_frames(SMALL))
def test_round_trip_other_geometry(frame: Frame) -> None:
    assert frame_data_size(SMALL) == 600 - SMALL.surb_size - FRAME_HEADER_SIZE
    assert decode_frame(SMALL, encode_frame(SMALL, frame)) == frame


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=frame_size(GEOMETRY), max_size=frame_size(GEOMETRY)))
def test_random_frames_only_raise_framing_error(data: bytes) -> None:
    try:
        frame = decode_frame(GEOMETRY, data)
    except FramingError:
        return
    assert encode_frame(GEOMETRY, frame)[:FRAME_HEADER_SIZE] == data[:FRAME_HEADER_SIZE]


@settings(max_examples=300, deadline=None)
@given(
    header=st.tuples(
        st.integers(0, 2),
        st.integers(0, 6),
        st.integers(0, 1),
        st.integers(0, 1),
        st.integers(0, 4),
        st.integers(0, 4),
        st.sampled_from([0, 1, 5, ROOM - 1, ROOM, ROOM + 1, 0xFFFF_FFFF]),
        st.sampled_from([0, 1, 5, ROOM, ROOM + 1, 3 * ROOM, 0xFFFF_FFFF]),
    )
)
def test_plausible_headers_only_raise_framing_error(header: tuple[int, ...]) -> None:
    """Random bytes rarely get past the version byte; these headers reach every check."""
    version, kind, flags, reserved, index, count, length, total = header
    data = struct.pack(
        ">BBBB16sIIII", version, kind, flags, reserved, bytes(16), index, count, length, total
    )
    data += bytes(frame_size(GEOMETRY) - len(data))
    try:
        frame = decode_frame(GEOMETRY, data)
    except FramingError:
        return
    assert (version, flags, reserved) == (1, 0, 0)
    assert frame.fragment_index < frame.fragment_count
    assert len(frame.data) == length <= total


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_random_user_payloads_only_raise_framing_error(data: bytes) -> None:
    try:
        decode_user_payload(GEOMETRY, data)
    except FramingError:
        pass


def _header(frame_bytes: bytes, offset: int, value: bytes) -> bytes:
    return frame_bytes[:offset] + value + frame_bytes[offset + len(value) :]


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"\x02", "unsupported frame version 2"),
        (1, b"\x00", "unknown frame kind 0"),
        (1, b"\x09", "unknown frame kind 9"),
        (2, b"\x01", "unknown frame flags"),
        (3, b"\x01", "reserved"),
        (20, (3).to_bytes(4, "big"), "index must be below"),
        (24, (0).to_bytes(4, "big"), "count of at least 1"),
        (24, (4).to_bytes(4, "big"), "has 3 fragments, not 4"),
        (28, (ROOM + 1).to_bytes(4, "big"), "does not fit"),
        (28, (ROOM - 1).to_bytes(4, "big"), "must hold 2048 bytes, not 2047"),
        (32, (5).to_bytes(4, "big"), "more data than its whole message"),
        (32, (2 * ROOM).to_bytes(4, "big"), "has 2 fragments, not 3"),
    ],
)
def test_malformed_headers(offset: int, value: bytes, message: str) -> None:
    good = encode_frame(GEOMETRY, _frame())
    with pytest.raises(FramingError, match=message):
        decode_frame(GEOMETRY, _header(good, offset, value))


def test_wrong_sizes_and_types() -> None:
    good = encode_frame(GEOMETRY, _frame())
    for data in (good[:-1], good + b"\x00", b""):
        with pytest.raises(FramingError, match="a frame must be 2084 bytes"):
            decode_frame(GEOMETRY, data)
    with pytest.raises(FramingError, match="must be bytes"):
        decode_frame(GEOMETRY, "text")  # type: ignore[arg-type]
    with pytest.raises(FramingError, match="a user payload must be 2640 bytes"):
        split_surb_ack(GEOMETRY, bytes(2639))
    with pytest.raises(FramingError, match="Geometry is needed"):
        frame_size(None)  # type: ignore[arg-type]
    with pytest.raises(FramingError, match="leaves no room"):
        frame_size(Geometry(hops=5, user_payload_size=592))
    with pytest.raises(FramingError, match="a Frame is needed"):
        encode_frame(GEOMETRY, good)  # type: ignore[arg-type]


def test_frame_values_are_checked() -> None:
    with pytest.raises(FramingError, match="message id"):
        _frame(message_id=bytes(15))
    with pytest.raises(FramingError, match="fragment_count"):
        _frame(fragment_count=-1)
    with pytest.raises(FramingError, match="total_length"):
        _frame(total_length=1 << 32)
    with pytest.raises(FramingError, match="must be bytes"):
        _frame(data=bytearray(5))
    with pytest.raises(FramingError, match="must hold 2048 bytes"):
        encode_frame(GEOMETRY, _frame(data=b"short"))
    assert "message_id" not in repr(_frame()) and "\\xab" not in repr(_frame())


def test_split_surb_ack() -> None:
    frame = encode_frame(GEOMETRY, _frame())
    assert split_surb_ack(GEOMETRY, bytes(556) + frame) == (None, frame)
    surb = bytes(555) + b"\x01"
    assert split_surb_ack(GEOMETRY, surb + frame) == (surb, frame)
    with pytest.raises(FramingError, match="all-zero SURB-ACK"):
        encode_user_payload(GEOMETRY, _frame(), bytes(556))
    with pytest.raises(FramingError, match="a SURB-ACK must be 556 bytes"):
        encode_user_payload(GEOMETRY, _frame(), b"\x01" * 555)


def test_surb_ack_travels_through_the_packet_format() -> None:
    """A sender puts a real SURB-ACK in front of a frame; the exit gateway splits it off,
    stores the frame and answers on the SURB with an all-zero payload (as mixnode's gateway
    does); the sender opens it with the SURB's keys."""
    rng = seeded_rng(7)
    nodes = make_nodes(5, rng)
    sender_mailbox, recipient_mailbox = rng(32), rng(32)
    surb, surb_keys = new_surb(GEOMETRY, forward_path(nodes, sender_mailbox), rng=rng)
    frame = _frame()
    payload = encode_user_payload(GEOMETRY, frame, surb.to_bytes())
    packet = create_packet(GEOMETRY, forward_path(nodes, recipient_mailbox), payload, rng=rng)

    delivered = walk(GEOMETRY, nodes, packet)
    assert isinstance(delivered, Deliver)
    surb_ack, stored = split_surb_ack(GEOMETRY, delivered.payload)
    assert surb_ack is not None
    assert decode_frame(GEOMETRY, stored) == frame

    first_hop, reply = create_surb_reply(GEOMETRY, surb_ack, bytes(GEOMETRY.user_payload_size))
    assert first_hop == nodes[0].node_id
    returned = walk(GEOMETRY, nodes, reply)
    assert isinstance(returned, DeliverSurbReply)
    assert returned.recipient_id == sender_mailbox
    opened = decrypt_surb_payload(GEOMETRY, surb_keys, returned.surb_id, returned.payload)
    assert returned.surb_id == surb_keys.surb_id
    assert opened == bytes(GEOMETRY.user_payload_size)
