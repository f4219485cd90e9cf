"""Forward per-packet entropy: where a target's probability mass ends up, packet by packet.

This is the metric of the Loopix authors' discrete-event simulator (arXiv 2107.12172), applied
to trimix's event log. The adversary marks one target packet as it enters the network and
follows it forward with the pool-mass method (`simulations.pools`): at an honest node an
arrival a hands each later departure d of its busy period the share

    w(a, d) = exp(C(d⁻) − C(a)) / k_d,

the probability that d is the packet that came in as a; at a corrupt node the mass stays with
its packet; between nodes it follows the packet along its link. The mass stops when a packet
leaves the last mix layer, and the figure is the Shannon entropy, in bits, of the distribution
over those packets. Mass that ends elsewhere (a node's loop consumed before the last layer)
is left out and the rest renormalised.

It is the transpose of the backward trace in `simulations.senders`: the same weights, read
along departures instead of arrivals. Over a batch of targets, the arrivals of one target in
one busy period of one node form a group; the weight that group hands to departure d is
exp(C(d⁻) − c0)/k_d times a prefix sum over the group's arrivals before d, of m_a·exp(c0 − C_a).
The frontier is held as arrival events, numbered in event order, so that after sorting it by
(target, event) every look-up reads the event tables forwards. Weights below ``mass_floor``
are cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from simulations.batches import ENTRY_BUDGET, in_batches
from simulations.eventlog import EventLog, NodeRole
from simulations.pools import PoolView, cross_pools, pool_groups
from simulations.segments import expand_ranges, merge_sorted, segmented_suffix_sum, sum_by_key

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True, eq=False)
class ForwardEntropy:
    """Per target: entropy (bits) over the packets leaving the last layer, and the mass traced."""

    entropy: np.ndarray  # float64 bits
    exit_packets: np.ndarray  # int64: packets that received mass above the floor
    traced_mass: np.ndarray  # float64: mass that left the last layer (1 − what the floor cut or loops absorbed)


@dataclass(frozen=True, slots=True, eq=False)
class _Exits:
    """Per departure event: whether its packet leaves the last layer there, or ends there."""

    exits: np.ndarray  # bool
    ends: np.ndarray  # bool
    packet: np.ndarray  # int64


def _exits(log: EventLog, view: PoolView) -> _Exits:
    last_layer = int(log.node_layer.max(initial=0))
    at_node = log.node[view.dep_row].astype(np.int64)
    ends = np.zeros(log.rows, bool)
    ends[log.last_row()] = True
    return _Exits(
        exits=(log.node_role[at_node] == NodeRole.MIX) & (log.node_layer[at_node] == last_layer),
        ends=ends[view.dep_row],
        packet=log.row_packet()[view.dep_row],
    )


def forward_entropy(
    log: EventLog,
    view: PoolView,
    targets: np.ndarray,
    *,
    mass_floor: float,
    progress: Progress | None = None,
    entry_budget: int = ENTRY_BUDGET,
) -> ForwardEntropy:
    """The forward per-packet entropy of each target packet."""
    targets = np.asarray(targets, dtype=np.int64)
    tables = _exits(log, view)
    entropy: list[np.ndarray] = []
    exit_packets: list[np.ndarray] = []
    traced: list[np.ndarray] = []

    def trace(chunk: np.ndarray) -> int:
        b = chunk.shape[0]
        j, packet, mass, peak = _trace_batch(view, tables, view.arr_index[log.first_row[chunk]], mass_floor)
        keys, summed = sum_by_key(j * log.packets + packet, mass)
        owner = keys // log.packets
        exited = np.bincount(owner, weights=summed, minlength=b)
        p = summed / exited[owner]
        entropy.append(np.maximum(np.bincount(owner, weights=-p * np.log2(p), minlength=b), 0.0))
        exit_packets.append(np.bincount(owner, minlength=b))
        traced.append(exited)
        return peak

    in_batches(targets, trace, entry_budget=entry_budget, progress=progress)
    empty = np.zeros(0)
    return ForwardEntropy(
        entropy=np.concatenate(entropy) if entropy else empty,
        exit_packets=np.concatenate(exit_packets) if exit_packets else np.zeros(0, np.int64),
        traced_mass=np.concatenate(traced) if traced else empty,
    )


def _trace_batch(
    view: PoolView, t: _Exits, start: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Follow a batch of targets forward from their first arrivals: (target index, exit packet,
    mass) triples."""
    j = np.arange(start.shape[0], dtype=np.int64)
    arrivals = view.arr_row.shape[0]
    arr = start.astype(np.int64)
    mass = np.ones(start.shape[0])
    out_j: list[np.ndarray] = []
    out_packet: list[np.ndarray] = []
    out_mass: list[np.ndarray] = []
    peak = 0
    while j.shape[0]:
        # Sort the frontier by (target, arrival event); merge mass on the same arrival.
        _, mass, (j, arr) = merge_sorted(j * arrivals + arr, mass, j, arr)

        # A corrupt node hands the mass to the same packet's departure; an honest one spreads it.
        d_j, d, d_mass, entries = cross_pools(
            view.arr_transparent[arr],
            j,
            arr,
            mass,
            lambda same: view.dep_index[view.arr_row[same]],
            partial(_spread_to_departures, view, floor=floor),
        )
        peak = max(peak, entries)

        exits = t.exits[d]
        out_j.append(d_j[exits])
        out_packet.append(t.packet[d[exits]])
        out_mass.append(d_mass[exits])
        onward = ~(exits | t.ends[d])
        # Step to the same packet's arrival at its next node.
        j, arr, mass = d_j[onward], view.arr_index[view.dep_row[d[onward]] + 1], d_mass[onward]
    return np.concatenate(out_j), np.concatenate(out_packet), np.concatenate(out_mass), peak


