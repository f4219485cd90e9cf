"""The discrete-event model: route every packet and time every hop, as numpy arrays.

A Loopix mix holds each packet for the delay its sender drew, independently of every other
packet (an infinite-server queue), so packets never wait for one another. The whole run is
therefore a closed-form function of the random draws: emission times from the Poisson
streams, one uniformly chosen mix per layer, and one exponential delay per hop. Hop times are
running sums along each path, computed for all packets at once; no event queue is needed.

Paths:
* client packets: ingress of the sender's gateway → one mix per layer → egress of the
  recipient's gateway (real messages), of the sender's own gateway (loops), or of a random
  gateway (drops, discarded there after their delay);
* mix loops: from a mix in layer l through one mix in each other layer (l+1, …, L, 1, …, l−1),
  then back into the originating mix, which consumes it on arrival. The originating mix puts
  a loop straight on its link when its λ_M stream fires.
"""

from __future__ import annotations

import numpy as np

from simulations.config import SimConfig
from simulations.eventlog import EventLog
from simulations.topology import Topology, build_topology
from simulations.traffic import Emissions, client_emissions, mix_loop_emissions


def generate(config: SimConfig, rng: np.random.Generator) -> EventLog:
    """Simulate one run of the network described by ``config``; all randomness comes from ``rng``."""
    topo_rng, traffic_rng, route_rng, delay_rng = rng.spawn(4)
    topology = build_topology(config, topo_rng)
    horizon = config.effective_duration
    clients = client_emissions(config, horizon, traffic_rng)
    loops = mix_loop_emissions(config, horizon, traffic_rng)

    client_nodes = _client_paths(config, topology, clients, route_rng)
    loop_nodes = _mix_loop_paths(config, topology, loops, route_rng)
    client_in, client_out = _hop_times(clients.emitted, client_nodes.shape[1], config, delay_rng)
    loop_in, loop_out = _hop_times(loops.emitted, loop_nodes.shape[1], config, delay_rng)

    hops = np.concatenate(
        [
            np.full(len(clients), client_nodes.shape[1], np.int64),
            np.full(len(loops), loop_nodes.shape[1], np.int64),
        ]
    )
    first_row = np.zeros(hops.shape[0] + 1, np.int64)
    np.cumsum(hops, out=first_row[1:])
    return EventLog(
        clients=config.clients,
        horizon=horizon,
        kind=np.concatenate([clients.kind, loops.kind]),
        source=np.concatenate([clients.source, topology.mix(0, loops.source)]),
        recipient=np.concatenate([clients.recipient, loops.recipient]),
        created=np.concatenate([clients.created, loops.created]),
        emitted=np.concatenate([clients.emitted, loops.emitted]),
        first_row=first_row,
        node=np.concatenate([client_nodes.ravel(), loop_nodes.ravel()]).astype(np.int32),
        t_in=np.concatenate([client_in.ravel(), loop_in.ravel()]),
        t_out=np.concatenate([client_out.ravel(), loop_out.ravel()]),
        node_role=topology.node_role,
        node_layer=topology.node_layer,
        corrupt=topology.corrupt,
    )


def _client_paths(
    config: SimConfig, topology: Topology, packets: Emissions, rng: np.random.Generator
) -> np.ndarray:
    """Nodes of every client packet's path, one row per packet."""
    n = len(packets)
    mixes = topology.mix(
        np.arange(config.layers)[None, :], rng.integers(0, config.width, size=(n, config.layers))
    )
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
    """Nodes of every mix loop's path after its origin: one mix in each other layer, in order."""
    n = len(loops)
    hops = config.layers - 1
    if n == 0:
        return np.zeros((0, max(hops, 0)), np.int64)
    origin_layer = loops.source // config.width
    layer = (origin_layer[:, None] + 1 + np.arange(hops)[None, :]) % config.layers
    return topology.mix(layer, rng.integers(0, config.width, size=(n, hops)))


def _hop_times(
    emitted: np.ndarray, hops: int, config: SimConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit time at every hop: one link latency, then an Exp(μ) hold, per hop."""
    delays = rng.exponential(1.0 / config.mu, size=(emitted.shape[0], hops))
    t_in = np.empty_like(delays)
    t_out = np.empty_like(delays)
    previous = emitted
    for hop in range(hops):
        t_in[:, hop] = previous + config.link_latency
        t_out[:, hop] = t_in[:, hop] + delays[:, hop]
        previous = t_out[:, hop]
    return t_in, t_out
