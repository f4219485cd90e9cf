"""The adversary's view of every node's pool, as needed by the pool-mass method.

At an honest node the adversary sees packets enter and leave but not which is which. With
exponential delays every packet in a pool is equally likely to be the next to leave
(memorylessness), so the adversary's posterior for a departing packet is the average of
what it believes about the packets in the pool, each weighted by the chance it is still
there. If k packets are in the pool when one leaves, each takes 1/k of the pool's
probability mass along with it, and the pool keeps (1 − 1/k) of it. So the weight of an
earlier arrival a in a later departure d at the same node is

    w(a, d) = (1 / k_d) · Π over departures d' between a and d of (1 − 1/k_d')
            = exp(C(d⁻) − C(a)) / k_d,

where C is the running sum of log(1 − 1/k) over the node's departures. When a pool empties
(k = 1) everything before it is gone; such a departure ends a busy period, and arrivals and
departures in different busy periods do not mix.

The adversary is assumed to know how many packets each pool holds at all times (a standard
and conservative assumption of the method: it can only make the adversary stronger).

This module sorts all arrival and departure events by (node, time) and computes, per event,
its position in that order, C, the busy period, and k. Because every pool empties at the end
of the run, the positions, C and the busy periods are monotone over the whole sorted
sequence, so later look-ups are plain binary searches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulations.eventlog import EventLog, NodeRole

_NODE_SHIFT = 43  # bits below the node id in the sort key: time ticks and the arrival/departure bit
_LINK_TABLE_NODES = 4096  # up to this many nodes, links are classified through a table
C_BAND = 256.0  # largest spread of C within one group of a trace: keeps exp() finite


@dataclass(frozen=True, slots=True, eq=False)
class PoolView:
    """Departure and arrival events, each in event order (by node, then time), and per-row links.

    Departure d (0 ≤ d < rows) is the d-th departure event; arrival a the a-th arrival event.
    Since the events are sorted, the d-th departure has d departures and ``dep_pos[d] − d``
    arrivals before it, and the a-th arrival ``arr_pos[a] − a`` departures.
    """

    cover_link: np.ndarray  # bool per row: the packet came in on a link no client packet uses
    dep_index: np.ndarray  # int64 per row: the departure event of the row
    arr_index: np.ndarray  # int64 per row: the arrival event of the row
    dep_row: np.ndarray  # int64 per departure: its row
    dep_pos: np.ndarray  # int64 per departure: its position among all events (increasing)
    dep_negc: np.ndarray  # float64 per departure: −C just before it (non-decreasing)
    dep_busy: np.ndarray  # int64 per departure: its busy period (non-decreasing)
    dep_share: np.ndarray  # float64 per departure: 1/k, k the packets in the pool as it leaves
    dep_transparent: np.ndarray  # bool per departure: the node is corrupt, so it links in and out
    arr_row: np.ndarray  # int64 per arrival: its row
    arr_pos: np.ndarray  # int64 per arrival: its position (increasing)
    arr_negc: np.ndarray  # float64 per arrival: −C at it (non-decreasing)
    arr_busy: np.ndarray  # int64 per arrival: its busy period (non-decreasing)
    arr_transparent: np.ndarray  # bool per arrival: the node is corrupt


def event_order(log: EventLog) -> np.ndarray:
    """Indices of all events sorted by (node, time, arrival before departure).

    Event i < rows is the arrival of row i; event rows + i is its departure. Times are
    compared after rounding to a tick small enough that the sort key fits 64 bits.
    """
    rows = log.rows
    if log.nodes >= 1 << (63 - _NODE_SHIFT):
        raise ValueError(f"too many nodes for the event sort key: {log.nodes}")
    t_max = float(max(np.max(log.t_out, initial=0.0), 1.0))
    tick = max(1e-9, t_max / float(1 << (_NODE_SHIFT - 2)))
    node_part = log.node.astype(np.int64) << _NODE_SHIFT
    keys = np.empty(2 * rows, np.int64)
    keys[:rows] = node_part | ((log.t_in / tick).astype(np.int64) << 1)
    keys[rows:] = node_part | ((log.t_out / tick).astype(np.int64) << 1) | 1
    del node_part
    return np.argsort(keys)


def cover_links(log: EventLog) -> np.ndarray:
    """Rows whose packet arrived over a link that client packets never take.

    Client packets move forward only: client → ingress → layer 1 → … → layer L → egress
    (without gateways, client → layer 1 and layer L → client). Any other link between nodes,
    such as layer L → layer 1, carries only mixes' own loops; the adversary sees the link, so
    it knows such a packet came from no client.
    """
    cover = np.zeros(log.rows, bool)
    first = np.zeros(log.rows, bool)
    first[log.first_row[:-1]] = True
    later = np.flatnonzero(~first)
    if later.shape[0] == 0:
        return cover
    role, layer = log.node_role, log.node_layer.astype(np.int64)
    last_layer = int(log.node_layer.max(initial=0))

    def is_forward(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        linked: np.ndarray = (
            ((role[prev] == NodeRole.INGRESS) & (role[cur] == NodeRole.MIX) & (layer[cur] == 0))
            | ((role[prev] == NodeRole.MIX) & (role[cur] == NodeRole.MIX) & (layer[cur] == layer[prev] + 1))
            | ((role[prev] == NodeRole.MIX) & (role[cur] == NodeRole.EGRESS) & (layer[prev] == last_layer))
        )
        return linked

    prev, cur = log.node[later - 1].astype(np.int64), log.node[later].astype(np.int64)
    if log.nodes <= _LINK_TABLE_NODES:
        # One look-up per row in a small table of every (from, to) pair of nodes.
        every = np.arange(log.nodes, dtype=np.int64)
        table = is_forward(np.repeat(every, log.nodes), np.tile(every, log.nodes))
        forward = table[prev * log.nodes + cur]
    else:
        forward = is_forward(prev, cur)
    cover[later] = ~forward
    return cover


def pool_view(log: EventLog) -> PoolView:
    rows = log.rows
    order = event_order(log)
    is_arrival = order < rows
    step = np.where(is_arrival, 1, -1).astype(np.int32)
    occupancy = np.cumsum(step, dtype=np.int64)  # after each event
    del step
    dep_pos = np.nonzero(~is_arrival)[0]
    dep_row = order[dep_pos] - rows
    size = (occupancy[dep_pos] + 1).astype(np.int32)
    del occupancy
    ends_busy = size == 1
    factor = np.zeros(2 * rows, np.float64)
    factor[dep_pos[~ends_busy]] = np.log1p(-1.0 / size[~ends_busy])
    c_after = np.cumsum(factor)
    del factor
    resets = np.zeros(2 * rows, np.int64)
    resets[dep_pos[ends_busy]] = 1
    busy_after = np.cumsum(resets)
    del resets

    arr_pos = np.nonzero(is_arrival)[0]
    arr_row = order[arr_pos]
    del order, is_arrival
    dep_index = np.empty(rows, np.int64)
    dep_index[dep_row] = np.arange(rows, dtype=np.int64)
    arr_index = np.empty(rows, np.int64)
    arr_index[arr_row] = np.arange(rows, dtype=np.int64)
    # Every departure follows its own arrival at the same node, so the event just before it
    # is in the same node's sequence: C and the busy period there are the departure's own.
    return PoolView(
        cover_link=cover_links(log),
        dep_index=dep_index,
        arr_index=arr_index,
        dep_row=dep_row,
        dep_pos=dep_pos,
        dep_negc=-c_after[dep_pos - 1],
        dep_busy=busy_after[dep_pos - 1],
        dep_share=1.0 / size,
        dep_transparent=log.corrupt[log.node[dep_row]],
        arr_row=arr_row,
        arr_pos=arr_pos,
        arr_negc=-c_after[arr_pos],
        arr_busy=busy_after[arr_pos],
        arr_transparent=log.corrupt[log.node[arr_row]],
    )


def pool_groups(target: np.ndarray, busy: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of trace entries sorted by (target, event position): one target's events within one
    busy period of one node and one band of C (so that exp() of C differences stays finite).

    Returns each group's first entry, each entry's group, and each group's end (exclusive).
    """
    band = np.floor(-c / C_BAND).astype(np.int64)
    new = np.concatenate(
        [[True], (target[1:] != target[:-1]) | (busy[1:] != busy[:-1]) | (band[1:] != band[:-1])]
    )
    gstart = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    gend = np.concatenate([gstart[1:], [target.shape[0]]])
    return gstart, gid, gend


Spread = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, int]]


def cross_pools(
    transparent: np.ndarray,
    target: np.ndarray,
    events: np.ndarray,
    weight: np.ndarray,
    same_packet: Callable[[np.ndarray], np.ndarray],
    spread: Spread,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One step of a trace through the pools its frontier sits in.

    At a corrupt node (``transparent``) the weight stays with its packet: ``same_packet`` maps
    those events to the packet's other event at the node. At an honest node ``spread`` hands it
    over the pool and reports how many entries it held. Returns (target, event, weight) of the
    new frontier and that count.
    """
    through = transparent
    targets, found, weights = [target[through]], [same_packet(events[through])], [weight[through]]
    entries = 0
    honest = ~through
    if honest.any():
        e_target, e_found, e_weight, entries = spread(target[honest], events[honest], weight[honest])
        targets.append(e_target)
        found.append(e_found)
        weights.append(e_weight)
    return np.concatenate(targets), np.concatenate(found), np.concatenate(weights), entries
