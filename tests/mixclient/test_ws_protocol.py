"""The WebSocket protocol core: requests in both forms, and every malformed input refused with
a RequestError whose code says what is wrong (never anything else raised)."""

from __future__ import annotations

import base64
import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixclient.fragments import MAX_USER_MESSAGE_SIZE
from mixclient.ws_protocol import (
    MAX_REQUEST_BYTES,
    REQUEST_TYPES,
    RequestError,
    encode_event,
    error_event,
    parse_request,
)

ids = st.one_of(st.text(max_size=64), st.integers(0, 2**63))
payloads = st.binary(min_size=1, max_size=200)
int64s = st.integers(-(2**63), 2**63 - 1)


@given(ids, payloads, st.booleans(), st.integers(0, 100))
def test_requests_parse_alike_in_json_and_msgpack(
    request_id: str | int, data: bytes, anonymous: bool, surbs: int
) -> None:
    kind = "send_anonymous" if anonymous else "send"
    body = {"type": kind, "id": request_id, "to": "tmx1x", "reply_surbs": surbs}
    from_json = parse_request(json.dumps({**body, "data": base64.b64encode(data).decode()}))
    from_msgpack = parse_request(msgpack.packb({**body, "data": data}, use_bin_type=True))
    for parsed in (from_json, from_msgpack):
        assert (parsed.type, parsed.id, parsed.data, parsed.to) == (kind, request_id, data, "tmx1x")
    assert not from_json.binary and from_msgpack.binary


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_is_a_request_or_a_request_error(message: str | bytes) -> None:
    try:
        parse_request(message)
    except RequestError as error:
        assert error.code in {"malformed", "unknown_type", "bad_request", "too_large"}


