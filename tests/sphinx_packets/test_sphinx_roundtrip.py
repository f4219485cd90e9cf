"""Round trips: packets and SURB replies over random paths deliver what was sent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphinx_packets import (
    SURB,
    Deliver,
    DeliverSurbReply,
    Forward,
    Geometry,
    NodeKeys,
    SphinxKey,
    SURBKeys,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    new_surb,
    unwrap,
)
from sphinx_packets.geometry import PER_HOP_ROUTING_INFO_SIZE
from sphinx_packets.primitives import derive_packet_keys, header_stream, x25519
from tests.sphinx_packets.helpers import forward_path, make_nodes, seeded_rng, walk

geometries = st.builds(
    Geometry, hops=st.integers(1, 5), user_payload_size=st.integers(1, 600)
) | st.just(Geometry.default())


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Geometry, int, int, bytes]:
    geometry = draw(geometries)
    hops = draw(st.integers(1, geometry.hops))
    seed = draw(st.integers(0, 2**32))
    payload = draw(
        st.binary(min_size=geometry.user_payload_size, max_size=geometry.user_payload_size)
    )
    return geometry, hops, seed, payload


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.lists(st.integers(0, 2**32 - 1), min_size=5, max_size=5))
def test_forward_packet_round_trip(scenario: tuple, delays: list[int]) -> None:
    geometry, hops, seed, payload = scenario
    rng = seeded_rng(seed)
    nodes = make_nodes(hops, rng)
    recipient = rng(32)
    packet = create_packet(
        geometry, forward_path(nodes, recipient, delays[:hops]), payload, rng=rng
    )
    tags = set()
    for i, node in enumerate(nodes):
        assert len(packet) == geometry.packet_size
        result = unwrap(geometry, node.private_key, packet)
        tags.add(result.replay_tag)
        assert result.key_epoch is None  # a bare private key has no epoch
        assert result.delay_ms == delays[i]  # the last hop (an exit gateway) holds it too
        if i < hops - 1:
            assert isinstance(result, Forward)
            assert result.next_node_id == nodes[i + 1].node_id
            packet = result.packet
        else:
            assert isinstance(result, Deliver)
            assert result.recipient_id == recipient
            assert result.payload == payload
    assert len(tags) == hops


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_surb_reply_round_trip(scenario: tuple) -> None:
    geometry, hops, seed, payload = scenario
    rng = seeded_rng(seed)
    nodes = make_nodes(hops, rng)
    recipient = rng(32)
    surb, keys = new_surb(geometry, forward_path(nodes, recipient), rng=rng)
    wire = surb.to_bytes()
    assert len(wire) == geometry.surb_size
    assert SURB.from_bytes(geometry, wire) == surb
    keys = SURBKeys.from_bytes(keys.to_bytes())
    first_hop, packet = create_surb_reply(geometry, wire, payload)
    assert (first_hop, packet) == create_surb_reply(geometry, surb, payload)
    assert first_hop == nodes[0].node_id == surb.first_hop
    assert len(packet) == geometry.packet_size
    result = walk(geometry, nodes, packet)
    assert isinstance(result, DeliverSurbReply)
    assert (result.recipient_id, result.surb_id) == (recipient, keys.surb_id)
    assert len(result.payload) == geometry.payload_size
    opened = decrypt_surb_payload(geometry, keys, result.surb_id, result.payload)
    assert opened == payload


def test_new_surb_draws_a_fresh_id_each_time() -> None:
    geometry = Geometry.default()
    nodes = make_nodes(3, seeded_rng(4))
    path = forward_path(nodes, b"r" * 32)
    ids = {new_surb(geometry, path)[1].surb_id for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 16 for i in ids)


def test_node_keys_report_the_epoch_that_matched() -> None:
    geometry = Geometry.default()
    rng = seeded_rng(11)
    nodes = make_nodes(2, rng, epoch=8)
    previous, following = SphinxKey.generate(7, rng=rng), SphinxKey.generate(9, rng=rng)
    payload = rng(geometry.user_payload_size)
    packet = create_packet(geometry, forward_path(nodes, b"m" * 32), payload, rng=rng)
    for order in [(nodes[0].key, previous, following), (previous, following, nodes[0].key)]:
        for keys in (NodeKeys(order), order, list(order)):
            result = unwrap(geometry, keys, packet)
            assert isinstance(result, Forward)
            assert result.key_epoch == 8
    assert unwrap(geometry, nodes[0].key, packet).key_epoch == 8
    forwarded = unwrap(geometry, NodeKeys((previous, nodes[0].key)), packet)
    assert isinstance(forwarded, Forward)
    final = unwrap(geometry, NodeKeys((nodes[1].key, following)), forwarded.packet)
    assert isinstance(final, Deliver)
    assert (final.payload, final.key_epoch) == (payload, 8)


def test_creation_is_deterministic_for_an_injected_rng() -> None:
    geometry = Geometry.default()
    nodes = make_nodes(5, seeded_rng(1))
    path = forward_path(nodes, b"r" * 32)
    payload = b"p" * geometry.user_payload_size
    first = create_packet(geometry, path, payload, rng=seeded_rng(7))
    assert first == create_packet(geometry, path, payload, rng=seeded_rng(7))
    assert first != create_packet(geometry, path, payload, rng=seeded_rng(8))


@pytest.mark.parametrize("hops", [1, 2, 3, 4, 5])
def test_short_paths_are_padded_with_random_bytes(hops: int) -> None:
    """The last hop must not learn the path length from zero slots in its routing info."""
    geometry = Geometry.default()
    nodes = make_nodes(hops, seeded_rng(hops))
    # Walk to the last hop's header by unwrapping the ones before it.
    payload = bytes(geometry.user_payload_size)
    packet = create_packet(
        geometry, forward_path(nodes, b"r" * 32), payload, rng=seeded_rng(hops)
    )
    for node in nodes[:-1]:
        result = unwrap(geometry, node.private_key, packet)
        assert isinstance(result, Forward)
        packet = result.packet
    last = nodes[-1]
    alpha = packet[2:34]
    keys = derive_packet_keys(x25519(last.private_key, alpha))
    slot = PER_HOP_ROUTING_INFO_SIZE
    beta = packet[34 : geometry.header_size - 32]
    rest = header_stream(keys, beta + bytes(slot))[slot:]
    zero_slots = [i for i in range(0, len(rest), slot) if rest[i : i + slot] == bytes(slot)]
    assert len(rest) == geometry.routing_info_size
    assert zero_slots == []


def test_default_geometry_fits_the_budget() -> None:
    geometry = Geometry.default()
    assert geometry.hops == 5
    assert geometry.packet_size <= 3200
    assert geometry.user_payload_size >= 2048
    assert geometry.packet_size == geometry.header_size + geometry.payload_size
    assert geometry.surb_size == geometry.header_size + 32 + 48
