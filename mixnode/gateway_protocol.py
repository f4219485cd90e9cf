"""The client–gateway control protocol: the bodies of CONTROL frames on a client link.

Sans-I/O: encode and decode only. Every message travels in one fixed-size link frame, so the
wire shows how many frames pass, never which message they hold (docs/SPEC.md §3.6).

Client to gateway (after the Noise handshake, which proves the client's static key):

    01                       REGISTER       open (or reopen) the mailbox bound to my key
    02 ‖ count u8 [‖ n u8 ‖ id 16 × n]
                             FETCH          first delete these n messages (0..MAX_ACK ids;
                                            the ack part may be left out when n = 0), then
                                            send me exactly `count` frames (1..MAX_FETCH)
    03 ‖ n u8 ‖ id 16 × n    ACK            delete these messages (1..MAX_ACK ids)

Gateway to client:

    81 ‖ mailbox id 32       REGISTERED
    82 ‖ id 16 ‖ len u16 ‖ message         MESSAGE   one stored message
    83                       EMPTY          filler, so that a FETCH is always answered by
                                            exactly `count` frames whatever the mailbox holds
    e0 ‖ code u8             ERROR          a refused request (codes in `ErrorCode`)

Message ids are 16 random bytes chosen by the gateway (not counters, which would tell a client
how much traffic the gateway carries). A stored message is `kind u8 ‖ surb id 16 ‖ payload`: kind 1 a forward payload (the Sphinx
user payload, still end-to-end encrypted for the recipient), kind 2 a SURB reply (the
encrypted payload and the SURB id its creator needs to open it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from sphinx_packets.geometry import SURB_ID_SIZE

MAILBOX_ID_SIZE = 32
MESSAGE_ID_SIZE = 16
MAX_FETCH = 16
"""The most frames one FETCH may ask for."""
MAX_ACK = 64
"""The most message ids one ACK may carry."""

REGISTER = 0x01
FETCH = 0x02
ACK = 0x03
REGISTERED = 0x81
MESSAGE = 0x82
EMPTY = 0x83
ERROR = 0xE0


class ControlError(Exception):
    """A control message is malformed."""


class ErrorCode(IntEnum):
    """Why the gateway refused a request (sent in ERROR; no detail beyond the code)."""

    MALFORMED = 1
    NOT_REGISTERED = 2
    REGISTRY_FULL = 3
    REGISTRATION_LIMITED = 4
    """New mailboxes from the client's network address are past their budget: try later."""


class MessageKind(IntEnum):
    FORWARD = 1
    SURB_REPLY = 2


@dataclass(frozen=True, slots=True)
class Register:
    pass


@dataclass(frozen=True, slots=True)
class Fetch:
    count: int
    acks: tuple[bytes, ...] = field(default=(), repr=False)
    """Messages to delete before fetching: a client that polls on a fixed schedule
    acknowledges in its next poll, so that its link shows one frame up per poll whatever it
    received."""


@dataclass(frozen=True, slots=True)
class Ack:
    message_ids: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Registered:
    mailbox_id: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Message:
    message_id: bytes = field(repr=False)
    stored: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Empty:
    pass


@dataclass(frozen=True, slots=True)
class Error:
    code: ErrorCode


