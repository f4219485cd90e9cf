"""The discrete-event model: streams, queues, paths, timings, and determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.config import SimConfig
from simulations.errors import EventLogError
from simulations.eventlog import EventLog, NodeRole, PacketKind
from simulations.model import generate
from simulations.pools import cover_links
from simulations.runner import run
from simulations.traffic import fifo_slots, poisson_streams

COVERED = SimConfig(
    clients=60,
    layers=3,
    width=4,
    gateways=3,
    mu=8.0,
    lambda_p=1.0,
    lambda_l=0.7,
    lambda_d=0.4,
    lambda_m=1.5,
    workload="poisson",
    message_rate=0.4,
    active_fraction=0.5,
    corrupt_fraction=0.25,
    link_latency=0.005,
    duration=200.0,
    warmup=5.0,
    targets=300,
    seed=11,
)


@pytest.fixture(scope="module")
def log() -> EventLog:
    generated = generate(COVERED, np.random.default_rng(COVERED.seed))
    generated.validate()
    return generated


def test_poisson_streams_have_the_right_rate_and_order() -> None:
    owner, times = poisson_streams(500, 2.0, 100.0, np.random.default_rng(0))
    assert owner.shape[0] == pytest.approx(500 * 2.0 * 100.0, rel=0.02)
    assert np.all(np.diff(owner) >= 0)
    same = owner[1:] == owner[:-1]
    assert np.all(np.diff(times)[same] >= 0)
    assert times.min() >= 0 and times.max() <= 100.0


def _fifo_by_hand(slots: list[list[float]], messages: list[list[float]]) -> list[int]:
    out: list[int] = []
    for client_slots, client_msgs in zip(slots, messages, strict=True):
        last = -1
        for arrival in client_msgs:
            j = next((i for i, s in enumerate(client_slots) if s > arrival and i > last), -1)
            out.append(j)
            if j >= 0:
                last = j
            else:
                last = len(client_slots)
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 40), max_size=8).map(sorted),
            st.lists(st.integers(0, 40), max_size=8).map(sorted),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_fifo_slots_match_a_queue_run_by_hand(per_client: list[tuple[list[int], list[int]]]) -> None:
    # Integer times make ties between a slot and a message likely: a message that arrives
    # exactly at a slot's time waits for the next slot.
    slots = [[float(t) for t in s] for s, _ in per_client]
    msgs = [[float(t) for t in m] for _, m in per_client]
    slot_owner = np.array([c for c, s in enumerate(slots) for _ in s], np.int64)
    msg_owner = np.array([c for c, m in enumerate(msgs) for _ in m], np.int64)
    got = fifo_slots(
        slot_owner,
        np.array([t for s in slots for t in s]),
        msg_owner,
        np.array([t for m in msgs for t in m]),
        len(slots),
    )
    assert got.tolist() == _fifo_by_hand(slots, msgs)


def test_payload_streams_carry_real_messages_in_order(log: EventLog) -> None:
    real = np.flatnonzero(log.kind == PacketKind.REAL)
    assert np.all(log.created[real] <= log.emitted[real])
    for client in np.unique(log.source[real])[:20]:
        mine = real[log.source[real] == client]
        order = np.argsort(log.emitted[mine])
        assert np.all(np.diff(log.created[mine][order]) >= 0), "a client's queue is first in, first out"
    active = np.unique(log.source[real]).shape[0]
    assert active == pytest.approx(COVERED.clients * COVERED.active_fraction, abs=1)
    assert real.shape[0] == pytest.approx(30 * COVERED.message_rate * COVERED.duration, rel=0.08)
    assert np.all(log.recipient[real] != log.source[real])


def test_stream_rates(log: EventLog) -> None:
    d = COVERED.duration
    counts = np.bincount(log.kind, minlength=4)
    payload = counts[PacketKind.REAL] + counts[PacketKind.DROP]
    expected_payload = COVERED.clients * (COVERED.lambda_p + COVERED.lambda_d) * d
    assert payload == pytest.approx(expected_payload, rel=0.05)
    assert counts[PacketKind.LOOP] == pytest.approx(COVERED.clients * COVERED.lambda_l * d, rel=0.05)
    assert counts[PacketKind.MIX_LOOP] == pytest.approx(COVERED.mixes * COVERED.lambda_m * d, rel=0.05)


def test_paths_are_stratified(log: EventLog) -> None:
    g, w, layers = COVERED.gateways, COVERED.width, COVERED.layers
    client = np.flatnonzero(log.from_client())
    hops = np.diff(log.first_row)
    assert np.all(hops[client] == layers + 2)
    nodes = log.node[log.first_row[client][:, None] + np.arange(layers + 2)[None, :]]
    assert np.all(nodes[:, 0] == log.source[client] % g), "clients enter through their own gateway"
    for layer in range(layers):
        assert np.all(log.node_layer[nodes[:, 1 + layer]] == layer)
    assert np.all(log.node_role[nodes[:, -1]] == NodeRole.EGRESS)
    delivered_to = np.where(log.kind[client] == PacketKind.DROP, -1, log.recipient[client])
    to_someone = delivered_to >= 0
    assert np.all(nodes[to_someone, -1] - (g + layers * w) == delivered_to[to_someone] % g)
    loops = client[log.kind[client] == PacketKind.LOOP]
    assert np.all(log.recipient[loops] == log.source[loops])



def test_mix_loops_travel_the_layers_and_a_gateway_like_any_packet(log: EventLog) -> None:
    g, w, layers = COVERED.gateways, COVERED.width, COVERED.layers
    hops = np.diff(log.first_row)
    loops = np.flatnonzero(log.kind == PacketKind.MIX_LOOP)
    assert loops.shape[0] > 100
    assert np.all(hops[loops] == layers + 1)
    nodes = log.node[log.first_row[loops][:, None] + np.arange(layers + 1)[None, :]]
    # The mix holds its own loop first, like any packet in its pool.
    assert np.all(nodes[:, 0] == log.source[loops])
    assert np.all(log.t_in[log.first_row[loops]] == log.emitted[loops])
    origin = log.node_layer[log.source[loops]].astype(np.int64)
    for step in range(1, layers + 1):
        expected = origin + step
        at = log.node[log.first_row[loops] + step]
        gateway = expected == layers
        # Later layers, then a gateway (its forwarding side, towards layer 1), then earlier layers.
        assert np.all(log.node_role[at[gateway]] == NodeRole.INGRESS)
        assert np.all(log.node_layer[at[~gateway]] == np.where(expected > layers, expected - layers - 1, expected)[~gateway])
    # It comes back to its mix over one more link, and is consumed there.
    last = log.last_row()[loops]
    assert np.allclose(log.received[loops] - log.t_out[last], COVERED.link_latency)
    assert np.all(nodes[:, 0] < g + layers * w)


def test_gateway_loops_go_through_every_layer_and_back(log: EventLog) -> None:
    layers = COVERED.layers
    loops = np.flatnonzero(log.kind == PacketKind.GATEWAY_LOOP)
    assert loops.shape[0] == pytest.approx(COVERED.gateways * COVERED.lambda_m * COVERED.duration, rel=0.15)
    assert np.all(np.diff(log.first_row)[loops] == layers + 1)
    nodes = log.node[log.first_row[loops][:, None] + np.arange(layers + 1)[None, :]]
    assert np.all(nodes[:, 0] == log.source[loops])
    assert np.all(log.node_role[nodes[:, 0]] == NodeRole.INGRESS)
    for layer in range(layers):
        assert np.all(log.node_layer[nodes[:, 1 + layer]] == layer)


def test_hop_timings(log: EventLog) -> None:
    held = log.t_out - log.t_in
    assert held.mean() == pytest.approx(1 / COVERED.mu, rel=0.02)
    assert held.std() == pytest.approx(1 / COVERED.mu, rel=0.03)
    later = np.flatnonzero(log.row_hop() > 0)
    assert np.allclose(log.t_in[later] - log.t_out[later - 1], COVERED.link_latency)
    clients = log.from_client()
    assert np.allclose(log.t_in[log.first_row[:-1]][clients] - log.emitted[clients], COVERED.link_latency)
    # The last link, to the recipient or back to a loop's sender, has its latency too; a drop
    # is discarded where its path ends.
    last_link = log.received - log.t_out[log.last_row()]
    drops = log.kind == PacketKind.DROP
    assert np.allclose(last_link[~drops], COVERED.link_latency)
    assert np.all(last_link[drops] == 0.0)


def test_every_link_of_a_path_adds_its_latency() -> None:
    # Four links on a 3-layer path without gateways: client → L1 → L2 → L3 → recipient.
    config = SimConfig(
        clients=20, layers=3, width=2, gateways=0, mu=1e4, link_latency=0.5, duration=30.0, warmup=5.0, targets=50
    )
    result = run(config)
    assert result.summary.network_latency_mean == pytest.approx(4 * 0.5 + 3 / 1e4, rel=1e-3)
    assert config.path_delay == pytest.approx(4 * 0.5 + 3 / 1e4)


def test_corrupt_mixes_are_a_random_fraction(log: EventLog) -> None:
    mixes = log.node_role == NodeRole.MIX
    assert int(log.corrupt[mixes].sum()) == round(COVERED.corrupt_fraction * COVERED.mixes)
    assert not log.corrupt[~mixes].any()
    other = generate(COVERED.replace(seed=12), np.random.default_rng(12))
    assert not np.array_equal(other.corrupt, log.corrupt) or other.corrupt.sum() == 0


def test_the_same_seed_gives_the_same_run() -> None:
    config = COVERED.replace(duration=40.0)
    a, b = run(config), run(config)
    assert a.summary == b.summary
    assert np.array_equal(a.entropy, b.entropy) and np.array_equal(a.latency, b.latency)
    c = run(config.replace(seed=config.seed + 1))
    assert not np.array_equal(a.entropy, c.entropy)


def test_a_broken_log_is_refused(log: EventLog) -> None:
    t_out = log.t_out.copy()
    t_out[5] = log.t_in[5] - 1.0
    broken = EventLog(
        **{name: getattr(log, name) for name in EventLog.__slots__ if name != "t_out"}, t_out=t_out
    )
    with pytest.raises(EventLogError, match="leaves a node before"):
        broken.validate()


def test_corrupt_counts_are_reported_and_rounding_warns(caplog: pytest.LogCaptureFixture) -> None:
    config = SimConfig(clients=30, layers=3, width=3, corrupt_fraction=0.05, targets=50, seed=1)
    with caplog.at_level(logging.WARNING, logger="simulations.topology"):
        result = run(config)
    assert result.summary.corrupt_mix_count == 0
    assert "rounds to 0 corrupt mixes" in caplog.text
    assert run(config.replace(corrupt_fraction=0.2)).summary.corrupt_mix_count == 2


def test_corrupt_nodes_by_layer_and_by_count() -> None:
    config = SimConfig(clients=30, layers=3, width=4, gateways=2, corrupt_layers=(1,), corrupt_mixes=2, seed=5)
    log = generate(config, np.random.default_rng(5))
    mixes = log.node_role == NodeRole.MIX
    first_layer = mixes & (log.node_layer == 0)
    assert np.all(log.corrupt[first_layer])
    assert int(log.corrupt[mixes & ~first_layer].sum()) == 2
    assert not log.corrupt[~mixes].any()
    summary = run(config.replace(targets=50)).summary
    assert (summary.corrupt_mix_count, summary.corrupt_gateway_count) == (6, 0)
    only_last = generate(config.replace(corrupt_layers=(3,), corrupt_mixes=None), np.random.default_rng(5))
    assert np.array_equal(only_last.corrupt[mixes], log.node_layer[mixes] == 2)


LOOPY = SimConfig(clients=40, layers=3, width=2, gateways=2, mu=10.0, lambda_l=0.5, targets=300, seed=6)


def test_recognised_loops_leave_the_adversary_exactly_where_no_loops_would() -> None:
    # Node loops are drawn after every client packet, so a run with loops has the same client
    # traffic as one without; an adversary that recognises loops removes them and sees the same.
    without = run(LOOPY)
    recognised = run(LOOPY.replace(lambda_m=20.0, node_loops="recognised"))
    assert np.allclose(recognised.entropy, without.entropy, atol=1e-9)
    assert np.allclose(recognised.forward_entropy, without.forward_entropy, atol=1e-9)


def test_indistinguishable_loops_hide_more_than_recognised_ones() -> None:
    hidden = run(LOOPY.replace(lambda_m=20.0))
    recognised = run(LOOPY.replace(lambda_m=20.0, node_loops="recognised"))
    assert hidden.summary.entropy_mean > recognised.summary.entropy_mean
    assert hidden.summary.forward_entropy_mean > recognised.summary.forward_entropy_mean + 0.3
    assert hidden.summary.node_mass_mean > 0.1  # loops held in the mixes' own pools share the mass


def test_only_the_gateways_turn_of_a_mix_loop_is_a_link_no_client_packet_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = generate(LOOPY.replace(lambda_m=5.0, duration=20.0, warmup=2.0), np.random.default_rng(1))
    cover = cover_links(log)
    # Large networks classify each link directly instead of through the table: same answer.
    monkeypatch.setattr("simulations.pools._LINK_TABLE_NODES", 0)
    assert np.array_equal(cover_links(log), cover)
    packet = log.row_packet()
    assert not cover[np.isin(packet, np.flatnonzero(log.kind != PacketKind.MIX_LOOP))].any()
    turned = np.flatnonzero(cover)
    assert turned.shape[0] > 0
    assert np.all(log.node_role[log.node[turned]] == NodeRole.INGRESS)
    assert np.all(log.node_layer[log.node[turned - 1]] == LOOPY.layers - 1)
