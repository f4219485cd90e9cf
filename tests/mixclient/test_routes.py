"""Routes from a real, authority-computed consensus whose nodes hold real Sphinx keys: the
packets built on them are unwrapped hop by hop with those keys."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace

import pytest

from directory.compute import compute_consensus
from directory.consensus import Consensus
from directory.descriptor import Address, Role, sign_descriptor
from directory.epoch import EpochClock
from directory.parameters import Parameters
from directory.shared_random import Reveal, reveal_for
from directory.signatures import SigningKey
from directory.vote import sign_vote
from mixclient.routes import (
    Route,
    RouteError,
    choose_route,
    forward_route,
    loop_route,
    surb_route,
)
from sphinx_packets import (
    Deliver,
    DeliverSurbReply,
    Forward,
    Geometry,
    NodeDelay,
    Recipient,
    SphinxKey,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    new_surb,
    unwrap,
)

GEOMETRY = Geometry.default()
EPOCH = 7


@dataclass
class Network:
    consensus: Consensus
    keys: dict[bytes, SphinxKey]

    @property
    def gateways(self) -> tuple[bytes, ...]:
        return self.consensus.gateways


def build_network(
    seed: int = 1, *, mixes: int = 9, gateways: int = 3, parameters: Parameters | None = None
) -> Network:
    """A consensus computed by three authorities from signed descriptors, as the directory
    computes it, each node with a Sphinx key pair whose private half the test keeps."""
    rng = random.Random(seed)
    clock = EpochClock(origin_ms=0, length_ms=60_000)
    authorities = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(3)]
    descriptors = []
    keys: dict[bytes, SphinxKey] = {}
    for index in range(mixes + gateways):
        identity = SigningKey.from_seed(rng.randbytes(32))
        sphinx = [SphinxKey.generate(EPOCH + i, rng=rng.randbytes) for i in range(3)]
        role = Role.MIX if index < mixes else Role.GATEWAY
        descriptor = sign_descriptor(
            identity,
            epoch=EPOCH,
            name=f"node-{index}",
            role=role,
            link_key=rng.randbytes(32),
            sphinx_keys=tuple(k.public_key for k in sphinx),
            addresses=(Address("127.0.0.1", 4000 + index),),
            version="0.1.0",
        )
        descriptors.append(descriptor)
        keys[descriptor.node_id] = sphinx[0]
    reveals = [Reveal(EPOCH, k.public_key, reveal_for(k, EPOCH)) for k in authorities]
    votes = [
        sign_vote(
            key,
            epoch=EPOCH,
            parameters=parameters or Parameters.default(),
            geometry_hash=GEOMETRY.hash(),
            commitment=reveal.commitment(),
            descriptors=descriptors,
        )
        for key, reveal in zip(authorities, reveals, strict=True)
    ]
    consensus = compute_consensus(
        votes,
        epoch=EPOCH,
        authorities=[k.public_key for k in authorities],
        clock=clock,
        reveals=reveals,
    )
    return Network(consensus, keys)


@pytest.fixture(scope="module")
def network() -> Network:
    return build_network()


def walk(
    network: Network, first_hop: bytes, packet: bytes
) -> tuple[list[bytes], list[int], object]:
    """Unwrap `packet` at each hop with that node's private key: (node ids visited, delays
    read, final result)."""
    visited, delays = [first_hop], []
    node = first_hop
    for _ in range(GEOMETRY.hops):
        result = unwrap(GEOMETRY, network.keys[node], packet)
        delays.append(result.delay_ms)
        if not isinstance(result, Forward):
            return visited, delays, result
        node, packet = result.next_node_id, result.packet
        visited.append(node)
    raise AssertionError("the packet did not reach a last hop")


def test_a_forward_packet_visits_both_gateways_and_one_mix_per_layer(network: Network) -> None:
    entry, exit_ = network.gateways[0], network.gateways[1]
    mailbox = bytes(range(32))
    route = forward_route(network.consensus, entry, exit_, mailbox, random.Random(5))
    payload = random.Random(6).randbytes(GEOMETRY.user_payload_size)
    visited, delays, result = walk(
        network, route.first_hop, create_packet(GEOMETRY, route.hops, payload)
    )
    layers = network.consensus.layers
    assert visited[0] == entry and visited[-1] == exit_
    assert len(visited) == len(layers) + 2 == GEOMETRY.hops
    for layer, node in zip(layers, visited[1:-1], strict=True):
        assert node in layer
    assert isinstance(result, Deliver)
    assert result.recipient_id == mailbox and result.payload == payload
    assert tuple(delays) == route.delays_ms
    assert route.delay_ms == sum(delays)


def test_a_loop_comes_back_to_the_own_mailbox_through_every_layer(network: Network) -> None:
    own = network.gateways[2]
    mailbox = b"\x11" * 32
    route = loop_route(network.consensus, own, mailbox, random.Random(8))
    visited, _, result = walk(
        network,
        route.first_hop,
        create_packet(GEOMETRY, route.hops, bytes(GEOMETRY.user_payload_size)),
    )
    assert visited[0] == visited[-1] == own
    assert [network.consensus.layer_of(n) for n in visited[1:-1]] == [0, 1, 2]
    assert isinstance(result, Deliver) and result.recipient_id == mailbox


@pytest.mark.parametrize("reply_surb", [False, True], ids=["surb-ack", "reply-surb"])
def test_a_reply_on_a_surb_route_reaches_the_own_mailbox(
    network: Network, reply_surb: bool
) -> None:
    """A SURB-ACK's path starts at layer 1 (the exit gateway sends the reply to the mix); a
    reply SURB's starts at the given gateway, through which the replier sends."""
    replier_gateway, own = network.gateways[0], network.gateways[2]
    mailbox = b"\x22" * 32
    rng = random.Random(9)
    first_hop = replier_gateway if reply_surb else None
    route = surb_route(network.consensus, own, mailbox, rng, first_hop_id=first_hop)
    surb, keys = new_surb(GEOMETRY, route.hops, rng=rng.randbytes)
    reply = rng.randbytes(GEOMETRY.user_payload_size)
    first_hop_id, packet = create_surb_reply(GEOMETRY, surb, reply)
    visited, delays, result = walk(network, first_hop_id, packet)
    mixes = visited[1:-1] if reply_surb else visited[:-1]
    assert [network.consensus.layer_of(n) for n in mixes] == [0, 1, 2]
    assert visited[-1] == own
    if reply_surb:
        assert visited[0] == replier_gateway
    assert isinstance(result, DeliverSurbReply)
    assert result.recipient_id == mailbox and result.surb_id == keys.surb_id
    assert decrypt_surb_payload(GEOMETRY, keys, result.surb_id, result.payload) == reply
    assert sum(delays) == route.delay_ms and len(route.hops) == len(visited)