ClientRequest = Register | Fetch | Ack
GatewayReply = Registered | Message | Empty | Error


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a gateway keeps for a mailbox: a delivered payload, and for a SURB reply the
    SURB id (zero bytes otherwise)."""

    kind: MessageKind
    surb_id: bytes = field(repr=False)
    payload: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return bytes((self.kind,)) + self.surb_id + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> Delivery:
        if len(data) < 1 + SURB_ID_SIZE + 1:
            raise ControlError("a stored message is too short")
        try:
            kind = MessageKind(data[0])
        except ValueError:
            raise ControlError("unknown stored message kind") from None
        return cls(kind, bytes(data[1 : 1 + SURB_ID_SIZE]), bytes(data[1 + SURB_ID_SIZE :]))


def encode_request(request: ClientRequest) -> bytes:
    if isinstance(request, Register):
        return bytes((REGISTER,))
    if isinstance(request, Fetch):
        if not 1 <= request.count <= MAX_FETCH:
            raise ControlError(f"a FETCH asks for 1 to {MAX_FETCH} frames")
        if not request.acks:
            return bytes((FETCH, request.count))
        return bytes((FETCH, request.count)) + _ack_list(request.acks, 0)
    return bytes((ACK,)) + _ack_list(request.message_ids, 1)


def _ack_list(ids: tuple[bytes, ...], minimum: int) -> bytes:
    """n u8 ‖ the ids."""
    if not minimum <= len(ids) <= MAX_ACK:
        raise ControlError(f"an acknowledgement carries {minimum} to {MAX_ACK} ids")
    if any(not isinstance(i, bytes) or len(i) != MESSAGE_ID_SIZE for i in ids):
        raise ControlError(f"a message id is {MESSAGE_ID_SIZE} bytes")
    return bytes((len(ids),)) + b"".join(ids)


def _decode_ack_list(body: bytes, minimum: int) -> tuple[bytes, ...] | None:
    """The ids of `n u8 ‖ ids` filling `body` exactly, or None if malformed."""
    if not body:
        return None
    count = body[0]
    if not minimum <= count <= MAX_ACK or len(body) != 1 + MESSAGE_ID_SIZE * count:
        return None
    return tuple(
        bytes(body[i : i + MESSAGE_ID_SIZE]) for i in range(1, len(body), MESSAGE_ID_SIZE)
    )


def decode_request(body: bytes) -> ClientRequest:
    """A client's control message; `ControlError` if it is malformed."""
    if not body:
        raise ControlError("empty control message")
    kind = body[0]
    if kind == REGISTER and len(body) == 1:
        return Register()
    if kind == FETCH and len(body) >= 2 and 1 <= body[1] <= MAX_FETCH:
        acks = () if len(body) == 2 else _decode_ack_list(body[2:], 0)
        if acks is not None:
            return Fetch(body[1], acks)
    if kind == ACK:
        ids = _decode_ack_list(body[1:], 1)
        if ids is not None:
            return Ack(ids)
    raise ControlError("malformed client control message")


def encode_reply(reply: GatewayReply) -> bytes:
    if isinstance(reply, Registered):
        if len(reply.mailbox_id) != MAILBOX_ID_SIZE:
            raise ControlError("a mailbox id is 32 bytes")
        return bytes((REGISTERED,)) + reply.mailbox_id
    if isinstance(reply, Message):
        if len(reply.stored) > 0xFFFF or len(reply.message_id) != MESSAGE_ID_SIZE:
            raise ControlError("a message id is 16 bytes and a message at most 65,535")
        return (
            bytes((MESSAGE,)) + reply.message_id + struct.pack(">H", len(reply.stored))
            + reply.stored
        )
    if isinstance(reply, Empty):
        return bytes((EMPTY,))
    return bytes((ERROR, reply.code))


def decode_reply(body: bytes) -> GatewayReply:
    """A gateway's control message; `ControlError` if it is malformed."""
    if not body:
        raise ControlError("empty control message")
    kind = body[0]
    if kind == REGISTERED and len(body) == 1 + MAILBOX_ID_SIZE:
        return Registered(bytes(body[1:]))
    head = 1 + MESSAGE_ID_SIZE + 2
    if kind == MESSAGE and len(body) >= head:
        (size,) = struct.unpack(">H", body[head - 2 : head])
        if len(body) == head + size:
            return Message(bytes(body[1 : 1 + MESSAGE_ID_SIZE]), bytes(body[head:]))
    if kind == EMPTY and len(body) == 1:
        return Empty()
    if kind == ERROR and len(body) == 2:
        try:
            return Error(ErrorCode(body[1]))
        except ValueError:
            pass
    raise ControlError("malformed gateway control message")
