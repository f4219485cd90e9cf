"""The envelope: what a message holds besides the user's data (sans-I/O, encode/decode only).

A message travels as an envelope. A direct or anonymous envelope is sealed to the
recipient's end-to-end key (mixclient.e2e) before it is fragmented; a reply envelope travels
on the SURBs its recipient made, whose payload encryption only that recipient can undo, so it
is not sealed again. Integers are unsigned big-endian.

    version u8 (1) ‖ kind u8 ‖ ...

    kind 1 DIRECT      sender address length u16 ‖ sender address (ClientAddress bytes) ‖ data
    kind 2 ANONYMOUS   conversation 16 ‖ epoch u64 ‖ n u16 ‖ n × SURB (geometry.surb_size) ‖ data
    kind 3 REPLY       conversation 16 ‖ data

DIRECT names the sender's address so that the recipient can answer with `send`. HPKE base
mode does not authenticate the sender: the address is a claim, as an e-mail's From line is.
ANONYMOUS carries no address of the sender, only a random conversation id and `n` reply
SURBs built with the keys of `epoch`; the recipient answers through them (REPLY, same
conversation id), and learns nothing of where they lead.

Malformed input raises `EnvelopeError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from mixclient.address import AddressError, ClientAddress

VERSION = 1
CONVERSATION_SIZE = 16
MAX_REPLY_SURBS = 1000


class EnvelopeError(ValueError):
    """An envelope is malformed."""


class EnvelopeKind(IntEnum):
    DIRECT = 1
    ANONYMOUS = 2
    REPLY = 3


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: EnvelopeKind
    data: bytes = field(repr=False)
    sender: ClientAddress | None = field(default=None, repr=False)
    """DIRECT only."""
    conversation: bytes | None = field(default=None, repr=False)
    """ANONYMOUS and REPLY only."""
    surb_epoch: int = 0
    surbs: tuple[bytes, ...] = field(default=(), repr=False)
    """ANONYMOUS only: the reply SURBs (each `surb_size` bytes) and their keys' epoch."""

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise EnvelopeError("envelope data must be bytes")
        direct = self.kind is EnvelopeKind.DIRECT
        if direct != (self.sender is not None):
            raise EnvelopeError("a DIRECT envelope, and only one, names its sender")
        if direct == (self.conversation is not None):
            raise EnvelopeError("an ANONYMOUS or REPLY envelope, and only one, has a conversation")
        if self.conversation is not None and len(self.conversation) != CONVERSATION_SIZE:
            raise EnvelopeError(f"a conversation id is {CONVERSATION_SIZE} bytes")
        if self.surbs and self.kind is not EnvelopeKind.ANONYMOUS:
            raise EnvelopeError("only an ANONYMOUS envelope carries SURBs")
        if len(self.surbs) > MAX_REPLY_SURBS:
            raise EnvelopeError(f"at most {MAX_REPLY_SURBS} reply SURBs")
        if not 0 <= self.surb_epoch < 2**64:
            raise EnvelopeError("a SURB epoch is a 64-bit unsigned integer")

    def to_bytes(self, surb_size: int) -> bytes:
        head = bytes((VERSION, self.kind))
        if self.kind is EnvelopeKind.DIRECT:
            assert self.sender is not None
            sender = self.sender.to_bytes()
            return head + struct.pack(">H", len(sender)) + sender + self.data
        assert self.conversation is not None
        if self.kind is EnvelopeKind.REPLY:
            return head + self.conversation + self.data
        if any(len(s) != surb_size for s in self.surbs):
            raise EnvelopeError(f"a SURB is {surb_size} bytes")
        return (
            head
            + self.conversation
            + struct.pack(">QH", self.surb_epoch, len(self.surbs))
            + b"".join(self.surbs)
            + self.data
        )

    @classmethod
    def from_bytes(cls, data: bytes, surb_size: int) -> Envelope:
        data = bytes(data)
        if len(data) < 2:
            raise EnvelopeError("an envelope is at least 2 bytes")
        if data[0] != VERSION:
            raise EnvelopeError(f"unsupported envelope version {data[0]}")
        try:
            kind = EnvelopeKind(data[1])
        except ValueError:
            raise EnvelopeError(f"unknown envelope kind {data[1]}") from None
        body = data[2:]
        if kind is EnvelopeKind.DIRECT:
            if len(body) < 2:
                raise EnvelopeError("a DIRECT envelope is cut short")
            (size,) = struct.unpack_from(">H", body)
            if len(body) < 2 + size:
                raise EnvelopeError("a DIRECT envelope's sender address is cut short")
            try:
                sender = ClientAddress.from_bytes(body[2 : 2 + size])
            except AddressError as error:
                raise EnvelopeError(f"the sender address is malformed: {error}") from None
            return cls(kind, body[2 + size :], sender=sender)
        if len(body) < CONVERSATION_SIZE:
            raise EnvelopeError("the conversation id is cut short")
        conversation, rest = body[:CONVERSATION_SIZE], body[CONVERSATION_SIZE:]
        if kind is EnvelopeKind.REPLY:
            return cls(kind, rest, conversation=conversation)
        if len(rest) < 10:
            raise EnvelopeError("an ANONYMOUS envelope is cut short")
        epoch, count = struct.unpack_from(">QH", rest)
        end = 10 + count * surb_size
        if count > MAX_REPLY_SURBS or len(rest) < end:
            raise EnvelopeError("an ANONYMOUS envelope's SURBs are cut short or too many")
        surbs = tuple(rest[i : i + surb_size] for i in range(10, end, surb_size))
        return cls(
            kind, rest[end:], conversation=conversation, surb_epoch=epoch, surbs=surbs
        )