def _spread_to_departures(
    view: PoolView,
    j: np.ndarray,
    arr: np.ndarray,
    mass: np.ndarray,
    floor: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Hand the mass of arrivals at honest pools to those pools' later departures.

    The arrivals are sorted by (target, event). A group is one target's arrivals within one
    busy period of one node (and one band of C, so that exp() stays finite).
    """
    c = -view.arr_negc[arr]
    busy = view.arr_busy[arr]
    gstart, gid, gend = pool_groups(j, busy, c)
    c0 = c[gstart]
    # Prefix sums of m_a · exp(c0 − C_a), by a suffix sum over the reversed arrays.
    groups = int(gid[-1]) + 1
    prefix = segmented_suffix_sum((mass * np.exp(c0[gid] - c))[::-1], (groups - 1 - gid)[::-1])[::-1]
    total = prefix[gend - 1]
    # The first departure after each arrival (the a-th arrival has a arrivals before it; the
    # rest are departures). Departures that can matter: from the group's first arrival on (lo),
    # in the same busy period, and not so late that even the whole group's mass would fall
    # below the floor (hi).
    after = view.arr_pos[arr] - arr
    lo = after[gstart]
    hi = np.minimum(
        np.searchsorted(view.dep_busy, busy[gstart], "right"),
        np.searchsorted(view.dep_negc, np.log(total / floor) - c0, "right"),
    )
    count = np.maximum(hi - lo, 0)
    group, departure = expand_ranges(lo, count)
    group_j = j[gstart][group]
    # The group's last arrival before each departure: arrival e serves the departures from its
    # own first one to the next arrival's (or hi), in the order expand_ranges lists them.
    following = np.empty_like(after)
    following[:-1] = after[1:]
    following[gend - 1] = hi
    serves = np.maximum(np.minimum(following, hi[gid]) - after, 0)
    before = np.repeat(np.arange(after.shape[0], dtype=np.int64), serves)
    w = np.exp(-view.dep_negc[departure] - c0[group]) * view.dep_share[departure] * prefix[before]
    keep = w >= floor
    return group_j[keep], departure[keep], w[keep], int(count.sum())
