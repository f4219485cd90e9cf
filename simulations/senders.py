"""Sender distributions of target messages by the pool-mass method, traced backwards.

Forwards, the pool-mass method gives every packet leaving an honest node the average
belief of the node's pool (see `simulations.pools`): for departure d,

    P_d = Σ over earlier arrivals a at the node of w(a, d) · P_a,

where P_a is the belief about the packet that arrived (the belief it left its previous node
with), a point mass on the client for a packet fresh from its sender, and at a corrupt node
simply the belief about the same packet on its way in. That is a linear map, so the sender
distribution of a target is obtained by running it backwards from the target's final
departure: put weight 1 there, hand each departure's weight to the earlier arrivals of its
node in proportion w(a, d), step from each arrival to the same packet's departure from its
previous node, and collect the weight that reaches packets' sources. Only the target's
causal past is touched.

Within a busy period, w(a, d) = exp(C_d − C_a) / k_d factorises, so the weight all departures
of one target at one node hand to arrival a is exp(−C_a) times a suffix sum over those
departures; it is computed for all targets of a batch at once, and weights below
``mass_floor`` are cut off (the mass lost that way is reported).

Mass that reaches a node loop's source (a mix or gateway), or a packet on a link only node
loops use, belongs to no client. A target is a packet delivered to a client, which a node
loop never is, so the adversary conditions on a client having sent
it: client weights are renormalised, and the mass removed is reported as ``node_mass``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from simulations.batches import ENTRY_BUDGET, in_batches
from simulations.eventlog import EventLog
from simulations.pools import PoolView, cross_pools, pool_groups
from simulations.segments import expand_ranges, merge_sorted, segmented_suffix_sum, sum_by_key

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True, eq=False)
class SenderDistributions:
    """For target i, clients ``client[offsets[i]:offsets[i+1]]`` with their probabilities."""

    targets: np.ndarray  # int64 packet ids
    offsets: np.ndarray  # int64, len targets + 1
    client: np.ndarray  # int64, increasing within a target
    probability: np.ndarray  # float64, sums to 1 within a target
    node_mass: np.ndarray  # float64 per target: traced mass that reached node loops
    traced_mass: np.ndarray  # float64 per target: mass that reached any source (1 − what the floor cut)

    def of(self, index: int) -> dict[int, float]:
        """The distribution of one target, as {client: probability}."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return dict(zip(self.client[lo:hi].tolist(), self.probability[lo:hi].tolist(), strict=True))


@dataclass(frozen=True, slots=True, eq=False)
class _Tables:
    """Per-row look-ups shared by all batches."""

    row_packet: np.ndarray
    is_first: np.ndarray
    last_row: np.ndarray


def trace_senders(
    log: EventLog,
    view: PoolView,
    targets: np.ndarray,
    *,
    mass_floor: float,
    progress: Progress | None = None,
    entry_budget: int = ENTRY_BUDGET,
) -> SenderDistributions:
    """The adversary's sender distribution for each target packet (each must come from a client)."""
    targets = np.asarray(targets, dtype=np.int64)
    from_client = log.from_client()
    if not np.all(from_client[targets]):
        raise ValueError("targets must be client packets")
    is_first = np.zeros(log.rows, bool)
    is_first[log.first_row[:-1]] = True
    tables = _Tables(log.row_packet(), is_first, log.last_row())

    offsets = [np.zeros(1, np.int64)]
    clients: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    node_mass: list[np.ndarray] = []
    traced: list[np.ndarray] = []

    def trace(chunk: np.ndarray) -> int:
        b = chunk.shape[0]
        src_j, src_packet, src_w, peak = _trace_batch(view, tables, chunk, mass_floor)
        own = src_packet >= 0
        own[own] = from_client[src_packet[own]]
        node_mass.append(np.bincount(src_j[~own], weights=src_w[~own], minlength=b))
        traced.append(np.bincount(src_j, weights=src_w, minlength=b))
        keys, mass = sum_by_key(src_j[own] * log.clients + log.source[src_packet[own]], src_w[own])
        owner = keys // log.clients
        client_total = np.bincount(owner, weights=mass, minlength=b)
        clients.append(keys % log.clients)
        probabilities.append(mass / client_total[owner])
        offsets.append(offsets[-1][-1] + np.cumsum(np.bincount(owner, minlength=b)))
        return peak

    in_batches(targets, trace, entry_budget=entry_budget, progress=progress)
    return SenderDistributions(
        targets=targets,
        offsets=np.concatenate(offsets),
        client=np.concatenate(clients) if clients else np.zeros(0, np.int64),
        probability=np.concatenate(probabilities) if probabilities else np.zeros(0),
        node_mass=np.concatenate(node_mass) if node_mass else np.zeros(0),
        traced_mass=np.concatenate(traced) if traced else np.zeros(0),
    )


