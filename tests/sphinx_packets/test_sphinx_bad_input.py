"""Bad input: every malformed packet raises a `SphinxError` subclass and nothing else."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphinx_packets import (
    Deliver,
    DeliverSurbReply,
    Forward,
    Geometry,
    InvalidCommandError,
    InvalidKeyError,
    InvalidMACError,
    InvalidPacketError,
    InvalidSURBError,
    PathError,
    PathHop,
    PayloadTagError,
    SphinxError,
    SURBKeys,
    UnwrapResult,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    new_surb,
    unwrap,
    unwrap_header,
)
from sphinx_packets.commands import decode_commands
from sphinx_packets.primitives import replay_tag
from tests.sphinx_packets.helpers import (
    SMALL_GEOMETRY,
    forward_path,
    make_nodes,
    seeded_rng,
    walk,
)

GEOMETRY = SMALL_GEOMETRY
NODES = make_nodes(5, seeded_rng(99))
RECIPIENT = b"\x07" * 32
PAYLOAD = bytes(range(256))[: GEOMETRY.user_payload_size]
PACKET = create_packet(GEOMETRY, forward_path(NODES, RECIPIENT), PAYLOAD, rng=seeded_rng(5))

AD_END = 2
ALPHA_END = 34
MAC_START = GEOMETRY.header_size - 32
REGIONS = {
    "ad": (0, AD_END),
    "alpha": (AD_END, ALPHA_END),
    "beta": (ALPHA_END, MAC_START),
    "mac": (MAC_START, GEOMETRY.header_size),
}


def _flip(packet: bytes, bit: int) -> bytes:
    data = bytearray(packet)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def _walk(packet: bytes) -> UnwrapResult:
    return walk(GEOMETRY, NODES, packet)


@pytest.mark.parametrize("region", sorted(REGIONS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_flipped_header_bit_is_caught_at_the_first_hop(region: str, data: st.DataObject) -> None:
    start, end = REGIONS[region]
    bit = data.draw(st.integers(start * 8, end * 8 - 1))
    with pytest.raises(SphinxError) as caught:
        unwrap(GEOMETRY, NODES[0].private_key, _flip(PACKET, bit))
    assert caught.value.replay_tag is None  # refused before the MAC verified
    assert caught.value.key_epoch is None
    expected = {
        "ad": InvalidPacketError,
        "alpha": (InvalidMACError, InvalidKeyError),
        "beta": InvalidMACError,
        "mac": InvalidMACError,
    }[region]
    assert isinstance(caught.value, expected)


@settings(max_examples=40, deadline=None)
@given(st.integers(GEOMETRY.header_size * 8, GEOMETRY.packet_size * 8 - 1))
def test_a_flipped_payload_bit_is_caught_at_the_last_hop(bit: int) -> None:
    tampered = _flip(PACKET, bit)
    packet = tampered
    for node in NODES[:-1]:
        result = unwrap(GEOMETRY, node.private_key, packet)
        assert isinstance(result, Forward)
        packet = result.packet
    with pytest.raises(PayloadTagError) as caught:
        unwrap(GEOMETRY, NODES[-1].key, packet)
    assert caught.value.replay_tag == replay_tag(packet[2:34])
    assert caught.value.key_epoch == NODES[-1].key.epoch


def test_the_untampered_packet_is_delivered() -> None:
    result = _walk(PACKET)
    assert isinstance(result, Deliver)
    assert result.payload == PAYLOAD


def test_a_wrong_key_is_caught_at_the_first_hop() -> None:
    with pytest.raises(InvalidMACError):
        unwrap(GEOMETRY, NODES[1].private_key, PACKET)
    with pytest.raises(InvalidMACError):
        unwrap(GEOMETRY, os.urandom(32), PACKET)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, GEOMETRY.packet_size - 1), st.binary(min_size=1, max_size=64))
def test_truncated_and_extended_packets_are_rejected(cut: int, extra: bytes) -> None:
    with pytest.raises(InvalidPacketError):
        unwrap(GEOMETRY, NODES[0].private_key, PACKET[:cut])
    with pytest.raises(InvalidPacketError):
        unwrap(GEOMETRY, NODES[0].private_key, PACKET + extra)
    with pytest.raises(InvalidPacketError):
        unwrap_header(GEOMETRY, NODES[0].private_key, PACKET[: min(cut, GEOMETRY.header_size - 1)])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=GEOMETRY.packet_size, max_size=GEOMETRY.packet_size))
def test_random_packets_are_rejected(packet: bytes) -> None:
    with pytest.raises(SphinxError):
        unwrap(GEOMETRY, NODES[0].private_key, packet)


@pytest.mark.parametrize("alpha", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_alpha_is_rejected(alpha: bytes) -> None:
    packet = bytes(2) + alpha + PACKET[ALPHA_END:]
    with pytest.raises(InvalidKeyError):
        unwrap(GEOMETRY, NODES[0].private_key, packet)


@pytest.mark.parametrize("value", [None, "text", 12, [1, 2]])
def test_non_bytes_input_is_rejected(value: object) -> None:
    with pytest.raises(SphinxError):
        unwrap(GEOMETRY, NODES[0].private_key, value)  # type: ignore[arg-type]
    with pytest.raises(SphinxError):
        unwrap(GEOMETRY, value, PACKET)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=82))
def test_command_parser_raises_only_its_own_error(slot: bytes) -> None:
    try:
        commands = decode_commands(slot)
    except InvalidCommandError:
        return
    assert all(len(c.to_bytes()) <= len(slot) for c in commands)


def test_unknown_and_truncated_commands() -> None:
    with pytest.raises(InvalidCommandError, match="unknown"):
        decode_commands(b"\x42" + bytes(81))
    with pytest.raises(InvalidCommandError, match="truncated"):
        decode_commands(b"\x02" + bytes(10))
    with pytest.raises(InvalidCommandError, match="after the null"):
        decode_commands(b"\x00\x01" + bytes(80))


def test_a_flipped_surb_reply_payload_is_caught_by_its_creator() -> None:
    surb, keys = new_surb(GEOMETRY, forward_path(NODES, RECIPIENT), rng=seeded_rng(3))
    _, packet = create_surb_reply(GEOMETRY, surb, PAYLOAD)
    result = _walk(_flip(packet, GEOMETRY.header_size * 8 + 100))
    assert isinstance(result, DeliverSurbReply)
    with pytest.raises(PayloadTagError):
        decrypt_surb_payload(GEOMETRY, keys, result.surb_id, result.payload)
    intact = _walk(packet)
    assert isinstance(intact, DeliverSurbReply)
    assert decrypt_surb_payload(GEOMETRY, keys, intact.surb_id, intact.payload) == PAYLOAD
    other = SURBKeys(keys.surb_id, os.urandom(48), keys.hop_keys)
    with pytest.raises(PayloadTagError):
        decrypt_surb_payload(GEOMETRY, other, intact.surb_id, intact.payload)


def test_keys_of_another_surb_are_refused_before_decrypting() -> None:
    surb, keys = new_surb(GEOMETRY, forward_path(NODES, RECIPIENT), rng=seeded_rng(4))
    _, other_keys = new_surb(GEOMETRY, forward_path(NODES, RECIPIENT), rng=seeded_rng(5))
    result = _walk(create_surb_reply(GEOMETRY, surb, PAYLOAD)[1])
    assert isinstance(result, DeliverSurbReply)
    assert other_keys.surb_id != result.surb_id
    with pytest.raises(InvalidSURBError, match="another SURB"):
        decrypt_surb_payload(GEOMETRY, other_keys, result.surb_id, result.payload)
    # Even keys that would decrypt are refused under another id (the id is the key's label).
    relabelled = SURBKeys(other_keys.surb_id, keys.replier_key, keys.hop_keys)
    with pytest.raises(InvalidSURBError):
        decrypt_surb_payload(GEOMETRY, relabelled, result.surb_id, result.payload)


@settings(max_examples=100)
@given(st.binary(max_size=600))
def test_surb_inputs_raise_only_sphinx_errors(data: bytes) -> None:
    for call in (
        lambda: SURBKeys.from_bytes(data),
        lambda: create_surb_reply(GEOMETRY, data, PAYLOAD),
    ):
        try:
            call()
        except SphinxError:
            pass


def test_bad_paths_and_payloads_are_rejected() -> None:
    path = forward_path(NODES, RECIPIENT)
    with pytest.raises(PathError):
        create_packet(GEOMETRY, [], PAYLOAD)
    with pytest.raises(PathError):
        create_packet(GEOMETRY, path + path[:1], PAYLOAD)
    with pytest.raises(PathError):
        create_packet(GEOMETRY, path[:-1], PAYLOAD)  # last hop has no recipient
    with pytest.raises(InvalidPacketError):
        create_packet(GEOMETRY, path, PAYLOAD + b"x")
    with pytest.raises(PathError):
        PathHop(b"short", NODES[0].public_key)
    with pytest.raises(InvalidSURBError):
        SURBKeys.from_bytes(bytes(20))
    with pytest.raises(InvalidSURBError):
        create_surb_reply(Geometry.default(), bytes(10), PAYLOAD)
