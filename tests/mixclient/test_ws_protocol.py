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
    RequestError,
    encode_event,
    parse_request,
)

ids = st.one_of(st.text(max_size=64), st.integers(0, 2**63))
payloads = st.binary(min_size=1, max_size=200)


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
                                 st.lists(st.integers(0, 2**32), max_size=3))))
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
        ({"type": "send", "id": 1, "to": "a",
          "data": base64.b64encode(bytes(MAX_USER_MESSAGE_SIZE + 1)).decode()}, "too_large"),
        ({"type": "dance", "id": 1}, "unknown_type"),
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
