"""Misuse fails when the packet is built: the path checks apply the rule `unwrap` applies at
every hop, and name the hop."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from sphinx_packets import (
    Deliver,
    DeliverSurbReply,
    Forward,
    InvalidCommandError,
    NodeDelay,
    PathError,
    PathHop,
    Recipient,
    SphinxError,
    SurbReply,
    create_packet,
    lioness,
    new_surb,
    unwrap,
)
from sphinx_packets.commands import RoutingCommand
from sphinx_packets.header import create_header
from sphinx_packets.packet import ZERO_TAG
from sphinx_packets.path import check_path
from tests.sphinx_packets.helpers import (
    SMALL_GEOMETRY,
    Node,
    forward_path,
    make_nodes,
    seeded_rng,
)

GEOMETRY = SMALL_GEOMETRY
NODES = make_nodes(4, seeded_rng(31))
RECIPIENT = b"\x09" * 32
SURB_ID = b"\x0b" * 16
PAYLOAD = bytes(GEOMETRY.user_payload_size)


def _hop(node: Node, *commands: RoutingCommand) -> PathHop:
    return PathHop(node.node_id, node.public_key, commands)


def _path(*commands: tuple[RoutingCommand, ...]) -> list[PathHop]:
    return [_hop(node, *c) for node, c in zip(NODES, commands, strict=True)]


def _hop_index(build: Callable[..., object], *args: object) -> int | None:
    with pytest.raises(PathError) as caught:
        build(GEOMETRY, *args)
    assert f"path hop {caught.value.hop_index}:" in str(caught.value)
    return caught.value.hop_index


DELAY = NodeDelay(5)
RECIPIENT_COMMAND = Recipient(RECIPIENT)


def test_a_forward_path_may_not_end_in_a_surb_reply() -> None:
    # Before: built, and the exit handed the plaintext out as a "SURB reply".
    path = _path((DELAY,), (DELAY,), (DELAY,), (RECIPIENT_COMMAND, SurbReply(SURB_ID)))
    assert _hop_index(create_packet, path, PAYLOAD) == 3


@pytest.mark.parametrize("hop", [0, 1, 2])
def test_an_intermediate_hop_may_not_carry_a_surb_reply_or_a_recipient(hop: int) -> None:
    for extra in (SurbReply(SURB_ID), RECIPIENT_COMMAND):
        commands: list[tuple[RoutingCommand, ...]] = [(DELAY,)] * 3 + [(RECIPIENT_COMMAND,)]
        commands[hop] = (DELAY, extra)
        path = _path(*commands)
        assert _hop_index(create_packet, path, PAYLOAD) == hop
        if isinstance(extra, Recipient):
            assert _hop_index(new_surb, path) == hop


def test_the_last_hop_needs_exactly_one_recipient_and_one_delay_at_most() -> None:
    for last in (
        (),
        (DELAY,),
        (RECIPIENT_COMMAND, RECIPIENT_COMMAND),
        (RECIPIENT_COMMAND, DELAY, DELAY),
    ):
        path = _path((DELAY,), (DELAY,), (DELAY,), last)
        assert _hop_index(create_packet, path, PAYLOAD) == 3
        assert _hop_index(new_surb, path) == 3
    path = _path((DELAY,), (DELAY, NodeDelay(6)), (DELAY,), (RECIPIENT_COMMAND,))
    assert _hop_index(create_packet, path, PAYLOAD) == 1


def test_new_surb_adds_the_surb_reply_itself() -> None:
    path = _path((DELAY,), (DELAY,), (DELAY,), (RECIPIENT_COMMAND, SurbReply(SURB_ID)))
    assert _hop_index(new_surb, path) == 3
    _, keys = new_surb(GEOMETRY, forward_path(NODES, RECIPIENT), rng=seeded_rng(2))
    checked = check_path(GEOMETRY, forward_path(NODES, RECIPIENT), surb_id=keys.surb_id)
    assert checked[-1].commands == (RECIPIENT_COMMAND, SurbReply(keys.surb_id))


def test_paths_of_the_wrong_shape_are_refused() -> None:
    path = forward_path(NODES, RECIPIENT)
    for bad in ([], path + path[:2], None, "path", path[0]):
        with pytest.raises(PathError) as caught:
            create_packet(GEOMETRY, bad, PAYLOAD)  # type: ignore[arg-type]
        assert caught.value.hop_index is None
    assert _hop_index(create_packet, [path[0], "hop"], PAYLOAD) == 1
    for bad_commands in (None, "commands", (b"\x80",), [DELAY, 5]):
        with pytest.raises(PathError):
            PathHop(NODES[0].node_id, NODES[0].public_key, bad_commands)  # type: ignore[arg-type]


# The property: check_path refuses a path at hop i exactly when some hop would refuse it --
# the first one to do so, i -- except for the one rule a hop cannot see (a SURB reply on a
# forward path, which the exit would deliver as a SURB reply).

any_commands = st.lists(
    st.sampled_from([DELAY, RECIPIENT_COMMAND, SurbReply(SURB_ID)]), max_size=3
).map(tuple)
usual_commands = st.sampled_from(
    [
        (),
        (DELAY,),
        (RECIPIENT_COMMAND,),
        (DELAY, RECIPIENT_COMMAND),
        (RECIPIENT_COMMAND, SurbReply(SURB_ID)),
    ]
)
intermediate = st.one_of(st.sampled_from([(), (DELAY,)]), any_commands)
last = st.one_of(usual_commands, any_commands)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 4), st.lists(intermediate, min_size=3, max_size=3), last, st.integers(0, 2**32)
)
def test_the_build_check_and_the_hops_apply_one_rule(
    hops: int,
    before: list[tuple[RoutingCommand, ...]],
    final: tuple[RoutingCommand, ...],
    seed: int,
) -> None:
    commands = [*before[: hops - 1], final]
    path = tuple(_hop(NODES[i], *commands[i]) for i in range(hops))
    try:
        check_path(GEOMETRY, path)
        built_refuses = None
    except PathError as error:
        built_refuses = error.hop_index
    try:  # build without the check, as the code before it did
        header, keys = create_header(GEOMETRY, path, seeded_rng(seed))
    except InvalidCommandError:
        assume(False)  # the commands do not fit in a slot: nothing to unwrap
    body = ZERO_TAG + PAYLOAD
    for hop_keys in reversed(keys):
        body = lioness.encrypt(lioness.lioness_key(hop_keys.payload_encryption), body)
    packet = header + body
    hop_refuses = None
    result = None
    for index in range(hops):
        try:
            result = unwrap(GEOMETRY, NODES[index].private_key, packet)
        except SphinxError as error:
            assert isinstance(error, InvalidCommandError)
            hop_refuses = index
            break
        if index < hops - 1:
            assert isinstance(result, Forward)
            packet = result.packet
    event(f"built refuses: {built_refuses is not None}, a hop refuses: {hop_refuses is not None}")
    if hop_refuses is not None:
        assert built_refuses == hop_refuses
    elif built_refuses is None:
        assert isinstance(result, Deliver) and result.payload == PAYLOAD
    else:
        assert built_refuses == hops - 1
        assert isinstance(result, DeliverSurbReply)
        assert any(isinstance(c, SurbReply) for c in commands[hops - 1])
