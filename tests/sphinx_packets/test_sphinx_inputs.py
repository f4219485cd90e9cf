"""Input types: bytes, bytearray and memoryview are accepted alike everywhere; None, text,
numbers and other objects raise a `SphinxError` subclass, never TypeError or AttributeError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sphinx_packets import (
    SURB,
    Geometry,
    GeometryError,
    InvalidArgumentError,
    InvalidCommandError,
    InvalidKeyError,
    InvalidPacketError,
    InvalidSURBError,
    NextNodeHop,
    NodeDelay,
    NodeKeys,
    PathError,
    PathHop,
    Recipient,
    SphinxError,
    SphinxKey,
    SURBKeys,
    SurbReply,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    generate_keypair,
    lioness,
    new_surb,
    replay_tag,
    unwrap,
    unwrap_header,
)
from tests.sphinx_packets.helpers import (
    SMALL_GEOMETRY,
    forward_path,
    make_nodes,
    seeded_rng,
    walk,
)

GEOMETRY = SMALL_GEOMETRY
NODES = make_nodes(3, seeded_rng(51))
RECIPIENT = b"\x0c" * 32
PAYLOAD = bytes(range(GEOMETRY.user_payload_size))
PATH = forward_path(NODES, RECIPIENT, [1, 2, 3])
PACKET = create_packet(GEOMETRY, PATH, PAYLOAD, rng=seeded_rng(52))
HEADER = PACKET[: GEOMETRY.header_size]
SURB_VALUE, SURB_KEYS = new_surb(GEOMETRY, PATH, rng=seeded_rng(53))
REPLY_ID, REPLY = create_surb_reply(GEOMETRY, SURB_VALUE, PAYLOAD)
ARRIVED = walk(GEOMETRY, NODES, REPLY)
KEY = NODES[0].private_key

kinds = st.sampled_from([bytes, bytearray, memoryview])


@settings(max_examples=30, deadline=None)
@given(kinds, kinds)
def test_unwrap_takes_any_bytes_like_packet_and_key(packet_kind: type, key_kind: type) -> None:
    expected = unwrap(GEOMETRY, KEY, PACKET)
    result = unwrap(GEOMETRY, key_kind(KEY), packet_kind(PACKET))
    assert result == expected and type(result.packet) is bytes  # type: ignore[union-attr]
    header = unwrap_header(GEOMETRY, key_kind(KEY), packet_kind(HEADER))
    assert header == unwrap_header(GEOMETRY, KEY, HEADER)
    assert replay_tag(packet_kind(PACKET[2:34])) == expected.replay_tag


@settings(max_examples=30, deadline=None)
@given(kinds, kinds, kinds)
def test_builders_take_any_bytes_like(payload_kind: type, id_kind: type, key_kind: type) -> None:
    path = [PathHop(id_kind(h.node_id), key_kind(h.public_key), h.commands) for h in PATH[:-1]] + [
        PathHop(
            id_kind(PATH[-1].node_id),
            key_kind(PATH[-1].public_key),
            (Recipient(id_kind(RECIPIENT)), NodeDelay(3)),
        )
    ]
    assert path == PATH
    assert create_packet(GEOMETRY, path, payload_kind(PAYLOAD), rng=seeded_rng(52)) == PACKET
    surb, keys = new_surb(GEOMETRY, path, rng=seeded_rng(53))
    assert (surb, keys.to_bytes()) == (SURB_VALUE, SURB_KEYS.to_bytes())
    assert create_surb_reply(GEOMETRY, payload_kind(surb.to_bytes()), payload_kind(PAYLOAD)) == (
        REPLY_ID,
        REPLY,
    )
    copy = SURB(key_kind(surb.header), id_kind(surb.first_hop), key_kind(surb.replier_key))
    assert copy == surb and SURB.from_bytes(GEOMETRY, key_kind(surb.to_bytes())) == surb


@settings(max_examples=30, deadline=None)
@given(kinds, kinds)
def test_surb_keys_take_any_bytes_like(data_kind: type, key_kind: type) -> None:
    keys = SURBKeys(
        key_kind(SURB_KEYS.surb_id),
        key_kind(SURB_KEYS.replier_key),
        [key_kind(k) for k in SURB_KEYS.hop_keys],  # type: ignore[arg-type]
    )
    assert keys == SURB_KEYS == SURBKeys.from_bytes(data_kind(SURB_KEYS.to_bytes()))
    surb_id, payload = ARRIVED.surb_id, ARRIVED.payload  # type: ignore[union-attr]
    assert decrypt_surb_payload(GEOMETRY, keys, data_kind(surb_id), data_kind(payload)) == PAYLOAD


@settings(max_examples=30, deadline=None)
@given(kinds)
def test_keys_commands_and_lioness_take_any_bytes_like(kind: type) -> None:
    node = NODES[0].key
    assert SphinxKey(node.epoch, kind(node.private_key), kind(node.public_key)) == node
    assert NextNodeHop(kind(RECIPIENT), kind(RECIPIENT)) == NextNodeHop(RECIPIENT, RECIPIENT)
    assert SurbReply(kind(RECIPIENT[:16])).surb_id == RECIPIENT[:16]
    key = bytes(range(192))
    block = lioness.encrypt(key, PAYLOAD)
    assert lioness.encrypt(kind(key), kind(PAYLOAD)) == block
    assert lioness.decrypt(kind(key), kind(block)) == PAYLOAD
    assert lioness.lioness_key(kind(key[:48])) == lioness.lioness_key(key[:48])


not_bytes = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(0, 255), min_size=1, max_size=3),
)
not_int = st.one_of(
    st.none(), st.text(max_size=10), st.floats(), st.booleans(), st.binary(max_size=4)
)

BYTES_ARGUMENTS: dict[str, tuple[Callable[[Any], object], type[SphinxError]]] = {
    "unwrap keys": (lambda v: unwrap(GEOMETRY, v, PACKET), InvalidKeyError),
    "unwrap packet": (lambda v: unwrap(GEOMETRY, KEY, v), InvalidPacketError),
    "unwrap_header keys": (lambda v: unwrap_header(GEOMETRY, v, HEADER), InvalidKeyError),
    "unwrap_header header": (lambda v: unwrap_header(GEOMETRY, KEY, v), InvalidPacketError),
    "create_packet path": (lambda v: create_packet(GEOMETRY, v, PAYLOAD), PathError),
    "create_packet payload": (lambda v: create_packet(GEOMETRY, PATH, v), InvalidPacketError),
    "new_surb path": (lambda v: new_surb(GEOMETRY, v), PathError),
    "create_surb_reply surb": (lambda v: create_surb_reply(GEOMETRY, v, PAYLOAD), InvalidSURBError),
    "create_surb_reply payload": (
        lambda v: create_surb_reply(GEOMETRY, SURB_VALUE, v),
        InvalidPacketError,
    ),
    "decrypt_surb_payload keys": (
        lambda v: decrypt_surb_payload(GEOMETRY, v, SURB_KEYS.surb_id, REPLY),
        InvalidSURBError,
    ),
    "decrypt_surb_payload surb_id": (
        lambda v: decrypt_surb_payload(GEOMETRY, SURB_KEYS, v, REPLY),
        InvalidSURBError,
    ),
    "decrypt_surb_payload payload": (
        lambda v: decrypt_surb_payload(GEOMETRY, SURB_KEYS, SURB_KEYS.surb_id, v),
        InvalidPacketError,
    ),
    "SURB.from_bytes": (lambda v: SURB.from_bytes(GEOMETRY, v), InvalidSURBError),
    "SURB header": (lambda v: SURB(v, RECIPIENT, bytes(48)), InvalidSURBError),
    "SURB first_hop": (lambda v: SURB(HEADER, v, bytes(48)), InvalidSURBError),
    "SURB replier_key": (lambda v: SURB(HEADER, RECIPIENT, v), InvalidSURBError),
    "SURBKeys.from_bytes": (lambda v: SURBKeys.from_bytes(v), InvalidSURBError),
    "SURBKeys surb_id": (lambda v: SURBKeys(v, bytes(48), (bytes(48),)), InvalidSURBError),
    "SURBKeys hop_keys": (lambda v: SURBKeys(bytes(16), bytes(48), v), InvalidSURBError),
    "PathHop node_id": (lambda v: PathHop(v, KEY), PathError),
    "PathHop public_key": (lambda v: PathHop(RECIPIENT, v), PathError),
    "PathHop commands": (lambda v: PathHop(RECIPIENT, KEY, v), PathError),
    "Recipient": (lambda v: Recipient(v), InvalidCommandError),
    "NextNodeHop": (lambda v: NextNodeHop(RECIPIENT, v), InvalidCommandError),
    "SurbReply": (lambda v: SurbReply(v), InvalidCommandError),
    "SphinxKey private_key": (lambda v: SphinxKey(1, v, KEY), InvalidKeyError),
    "SphinxKey public_key": (lambda v: SphinxKey(1, KEY, v), InvalidKeyError),
    "SphinxKey.from_private_key": (lambda v: SphinxKey.from_private_key(1, v), InvalidKeyError),
    "NodeKeys": (lambda v: NodeKeys(v), InvalidKeyError),
    "generate_keypair rng": (lambda v: generate_keypair(rng=lambda n: v), InvalidKeyError),
    "replay_tag": (lambda v: replay_tag(v), InvalidKeyError),
    "lioness key": (lambda v: lioness.encrypt(v, PAYLOAD), InvalidKeyError),
    "lioness block": (lambda v: lioness.decrypt(bytes(192), v), InvalidPacketError),
    "lioness_key": (lambda v: lioness.lioness_key(v), InvalidKeyError),
}

GEOMETRY_ARGUMENTS: dict[str, Callable[[Any], object]] = {
    "unwrap": lambda g: unwrap(g, KEY, PACKET),
    "unwrap_header": lambda g: unwrap_header(g, KEY, HEADER),
    "create_packet": lambda g: create_packet(g, PATH, PAYLOAD),
    "new_surb": lambda g: new_surb(g, PATH),
    "create_surb_reply": lambda g: create_surb_reply(g, SURB_VALUE, PAYLOAD),
    "decrypt_surb_payload": lambda g: decrypt_surb_payload(g, SURB_KEYS, SURB_KEYS.surb_id, REPLY),
    "SURB.from_bytes": lambda g: SURB.from_bytes(g, SURB_VALUE.to_bytes()),
}

INT_ARGUMENTS: dict[str, tuple[Callable[[Any], object], type[SphinxError]]] = {
    "Geometry hops": (lambda v: Geometry(hops=v, user_payload_size=10), GeometryError),
    "Geometry user_payload_size": (lambda v: Geometry(hops=5, user_payload_size=v), GeometryError),
    "Geometry nike": (lambda v: Geometry(hops=5, user_payload_size=10, nike=v), GeometryError),
    "Geometry sprp": (lambda v: Geometry(hops=5, user_payload_size=10, sprp=v), GeometryError),
    "NodeDelay": (lambda v: NodeDelay(v), InvalidCommandError),
    "SphinxKey epoch": (lambda v: SphinxKey(v, KEY, NODES[0].public_key), InvalidKeyError),
    "SphinxKey.generate epoch": (lambda v: SphinxKey.generate(v), InvalidKeyError),
    "unwrap max_delay_ms": (
        lambda v: unwrap(GEOMETRY, KEY, PACKET, max_delay_ms=v),
        InvalidArgumentError,
    ),
}


@pytest.mark.parametrize("name", sorted(BYTES_ARGUMENTS))
@settings(max_examples=25, deadline=None)
@given(value=not_bytes)
def test_non_bytes_raise_the_arguments_sphinx_error(name: str, value: object) -> None:
    call, error = BYTES_ARGUMENTS[name]
    with pytest.raises(error):
        call(value)


@pytest.mark.parametrize("name", sorted(GEOMETRY_ARGUMENTS))
@settings(max_examples=10, deadline=None)
@given(value=st.one_of(not_bytes, st.binary(max_size=8)))
def test_a_non_geometry_raises_geometry_error(name: str, value: object) -> None:
    with pytest.raises(GeometryError):
        GEOMETRY_ARGUMENTS[name](value)


@pytest.mark.parametrize("name", sorted(INT_ARGUMENTS))
@settings(max_examples=25, deadline=None)
@given(value=not_int)
def test_non_integers_raise_the_arguments_sphinx_error(name: str, value: object) -> None:
    call, error = INT_ARGUMENTS[name]
    assume(value is not None or not name.startswith("unwrap"))  # None: no cap
    with pytest.raises(error):
        call(value)


@pytest.mark.parametrize("hops", [5.0, True, "5", None, b"\x05", 5 + 0j])
def test_geometry_hops_must_be_an_int(hops: object) -> None:
    with pytest.raises(GeometryError, match="hops must be an integer"):
        Geometry(hops=hops, user_payload_size=100)  # type: ignore[arg-type]
