"""The path a packet takes, and the check that it is one `unwrap` will accept at every hop.

`create_packet` and `new_surb` run `check_path` before any crypto, with the same rule the
hops apply (`classify_commands`), so misuse fails when the packet is built, with a
`PathError` naming the hop, and not later at a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sphinx_packets.commands import (
    NextNodeHop,
    RoutingCommand,
    SurbReply,
    classify_commands,
)
from sphinx_packets.errors import InvalidCommandError, PathError
from sphinx_packets.geometry import GROUP_ELEMENT_SIZE, MAC_SIZE, NODE_ID_SIZE, Geometry
from sphinx_packets.inputs import exact_bytes


@dataclass(frozen=True, slots=True)
class PathHop:
    """One hop of a path: the node's id, its Sphinx public key for the epoch, and the
    commands it is to read: at most a `NodeDelay` for an intermediate hop; a `Recipient`
    and at most a `NodeDelay` for the last hop. The packet's creator adds the next-hop
    command, and `new_surb` the SURB-reply command."""

    node_id: bytes
    public_key: bytes
    commands: tuple[RoutingCommand, ...] = ()

    def __post_init__(self) -> None:
        node_id = exact_bytes(self.node_id, NODE_ID_SIZE, "a node id", PathError)
        public_key = exact_bytes(
            self.public_key, GROUP_ELEMENT_SIZE, "a Sphinx public key", PathError
        )
        if not isinstance(self.commands, tuple | list):
            raise PathError("the commands of a hop must be a tuple of routing commands")
        commands = tuple(self.commands)
        for command in commands:
            if not isinstance(command, RoutingCommand):
                raise PathError(f"not a routing command: {type(command).__name__}")
            if isinstance(command, NextNodeHop):
                raise PathError("the next-hop command is the packet creator's to add")
        object.__setattr__(self, "node_id", node_id)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "commands", commands)


_PLACEHOLDER_MAC = bytes(MAC_SIZE)


def check_path(
    geometry: Geometry, path: Sequence[PathHop], *, surb_id: bytes | None = None
) -> tuple[PathHop, ...]:
    """Check `path` hop by hop with the rule `unwrap` applies; return it as a tuple, with
    the SURB-reply command added to the last hop when `surb_id` is given (a SURB path).

    Intermediate hops get a next-hop command from the creator and may carry nothing but a
    delay; the last hop needs a `Recipient`; a `SurbReply` belongs only on a SURB path, and
    there `new_surb` adds it. Raises `PathError` with the 0-based `hop_index`.
    """
    if not isinstance(path, Sequence) or isinstance(path, str | bytes | bytearray | memoryview):
        raise PathError(f"a path must be a sequence of PathHop, not {type(path).__name__}")
    if not 1 <= len(path) <= geometry.hops:
        raise PathError(f"a path must have 1 to {geometry.hops} hops, not {len(path)}")
    hops = tuple(path)
    for index, hop in enumerate(hops):
        if not isinstance(hop, PathHop):
            raise PathError(f"not a PathHop: {type(hop).__name__}", hop_index=index)
    last = len(hops) - 1
    for index, hop in enumerate(hops):
        if any(isinstance(command, SurbReply) for command in hop.commands):
            raise PathError(
                "a SurbReply command is new_surb's to add, on a SURB path's last hop",
                hop_index=index,
            )
        if index < last:
            reads = (*hop.commands, NextNodeHop(hops[index + 1].node_id, _PLACEHOLDER_MAC))
            role = "an intermediate hop (it forwards)"
        else:
            reads = hop.commands if surb_id is None else (*hop.commands, SurbReply(surb_id))
            role = "the last hop (it delivers)"
        try:
            classify_commands(reads)
        except InvalidCommandError as error:
            raise PathError(f"{role}: {error}", hop_index=index) from None
    if surb_id is None:
        return hops
    return (*hops[:last], replace(hops[last], commands=(*hops[last].commands, SurbReply(surb_id))))
