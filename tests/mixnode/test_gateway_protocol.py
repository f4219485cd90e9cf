"""The client–gateway control messages: round trips and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixnode.gateway_protocol import (
    MAX_ACK,
    MAX_FETCH,
    Ack,
    ControlError,
    Delivery,
    Empty,
    Error,
    ErrorCode,
    Fetch,
    Message,
    MessageKind,
    Register,
    Registered,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

requests = st.one_of(
    st.just(Register()),
    st.builds(Fetch, st.integers(1, MAX_FETCH)),
    st.builds(
        Fetch,
        st.integers(1, MAX_FETCH),
        st.lists(st.binary(min_size=16, max_size=16), max_size=MAX_ACK).map(tuple),
    ),
    st.builds(
        Ack, st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=MAX_ACK).map(tuple)
    ),
)
replies = st.one_of(
    st.builds(Registered, st.binary(min_size=32, max_size=32)),
    st.builds(Message, st.binary(min_size=16, max_size=16), st.binary(max_size=3000)),
    st.just(Empty()),
    st.builds(Error, st.sampled_from(list(ErrorCode))),
)


@given(requests)
def test_requests_round_trip(request: Register | Fetch | Ack) -> None:
    assert decode_request(encode_request(request)) == request


@given(replies)
def test_replies_round_trip(reply: Registered | Message | Empty | Error) -> None:
    assert decode_reply(encode_reply(reply)) == reply


@given(st.binary(max_size=600))
def test_random_bytes_raise_only_control_error(data: bytes) -> None:
    for decode in (decode_request, decode_reply):
        try:
            decode(data)
        except ControlError:
            pass


@pytest.mark.parametrize(
    "body",
    [b"", b"\x01\x00", b"\x02\x00", bytes((0x02, MAX_FETCH + 1)), b"\x03\x01" + bytes(15), b"\x03\x00", b"\x7f"],
)
def test_malformed_requests_are_refused(body: bytes) -> None:
    with pytest.raises(ControlError):
        decode_request(body)


def test_encoder_refuses_out_of_range_requests() -> None:
    with pytest.raises(ControlError):
        encode_request(Fetch(0))
    with pytest.raises(ControlError):
        encode_request(Ack(tuple(bytes(16) for _ in range(MAX_ACK + 1))))
    with pytest.raises(ControlError):
        encode_request(Ack((bytes(8),)))


@given(st.sampled_from(list(MessageKind)), st.binary(min_size=16, max_size=16), st.binary(min_size=1, max_size=3000))
def test_delivery_round_trip(kind: MessageKind, surb_id: bytes, payload: bytes) -> None:
    stored = Delivery(kind, surb_id, payload)
    assert Delivery.from_bytes(stored.to_bytes()) == stored
    assert payload.hex() not in repr(stored)


def test_stored_message_refuses_unknown_kind() -> None:
    with pytest.raises(ControlError):
        Delivery.from_bytes(b"\x09" + bytes(40))
