"""The discrete-event model: route every packet and time every hop, as numpy arrays.

A Loopix mix holds each packet for the delay its sender drew, independently of every other
packet (an infinite-server queue), so packets never wait for one another. The whole run is
therefore a closed-form function of the random draws: emission times from the Poisson
streams, one uniformly chosen mix per layer, and one exponential delay per hop. Hop times are
running sums along each path, computed for all packets at once; no event queue is needed.

Every link adds ``link_latency``, the last one (to the recipient, or back to a loop's
sender) included. Paths, as the real network sends them:

* client packets: ingress of the sender's gateway → one mix per layer → egress of the
  recipient's gateway (real messages), of the sender's own gateway (loops), or of a random
  gateway (drops, discarded there after their delay);
* gateway loops: the gateway puts the loop in its own ingress pool, which holds it like any
  packet, then one mix per layer, and back to the gateway, which consumes it on arrival;
* mix loops: the mix puts the loop in its own pool, which holds it like any packet; then one
  mix in each later layer, a random gateway (which receives it from the last layer and
  forwards it to the first, as it would its own loops), one mix in each earlier layer, and
  back to the mix, which consumes it on arrival. Every link is one that other packets take,
  except the gateway's turn from the last layer to the first. Without gateways, the loop goes
  from the last layer straight to the first.
"""

from __future__ import annotations

import numpy as np

from simulations.config import SimConfig
from simulations.eventlog import EventLog, PacketKind
from simulations.topology import Topology, build_topology
from simulations.traffic import Emissions, client_emissions, node_loop_emissions


def generate(config: SimConfig, rng: np.random.Generator) -> EventLog:
    """Simulate one run of the network described by ``config``; all randomness comes from ``rng``."""
    topo_rng, traffic_rng, route_rng, delay_rng = rng.spawn(4)
    topology = build_topology(config, topo_rng)
    horizon = config.effective_duration
    clients = client_emissions(config, horizon, traffic_rng)
    mix_loops = node_loop_emissions(config.mixes, PacketKind.MIX_LOOP, config, horizon, traffic_rng)
    gateway_loops = node_loop_emissions(config.gateways, PacketKind.GATEWAY_LOOP, config, horizon, traffic_rng)

    paths = [
        _client_paths(config, topology, clients, route_rng),
        _mix_loop_paths(config, topology, mix_loops, route_rng),
        _gateway_loop_paths(config, topology, gateway_loops, route_rng),
    ]
    groups = (clients, mix_loops, gateway_loops)
    # Client packets cross a link to their first node; a node's loop starts in its own pool.
    timed = [
        _hop_times(group.emitted, nodes.shape[1], config, delay_rng, first_link=first_link)
        for group, nodes, first_link in zip(groups, paths, (True, False, False), strict=True)
    ]
    # Everything crosses a last link to its destination, except drops, discarded where they end.
    received = [
        t_out[:, -1] + np.where(group.kind == PacketKind.DROP, 0.0, config.link_latency)
        for group, (_, t_out) in zip(groups, timed, strict=True)
    ]
    hops = np.concatenate([np.full(len(g), p.shape[1], np.int64) for g, p in zip(groups, paths, strict=True)])
    first_row = np.zeros(hops.shape[0] + 1, np.int64)
    np.cumsum(hops, out=first_row[1:])
    return EventLog(
        clients=config.clients,
        horizon=horizon,
        kind=np.concatenate([g.kind for g in groups]),
        source=np.concatenate(
            [clients.source, topology.mix(0, mix_loops.source), topology.ingress(gateway_loops.source)]
        ),
        recipient=np.concatenate([g.recipient for g in groups]),
        created=np.concatenate([g.created for g in groups]),
        emitted=np.concatenate([g.emitted for g in groups]),
        received=np.concatenate(received),
        first_row=first_row,
        node=np.concatenate([p.ravel() for p in paths]).astype(np.int32),
        t_in=np.concatenate([t_in.ravel() for t_in, _ in timed]),
        t_out=np.concatenate([t_out.ravel() for _, t_out in timed]),
        node_role=topology.node_role,
        node_layer=topology.node_layer,
        corrupt=topology.corrupt,
    )


def _random_mixes(config: SimConfig, topology: Topology, layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly chosen mix in each given layer."""
    return topology.mix(layer, rng.integers(0, config.width, size=layer.shape))


def _client_paths(
    config: SimConfig, topology: Topology, packets: Emissions, rng: np.random.Generator
) -> np.ndarray:
    """Nodes of every client packet's path, one row per packet."""
    n = len(packets)
    mixes = _random_mixes(config, topology, np.broadcast_to(np.arange(config.layers), (n, config.layers)), rng)
    if config.gateways == 0:
        return mixes
    entry = topology.ingress(topology.client_gateway[packets.source])
    has_recipient = packets.recipient >= 0
    exit_gateway = np.where(
        has_recipient,
        topology.client_gateway[np.maximum(packets.recipient, 0)],
        rng.integers(0, config.gateways, size=n),
    )
    # Loops and real messages go to their recipient's gateway; drops to a random one.
    return np.concatenate([entry[:, None], mixes, topology.egress(exit_gateway)[:, None]], axis=1)


def _mix_loop_paths(
    config: SimConfig, topology: Topology, loops: Emissions, rng: np.random.Generator
) -> np.ndarray:
    """Nodes of every mix loop's path: its own mix, the later layers, a gateway, the earlier layers."""
    n, layers = len(loops), config.layers
    through_gateway = config.gateways > 0
    hops = layers + 1 if through_gateway else layers
    origin_layer = loops.source // config.width
    step = origin_layer[:, None] + np.arange(hops)[None, :]
    if through_gateway:
        # Positions past the last layer: the gateway at step == layers, then layers 0, 1, …
        layer = np.where(step < layers, step, step - layers - 1)
    else:
        layer = step % layers
    nodes = _random_mixes(config, topology, np.maximum(layer, 0), rng)
    nodes[:, 0] = topology.mix(0, loops.source)
    if through_gateway and n:
        at_gateway = step == layers
        nodes[at_gateway] = topology.ingress(rng.integers(0, config.gateways, size=n))
    return nodes


def _gateway_loop_paths(
    config: SimConfig, topology: Topology, loops: Emissions, rng: np.random.Generator
) -> np.ndarray:
    """Nodes of every gateway loop's path: the gateway's ingress pool, then one mix per layer."""
    n = len(loops)
    mixes = _random_mixes(config, topology, np.broadcast_to(np.arange(config.layers), (n, config.layers)), rng)
    return np.concatenate([topology.ingress(loops.source)[:, None], mixes], axis=1)


def _hop_times(
    emitted: np.ndarray, hops: int, config: SimConfig, rng: np.random.Generator, *, first_link: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit time at every hop: a link latency (none into a loop's own pool), then an Exp(μ) hold."""
    delays = rng.exponential(1.0 / config.mu, size=(emitted.shape[0], hops))
    t_in = np.empty_like(delays)
    t_out = np.empty_like(delays)
    previous = emitted
    for hop in range(hops):
        t_in[:, hop] = previous + (config.link_latency if hop > 0 or first_link else 0.0)
        t_out[:, hop] = t_in[:, hop] + delays[:, hop]
        previous = t_out[:, hop]
    return t_in, t_out