def _trace_batch(
    view: PoolView, tables: _Tables, targets: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Trace a batch of targets back to sources: (target index, source packet, weight) triples."""
    j = np.arange(targets.shape[0], dtype=np.int64)
    departures = view.dep_row.shape[0]
    dep = view.dep_index[tables.last_row[targets]]
    weight = np.ones(targets.shape[0])
    found_j: list[np.ndarray] = []
    found_packet: list[np.ndarray] = []
    found_w: list[np.ndarray] = []
    peak = 0
    while j.shape[0]:
        # Sort the frontier by (target, departure event); merge weights on the same departure.
        # Departure events are numbered in event order, so the look-ups below read forward.
        _, weight, (j, dep) = merge_sorted(j * departures + dep, weight, j, dep)

        # Corrupt nodes link a departure to its own arrival; honest ones spread the weight.
        a_j, a_row, a_w, entries = cross_pools(
            view.dep_transparent[dep],
            j,
            dep,
            weight,
            lambda same: view.dep_row[same],
            partial(_spread_over_pools, view, floor=floor),
        )
        peak = max(peak, entries)
        first = tables.is_first[a_row]
        found_j.append(a_j[first])
        found_packet.append(tables.row_packet[a_row[first]])
        found_w.append(a_w[first])
        # A packet that came in over a cover-only link is known to be no client's.
        cover = view.cover_link[a_row]
        found_j.append(a_j[cover])
        found_packet.append(np.full(int(cover.sum()), -1, np.int64))
        found_w.append(a_w[cover])
        later = ~(first | cover)
        # Step to the same packet's departure from its previous node.
        j, dep, weight = a_j[later], view.dep_index[a_row[later] - 1], a_w[later]
    return np.concatenate(found_j), np.concatenate(found_packet), np.concatenate(found_w), peak


def _spread_over_pools(
    view: PoolView,
    j: np.ndarray,
    dep: np.ndarray,
    weight: np.ndarray,
    floor: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Hand the weight of departures from honest pools to those pools' earlier arrivals.

    The departures are sorted by (target, event). A group is one target's departures within
    one busy period of one node (and one band of C, so that exp() stays finite).
    """
    c = -view.dep_negc[dep]
    busy = view.dep_busy[dep]
    gstart, gid, gend = pool_groups(j, busy, c)
    c0 = c[gstart]
    # Suffix sums of weight · exp(C_d − c0) / k_d: what an arrival before departure d receives,
    # up to its own factor exp(c0 − C_a).
    suffix = segmented_suffix_sum(weight * np.exp(c - c0[gid]) * view.dep_share[dep], gid)
    head = suffix[gstart]
    # Arrivals that can matter: same busy period, before the group's last departure, and not
    # so far back that even the largest suffix sum would fall below the floor.
    lo = np.maximum(
        np.searchsorted(view.arr_busy, busy[gstart], "left"),
        np.searchsorted(view.arr_negc, -(c0 + np.log(head / floor)), "left"),
    )
    # Arrivals before each departure (the d-th departure has d departures before it), so
    # before the group's last one: hi.
    before = view.dep_pos[dep] - dep
    hi = before[gend - 1]
    count = np.maximum(hi - lo, 0)
    group, arrival = expand_ranges(lo, count)
    group_j = j[gstart][group]
    # The first of the group's departures after each arrival: departure e takes the arrivals
    # between the previous departure (or lo) and itself, in the order expand_ranges lists them.
    previous = np.empty_like(before)
    previous[1:] = before[:-1]
    previous[gstart] = lo
    takes = np.maximum(before - np.maximum(previous, lo[gid]), 0)
    after = np.repeat(np.arange(before.shape[0], dtype=np.int64), takes)
    w = np.exp(c0[group] + view.arr_negc[arrival]) * suffix[after]
    keep = w >= floor
    return group_j[keep], view.arr_row[arrival[keep]], w[keep], int(count.sum())