def test_mixes_are_uniform_within_each_layer(network: Network) -> None:
    rng = random.Random(10)
    entry, exit_ = network.gateways[:2]
    draws = 3000
    counts = [Counter[bytes]() for _ in network.consensus.layers]
    for _ in range(draws):
        route = choose_route(network.consensus, entry, exit_, rng, mailbox_id=bytes(32))
        for counter, hop in zip(counts, route.hops[1:-1], strict=True):
            counter[hop.node_id] += 1
    for layer, counter in zip(network.consensus.layers, counts, strict=True):
        assert set(counter) == set(layer)
        expected = draws / len(layer)
        # chi-square with len(layer)-1 = 2 degrees of freedom; 13.8 is its 0.999 quantile
        chi2 = sum((counter[n] - expected) ** 2 / expected for n in layer)
        assert chi2 < 13.8


def test_delays_are_exponential_with_the_consensus_mean_and_capped() -> None:
    parameters = replace(Parameters.default(), mean_delay_ms=40)
    network = build_network(2, parameters=parameters)
    rng = random.Random(11)
    entry, exit_ = network.gateways[:2]
    delays: list[int] = []
    for _ in range(4000):
        route = choose_route(network.consensus, entry, exit_, rng, mailbox_id=bytes(32))
        for hop, delay in zip(route.hops, route.delays_ms, strict=True):
            assert NodeDelay(delay) in hop.commands
        delays.extend(route.delays_ms)
    n = len(delays)
    mean = sum(delays) / n
    # Exp(40): sd 40, so the standard error of the mean is 40/sqrt(n); 5 of them as bound
    assert abs(mean - 40) < 5 * 40 / n**0.5
    assert max(delays) <= parameters.max_delay_ms
    # P(X > 80) = e^-2 for an exponential with mean 40
    share = sum(d > 80 for d in delays) / n
    assert abs(share - 0.1353) < 0.02


