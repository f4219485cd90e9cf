"""Routing commands: what each hop reads from its slot of the header's routing information.

Encoding (one byte of type, then a fixed-size body):

    00                      null: the rest of the slot is zero padding
    01 ‖ node id 32 ‖ mac 32   next node hop
    02 ‖ recipient 32          recipient (a mailbox at the exit)
    03 ‖ surb id 16            SURB reply
    80 ‖ delay u32 BE (ms)     node delay
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sphinx_packets.errors import InvalidCommandError
from sphinx_packets.geometry import (
    MAC_SIZE,
    NODE_ID_SIZE,
    RECIPIENT_ID_SIZE,
    SURB_ID_SIZE,
)
from sphinx_packets.inputs import checked_int, exact_bytes

NULL = 0x00
NEXT_NODE_HOP = 0x01
RECIPIENT = 0x02
SURB_REPLY = 0x03
NODE_DELAY = 0x80

MAX_DELAY_MS = 0xFFFFFFFF


def _require(command: object, name: str, size: int, what: str) -> None:
    """Check a bytes field of a (frozen) command; store a bytes-like value as `bytes`."""
    value = getattr(command, name)
    if type(value) is not bytes or len(value) != size:
        object.__setattr__(command, name, exact_bytes(value, size, what, InvalidCommandError))


@dataclass(frozen=True, slots=True)
class NextNodeHop:
    """Forward to `node_id`; `mac` is the MAC of the header that node will see."""

    node_id: bytes
    mac: bytes

    def __post_init__(self) -> None:
        _require(self, "node_id", NODE_ID_SIZE, "a node id")
        _require(self, "mac", MAC_SIZE, "a next-hop MAC")

    def to_bytes(self) -> bytes:
        return bytes((NEXT_NODE_HOP,)) + self.node_id + self.mac


@dataclass(frozen=True, slots=True)
class Recipient:
    """Deliver to the mailbox `recipient_id` held by this (exit) node."""

    recipient_id: bytes

    def __post_init__(self) -> None:
        _require(self, "recipient_id", RECIPIENT_ID_SIZE, "a recipient id")

    def to_bytes(self) -> bytes:
        return bytes((RECIPIENT,)) + self.recipient_id


@dataclass(frozen=True, slots=True)
class SurbReply:
    """The payload is a reply on the SURB `surb_id`, still encrypted for the SURB's creator."""

    surb_id: bytes

    def __post_init__(self) -> None:
        _require(self, "surb_id", SURB_ID_SIZE, "a SURB id")

    def to_bytes(self) -> bytes:
        return bytes((SURB_REPLY,)) + self.surb_id


@dataclass(frozen=True, slots=True)
class NodeDelay:
    """Hold the packet for `delay_ms` milliseconds before forwarding it."""

    delay_ms: int

    def __post_init__(self) -> None:
        checked_int(self.delay_ms, 0, MAX_DELAY_MS, "a node delay (ms)", InvalidCommandError)

    def to_bytes(self) -> bytes:
        return bytes((NODE_DELAY,)) + self.delay_ms.to_bytes(4, "big")


RoutingCommand = NextNodeHop | Recipient | SurbReply | NodeDelay

_COMMAND_NAMES: dict[type, str] = {
    NextNodeHop: "next-hop",
    Recipient: "recipient",
    SurbReply: "SURB-reply",
    NodeDelay: "delay",
}


@dataclass(frozen=True, slots=True)
class HopCommands:
    """One hop's commands, checked by `classify_commands`: a forwarding hop has `next_hop`,
    a delivering (last) hop has `recipient` and maybe `surb_reply`; either may be delayed."""

    next_hop: NextNodeHop | None
    recipient: Recipient | None
    surb_reply: SurbReply | None
    delay_ms: int


def classify_commands(commands: Iterable[object]) -> HopCommands:
    """The one rule on what a hop may read, applied by `unwrap` at every hop and by the
    packet builders to every hop of a path before any crypto:

    - at most one command of each type;
    - exactly one of a next hop and a recipient;
    - a SURB reply only beside a recipient;
    - a node delay beside either.

    Whether a SURB reply belongs on a path at all (only on SURB paths) is the builder's
    check: a hop cannot tell. Raises `InvalidCommandError`.
    """
    found: dict[type, Any] = {}
    for command in commands:
        kind = type(command)
        name = _COMMAND_NAMES.get(kind)
        if name is None:
            raise InvalidCommandError(f"not a routing command: {kind.__name__}")
        if kind in found:
            raise InvalidCommandError(f"more than one {name} command")
        found[kind] = command
    next_hop = found.get(NextNodeHop)
    recipient = found.get(Recipient)
    surb_reply = found.get(SurbReply)
    delay = found.get(NodeDelay)
    if next_hop is not None:
        if recipient is not None or surb_reply is not None:
            raise InvalidCommandError("a hop cannot both forward and deliver")
    elif recipient is None:
        raise InvalidCommandError(
            "a SURB reply without a recipient"
            if surb_reply is not None
            else "neither a next hop nor a recipient"
        )
    return HopCommands(next_hop, recipient, surb_reply, delay.delay_ms if delay else 0)


def encode_commands(commands: Iterable[RoutingCommand], slot_size: int) -> bytes:
    """Serialize commands into one hop's slot, zero padded (a null command) to `slot_size`."""
    encoded = b"".join(command.to_bytes() for command in commands)
    if len(encoded) > slot_size:
        raise InvalidCommandError(
            f"routing commands take {len(encoded)} bytes, more than the {slot_size}-byte slot"
        )
    return encoded + bytes(slot_size - len(encoded))


def decode_commands(slot: bytes) -> tuple[RoutingCommand, ...]:
    """Parse one hop's slot. A null command ends it, and everything after it must be zero."""
    commands: list[RoutingCommand] = []
    offset = 0
    size = len(slot)
    while offset < size:
        kind = slot[offset]
        body = offset + 1
        if kind == NULL:
            if any(slot[body:]):
                raise InvalidCommandError("non-zero bytes after the null command")
            break
        if kind == NEXT_NODE_HOP:
            end = body + NODE_ID_SIZE + MAC_SIZE
            _check_room(end, size, "next node hop")
            commands.append(
                NextNodeHop(slot[body : body + NODE_ID_SIZE], slot[body + NODE_ID_SIZE : end])
            )
        elif kind == RECIPIENT:
            end = body + RECIPIENT_ID_SIZE
            _check_room(end, size, "recipient")
            commands.append(Recipient(slot[body:end]))
        elif kind == SURB_REPLY:
            end = body + SURB_ID_SIZE
            _check_room(end, size, "SURB reply")
            commands.append(SurbReply(slot[body:end]))
        elif kind == NODE_DELAY:
            end = body + 4
            _check_room(end, size, "node delay")
            commands.append(NodeDelay(int.from_bytes(slot[body:end], "big")))
        else:
            raise InvalidCommandError(f"unknown routing command type 0x{kind:02x}")
        offset = end
    return tuple(commands)


def _check_room(end: int, size: int, what: str) -> None:
    if end > size:
        raise InvalidCommandError(f"truncated {what} command")
