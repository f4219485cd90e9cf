"""Shared helpers for the simulator's tests."""

from __future__ import annotations

import numpy as np

from simulations.eventlog import EventLog, NodeRole, PacketKind


def single_node_log(
    sources: list[int], t_in: list[float], t_out: list[float], *, clients: int, corrupt: bool = False
) -> EventLog:
    """A log of one-hop client packets through a single mix."""
    n = len(sources)
    return EventLog(
        clients=clients,
        horizon=max(t_in) if t_in else 1.0,
        kind=np.full(n, PacketKind.REAL, np.int8),
        source=np.asarray(sources, np.int64),
        recipient=np.zeros(n, np.int64),
        created=np.asarray(t_in, float),
        emitted=np.asarray(t_in, float),
        received=np.asarray(t_out, float),
        first_row=np.arange(n + 1, dtype=np.int64),
        node=np.zeros(n, np.int32),
        t_in=np.asarray(t_in, float),
        t_out=np.asarray(t_out, float),
        node_role=np.array([NodeRole.MIX], np.int8),
        node_layer=np.array([0], np.int16),
        corrupt=np.array([corrupt]),
    )


def forward_pool_mass(log: EventLog) -> np.ndarray:
    """The pool-mass method run forwards, event by event, with a dense belief per packet.

    Returns the belief (over clients, plus a last entry for "no client") that every row's
    departure leaves with. Written independently of the vectorized code, as plainly as
    possible: a pool per node, a probability vector per packet.
    """
    n = log.clients
    rows = log.rows
    hop = log.row_hop()
    packet = log.row_packet()
    from_client = log.from_client()
    last_layer = int(log.node_layer.max())
    belief_in = np.zeros((rows, n + 1))
    belief_out = np.zeros((rows, n + 1))
    pools: dict[int, np.ndarray] = {}
    sizes: dict[int, int] = {}

    def forward_link(prev: int, cur: int) -> bool:
        pr, cr = log.node_role[prev], log.node_role[cur]
        pl, cl = int(log.node_layer[prev]), int(log.node_layer[cur])
        return bool(
            (pr == NodeRole.INGRESS and cr == NodeRole.MIX and cl == 0)
            or (pr == NodeRole.MIX and cr == NodeRole.MIX and cl == pl + 1)
            or (pr == NodeRole.MIX and cr == NodeRole.EGRESS and pl == last_layer)
        )

    # At equal times a packet leaves its previous node before it enters the next one.
    events = sorted(
        [(float(log.t_in[r]), 1, r) for r in range(rows)] + [(float(log.t_out[r]), 0, r) for r in range(rows)]
    )
    for _, is_arrival, r in events:
        node = int(log.node[r])
        if is_arrival:
            b = np.zeros(n + 1)
            if hop[r] == 0:
                p = packet[r]
                b[log.source[p] if from_client[p] else n] = 1.0
            elif not forward_link(int(log.node[r - 1]), node):
                b[n] = 1.0
            else:
                b = belief_out[r - 1].copy()
            belief_in[r] = b
            pools[node] = pools.get(node, np.zeros(n + 1)) + b
            sizes[node] = sizes.get(node, 0) + 1
        else:
            if log.corrupt[node]:
                out = belief_in[r]
                pools[node] = pools[node] - out
            else:
                out = pools[node] / sizes[node]
                pools[node] = pools[node] - out
            belief_out[r] = out
            sizes[node] -= 1
    return belief_out


def forward_packet_mass(log: EventLog, target: int) -> dict[int, float]:
    """The pool-mass method run forwards from one target packet, event by event.

    Returns the mass each packet carries as it leaves the last mix layer. Written
    independently of the vectorized code, as plainly as possible.
    """
    hop = log.row_hop()
    packet = log.row_packet()
    last_layer = int(log.node_layer.max())
    last_row = set(log.last_row().tolist())
    carried = np.zeros(log.rows)
    held = np.zeros(log.rows)
    pools: dict[int, float] = {}
    sizes: dict[int, int] = {}
    exits: dict[int, float] = {}
    events = sorted(
        [(float(log.t_in[r]), 1, r) for r in range(log.rows)]
        + [(float(log.t_out[r]), 0, r) for r in range(log.rows)]
    )
    for _, is_arrival, r in events:
        node = int(log.node[r])
        if is_arrival:
            m = 1.0 if hop[r] == 0 and packet[r] == target else carried[r]
            held[r] = m
            pools[node] = pools.get(node, 0.0) + m
            sizes[node] = sizes.get(node, 0) + 1
            continue
        out = held[r] if log.corrupt[node] else pools[node] / sizes[node]
        pools[node] -= out
        sizes[node] -= 1
        if log.node_role[node] == NodeRole.MIX and log.node_layer[node] == last_layer:
            exits[int(packet[r])] = exits.get(int(packet[r]), 0.0) + out
        elif r not in last_row:
            carried[r + 1] = out
    return exits