@given(st.dictionaries(st.sampled_from(["type", "id", "to", "data", "conversation",
                                        "reply_surbs"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                                 st.text(max_size=40),
                                 st.binary(max_size=40),
                                 st.lists(int64s, max_size=3))))
def test_ill_typed_fields_are_refused_cleanly(body: dict[str, object]) -> None:
    for message in (json.dumps(body, default=lambda b: b.hex()),
                    msgpack.packb(body, use_bin_type=True)):
        try:
            parse_request(message)
        except RequestError:
            pass


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "send", "id": 1, "to": "a", "data": ""}, "bad_request"),
        ({"type": "send", "id": True, "to": "a", "data": "eA=="}, "bad_request"),
        ({"type": "send", "id": "x" * 65, "to": "a", "data": "eA=="}, "bad_request"),
        ({"type": "send_anonymous", "id": 1, "to": "a", "data": "eA==", "reply_surbs": 101},
         "bad_request"),
        ({"type": "reply", "id": 1, "conversation": "zz", "data": "eA=="}, "bad_request"),
        ({"type": "reply", "id": 1, "conversation": "zz" * 16, "data": "eA=="}, "bad_request"),
        ({"type": "send", "id": 1, "to": "a",
          "data": base64.b64encode(bytes(MAX_USER_MESSAGE_SIZE + 1)).decode()}, "too_large"),
        ({"type": "dance", "id": 1}, "unknown_type"),
        ({"type": "ack", "id": 1}, "bad_request"),
        ({"type": "ack", "id": 1, "message_id": "ab" * 15}, "bad_request"),
        ({"type": "ack", "id": 1, "message_id": "xy" * 16}, "bad_request"),
        ({"type": "ack", "message_id": "ab" * 16}, "bad_request"),
    ],
)
def test_bad_requests_name_the_problem(body: dict[str, object], code: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(json.dumps(body))
    assert caught.value.code == code and str(caught.value)


def test_oversized_and_events_encoding() -> None:
    with pytest.raises(RequestError, match=str(MAX_REQUEST_BYTES)):
        parse_request("x" * (MAX_REQUEST_BYTES + 1))
    event = {"type": "received", "data": b"\x00\x01", "sender": None}
    assert json.loads(encode_event(event, binary=False))["data"] == "AAE="
    assert msgpack.unpackb(encode_event(event, binary=True))["data"] == b"\x00\x01"


conversations = st.binary(min_size=16, max_size=16).map(bytes.hex)


@given(ids, payloads, conversations, st.booleans())
def test_replies_and_self_address_parse_alike_in_both_forms(
    request_id: str | int, data: bytes, conversation: str, upper: bool
) -> None:
    token = conversation.upper() if upper else conversation
    body = {"type": "reply", "id": request_id, "conversation": token}
    for parsed in (
        parse_request(json.dumps({**body, "data": base64.b64encode(data).decode()})),
        parse_request(msgpack.packb({**body, "data": data}, use_bin_type=True)),
    ):
        assert (parsed.type, parsed.id, parsed.conversation, parsed.data) == (
            "reply", request_id, token, data
        )
    for message in (json.dumps({"type": "self_address", "id": request_id}),
                    msgpack.packb({"type": "self_address", "id": request_id})):
        assert parse_request(message).id == request_id
    ack = {"type": "ack", "id": request_id, "message_id": token}
    for message in (json.dumps(ack), msgpack.packb(ack)):
        parsed = parse_request(message)
        assert (parsed.type, parsed.id, parsed.message_id) == ("ack", request_id, token)


@given(ids, st.sampled_from(REQUEST_TYPES[:3]), st.sampled_from(["data", "to", "conversation"]),
       st.one_of(st.none(), int64s, st.lists(int64s, max_size=2)), st.booleans())
def test_an_ill_typed_field_is_a_bad_request_carrying_the_id(
    request_id: str | int, kind: str, field: str, value: object, binary: bool
) -> None:
    body: dict[str, object] = {"type": kind, "id": request_id, "to": "tmx1x",
                               "conversation": "ab" * 16,
                               "data": b"x" if binary else "eA=="}
    if kind == "reply" and field == "to":
        field = "conversation"
    elif kind != "reply" and field == "conversation":
        field = "to"
    body[field] = value
    message = msgpack.packb(body, use_bin_type=True) if binary else json.dumps(body)
    with pytest.raises(RequestError) as caught:
        parse_request(message)
    assert caught.value.code == "bad_request" and caught.value.request_id == request_id
    assert field in str(caught.value)


@given(st.binary(min_size=8, max_size=64), st.sampled_from(REQUEST_TYPES[:3]), st.booleans())
def test_no_error_repeats_the_data(secret: bytes, kind: str, binary: bool) -> None:
    """A request broken in each way in turn, the secret in the broken field: the error names
    the field, never its value (`type` alone is echoed, and only when it looks like a name)."""
    encoded = base64.b64encode(secret).decode()
    good = {"type": kind, "id": 1, "to": "tmx1x", "conversation": "ab" * 16,
            "data": secret if binary else encoded}
    broken = [
        {**good, "type": encoded},
        {**good, "reply_surbs": encoded, "type": "send_anonymous"},
        {**good, "conversation": encoded, "type": "reply"},
        {**good, "to": None},
        {**good, "data": encoded + "!" if not binary else encoded},
        {**good, "id": encoded * 6},
    ]
    for body in broken:
        message = msgpack.packb(body, use_bin_type=True) if binary else json.dumps(body)
        try:
            parse_request(message)
        except RequestError as error:
            text = json.dumps(error_event(error.code, str(error), error.request_id))
            assert encoded not in text and secret.hex() not in text


@given(st.one_of(st.none(), ids), st.one_of(st.none(), st.text(max_size=20)),
       st.binary(max_size=100))
def test_events_round_trip_in_both_forms(
    request_id: str | int | None, sender: str | None, data: bytes
) -> None:
    event = {"type": "received", "id": request_id, "sender": sender, "data": data}
    as_json = json.loads(encode_event(event, binary=False))
    assert {**as_json, "data": base64.b64decode(as_json["data"], validate=True)} == event
    assert msgpack.unpackb(encode_event(event, binary=True), raw=False) == event
