"""The client daemon's WebSocket protocol (sans-I/O): requests parsed and checked, events
encoded. The full description is in docs/CLIENT_API.md.

A request is one WebSocket message, either a JSON text message or a binary message holding
a msgpack map with the same keys; in JSON, `data` is base64 (RFC 4648, with padding), in
msgpack it is raw bytes. Every request has an `id` (a string of at most 64 characters or an
integer) that its answer echoes.

    {"type": "send",           "id": ..., "to": ADDRESS, "data": DATA}
    {"type": "send_anonymous", "id": ..., "to": ADDRESS, "data": DATA, "reply_surbs": N}
    {"type": "reply",          "id": ..., "conversation": TOKEN, "data": DATA}
    {"type": "self_address",   "id": ...}
    {"type": "ack",            "id": ..., "message_id": HEX}   the app has kept the message

Events:

    {"type": "self_address", "id": ..., "address": ADDRESS}
    {"type": "sent",         "id": ...}                  the message was acknowledged
                                                         (a reply: its packets left)
    {"type": "acked",        "id": ..., "known": BOOL}   false: acknowledged before
    {"type": "received", "message_id": HEX, "kind": "direct"|"anonymous"|"reply",
     "sender": ADDRESS|null, "conversation": TOKEN|null, "data": DATA}
    {"type": "error", "id": ...|null, "code": CODE, "message": TEXT}

A received message stays in the client until an app acknowledges it (`ack` with its
`message_id`, 32 hex digits): it is handed out again after the daemon restarts, and when an
app connects while none is, so an app that acknowledges what it has stored loses none.

Error codes: malformed (not JSON / msgpack, or not an object), unknown_type, bad_request (a
field missing or of the wrong type or value), too_large (a message over the size limit),
bad_address, send_failed, no_reply_surbs, busy (too many requests in flight), internal.
An error's message names the problem, never the data.

`parse_request` raises `RequestError` (with the code, and the id when one could be read);
`encode_event` gives the text or bytes to send in the form the app used.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
from dataclasses import dataclass, field
from typing import Any

import msgpack

from mixclient.client import MAX_REPLY_SURBS, ReceivedMessage
from mixclient.fragments import MAX_USER_MESSAGE_SIZE

MAX_ID_LENGTH = 64
MAX_REQUEST_BYTES = 2 * MAX_USER_MESSAGE_SIZE
"""The largest request the daemon reads (base64 of 1 MiB with room for the rest)."""
REQUEST_TYPES = ("send", "send_anonymous", "reply", "self_address", "ack")
_TYPE_NAME = re.compile(r"[a-z_]{1,32}")
"""An unknown type is named in its error only when it looks like a name (never data)."""

RequestId = str | int


class RequestError(Exception):
    """A request the daemon cannot act on: `code` and a message naming the problem."""

    def __init__(self, code: str, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Request:
    type: str
    id: RequestId
    binary: bool
    """It came as msgpack: answer in msgpack."""
    to: str | None = field(default=None, repr=False)
    data: bytes = field(default=b"", repr=False)
    reply_surbs: int = 10
    conversation: str | None = field(default=None, repr=False)
    message_id: str | None = None


def parse_request(message: str | bytes) -> Request:
    """The request in one WebSocket message; `RequestError` saying what is wrong."""
    binary = isinstance(message, bytes | bytearray)
    if len(message) > MAX_REQUEST_BYTES:
        raise RequestError("too_large", f"a request is at most {MAX_REQUEST_BYTES} bytes")
    try:
        if binary:
            body = msgpack.unpackb(bytes(message), raw=False, strict_map_key=True)
        else:
            body = json.loads(message)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        form = "msgpack" if binary else "JSON"
        raise RequestError("malformed", f"the message is not valid {form}") from None
    if not isinstance(body, dict):
        raise RequestError("malformed", "a request is an object (a map)")
    request_id = _request_id(body.get("id"))
    kind = body.get("type")
    if kind not in REQUEST_TYPES:
        shown = kind if isinstance(kind, str) and _TYPE_NAME.fullmatch(kind) else "?"
        raise RequestError(
            "unknown_type",
            f"unknown request type {shown!r}: known are {', '.join(REQUEST_TYPES)}",
            request_id,
        )
    if request_id is None:
        raise RequestError("bad_request", f"'id' must be a string of at most {MAX_ID_LENGTH} "
                           "characters or an integer", None)
    if kind == "self_address":
        return Request(kind, request_id, binary)
    if kind == "ack":
        message_id = _hex_token(body.get("message_id"), "message_id", request_id)
        return Request(kind, request_id, binary, message_id=message_id)
    data = _data(body.get("data"), binary, request_id)
    if kind == "reply":
        conversation = _hex_token(body.get("conversation"), "conversation", request_id)
        return Request(kind, request_id, binary, data=data, conversation=conversation)
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise RequestError("bad_request", "'to' must be an address string", request_id)
    surbs = body.get("reply_surbs", 10)
    if kind == "send_anonymous" and (
        isinstance(surbs, bool) or not isinstance(surbs, int) or not 0 <= surbs <= MAX_REPLY_SURBS
    ):
        raise RequestError(
            "bad_request", f"'reply_surbs' must be an integer from 0 to {MAX_REPLY_SURBS}",
            request_id,
        )
    return Request(kind, request_id, binary, to=to, data=data, reply_surbs=surbs)


def _hex_token(value: Any, name: str, request_id: RequestId) -> str:
    if isinstance(value, str) and len(value) == 32 and all(c in string.hexdigits for c in value):
        return value
    raise RequestError("bad_request", f"'{name}' must be a 32-hex-digit token", request_id)


def _request_id(value: Any) -> RequestId | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_LENGTH:
        return value
    return None


def _data(value: Any, binary: bool, request_id: RequestId) -> bytes:
    if binary:
        if not isinstance(value, bytes):
            raise RequestError("bad_request", "'data' must be binary (msgpack bin)", request_id)
        data = value
    else:
        if not isinstance(value, str):
            raise RequestError("bad_request", "'data' must be a base64 string", request_id)
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("bad_request", "'data' is not valid base64", request_id) from None
    if not 1 <= len(data) <= MAX_USER_MESSAGE_SIZE:
        code = "too_large" if data else "bad_request"
        raise RequestError(code, f"'data' must be 1 to {MAX_USER_MESSAGE_SIZE} bytes", request_id)
    return data


def encode_event(event: dict[str, Any], *, binary: bool) -> str | bytes:
    """One event as a WebSocket message: msgpack bytes, or JSON text with `data` in base64."""
    if binary:
        return msgpack.packb(event, use_bin_type=True)
    if isinstance(event.get("data"), bytes):
        event = {**event, "data": base64.b64encode(event["data"]).decode("ascii")}
    return json.dumps(event, separators=(",", ":"))


def error_event(code: str, message: str, request_id: RequestId | None) -> dict[str, Any]:
    return {"type": "error", "id": request_id, "code": code, "message": message}


def received_event(message: ReceivedMessage) -> dict[str, Any]:
    return {
        "type": "received",
        "message_id": message.message_id,
        "kind": message.kind.name.lower(),
        "sender": message.sender,
        "conversation": message.conversation,
        "data": message.data,
    }