def test_a_tiny_mean_delay_hits_the_cap() -> None:
    network = build_network(3, parameters=replace(Parameters.default(), mean_delay_ms=1))
    rng = random.Random(12)
    entry, exit_ = network.gateways[:2]
    delays = [
        d
        for _ in range(3000)
        for d in choose_route(network.consensus, entry, exit_, rng, mailbox_id=bytes(32)).delays_ms
    ]
    assert max(delays) <= 20  # the consensus cap is 20 x the mean


def test_the_route_depends_only_on_the_rng(network: Network) -> None:
    entry, exit_ = network.gateways[:2]
    first = choose_route(network.consensus, entry, exit_, random.Random(4), mailbox_id=bytes(32))
    again = choose_route(network.consensus, entry, exit_, random.Random(4), mailbox_id=bytes(32))
    assert first == again
    assert isinstance(first, Route)


def test_the_last_hop_carries_the_recipient_only(network: Network) -> None:
    mailbox = b"\x33" * 32
    route = choose_route(
        network.consensus,
        network.gateways[0],
        network.gateways[1],
        random.Random(1),
        mailbox_id=mailbox,
    )
    assert Recipient(mailbox) in route.hops[-1].commands
    assert all(not any(isinstance(c, Recipient) for c in hop.commands) for hop in route.hops[:-1])


def test_bad_gateways_and_mailboxes_are_refused_without_naming_them(network: Network) -> None:
    consensus = network.consensus
    gateway = network.gateways[0]
    mix = consensus.layers[0][0]
    rng = random.Random(1)
    stranger = b"\xee" * 32
    for entry, exit_ in ((stranger, gateway), (gateway, stranger), (mix, gateway), (gateway, mix)):
        with pytest.raises(RouteError) as caught:
            choose_route(consensus, entry, exit_, rng, mailbox_id=bytes(32))
        assert stranger.hex() not in str(caught.value) and mix.hex() not in str(caught.value)
    with pytest.raises(RouteError):
        choose_route(consensus, gateway, gateway, rng, mailbox_id=bytes(31))


def test_an_empty_layer_is_refused(network: Network) -> None:
    consensus = network.consensus
    broken = replace(consensus, layers=(consensus.layers[0], (), consensus.layers[2]))
    with pytest.raises(RouteError, match="empty mix layer"):
        choose_route(
            broken, network.gateways[0], network.gateways[1], random.Random(1), mailbox_id=bytes(32)
        )


def test_a_consensus_of_a_later_epoch_uses_that_epochs_keys(network: Network) -> None:
    later = replace(network.consensus, epoch=EPOCH + 1)
    route = choose_route(
        later, network.gateways[0], network.gateways[1], random.Random(2), mailbox_id=bytes(32)
    )
    for hop in route.hops:
        assert hop.public_key == later.descriptor(hop.node_id).sphinx_keys[1]
    too_late = replace(network.consensus, epoch=EPOCH + 3)
    with pytest.raises(RouteError, match="no Sphinx key"):
        choose_route(
            too_late,
            network.gateways[0],
            network.gateways[1],
            random.Random(2),
            mailbox_id=bytes(32),
        )
