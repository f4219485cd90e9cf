"""Client and mix traffic: Poisson streams, the workload of real messages, and their queueing.

Each client runs three Poisson streams (Loopix): the payload stream at λ_P sends the oldest
queued real message, or a drop packet when the queue is empty; the loop stream at λ_L sends
a packet back to the client itself; the drop stream at λ_D sends a packet that the last hop
discards. Each mix and each gateway sends its own loops at λ_M.

With the poisson workload each active client's queue is an M/M/1 queue: messages arrive at
``message_rate`` and payload slots serve them at λ_P. Queues start in their stationary state,
so that latency needs no warm-up however close to saturation the queue runs (an empty start
would take many relaxation times, 1/(λ_P (1 − √ρ)²), to forget): the number waiting is
geometric, P(n) = (1 − ρ) ρⁿ with ρ = message_rate/λ_P, and, since the M/M/1 queue is
reversible, the ages of the n waiting messages are the partial sums of n independent
Exp(λ_P) times (in reversed time they are the first n departures of a busy queue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.config import SimConfig
from simulations.eventlog import PacketKind


@dataclass(frozen=True, slots=True, eq=False)
class Emissions:
    """Packets as their sources put them on the wire (not yet routed)."""

    kind: np.ndarray  # int8
    source: np.ndarray  # int64: client id, or node index (among mixes or gateways) for node loops
    recipient: np.ndarray  # int64: client id, -1 when none
    created: np.ndarray  # float64
    emitted: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.kind.shape[0])


def poisson_streams(
    sources: int, rate: float, horizon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of independent Poisson processes, one per source, on [0, horizon].

    Returns (source, time), sorted by source and then by time.
    """
    if rate <= 0.0 or sources == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    counts = rng.poisson(rate * horizon, size=sources)
    owner = np.repeat(np.arange(sources, dtype=np.int64), counts)
    times = rng.uniform(0.0, horizon, size=owner.shape[0])
    order = np.lexsort((times, owner))
    return owner[order], times[order]


def fifo_slots(
    slot_owner: np.ndarray, slot_time: np.ndarray, msg_owner: np.ndarray, msg_time: np.ndarray, clients: int
) -> np.ndarray:
    """Which payload slot carries each queued message (-1: still queued when traffic stops).

    Both inputs are sorted by owner, then time. A message leaves at the first slot of its
    client strictly after both its arrival and the slot of the message before it. With
    s_m the number of slots up to message m's arrival, its slot index within the client is
    j_m = m + max over m' ≤ m of (s_m' − m'), a running maximum, computed for all clients at
    once.
    """
    if msg_owner.shape[0] == 0:
        return np.zeros(0, np.int64)
    # s_m: slots of the same client at or before the message, by merging both sequences.
    owner = np.concatenate([slot_owner, msg_owner])
    time = np.concatenate([slot_time, msg_time])
    is_msg = np.concatenate([np.zeros(slot_owner.shape[0], bool), np.ones(msg_owner.shape[0], bool)])
    order = np.lexsort((is_msg, time, owner))
    rank = np.empty(order.shape[0], np.int64)
    rank[order] = np.arange(order.shape[0])
    slot_count = np.bincount(slot_owner, minlength=clients)
    msg_count = np.bincount(msg_owner, minlength=clients)
    start_merged = np.concatenate([[0], np.cumsum(slot_count + msg_count)[:-1]])
    msg_start = np.concatenate([[0], np.cumsum(msg_count)[:-1]])
    m = np.arange(msg_owner.shape[0], dtype=np.int64) - msg_start[msg_owner]
    s = rank[slot_owner.shape[0] :] - start_merged[msg_owner] - m
    # Segmented running maximum: lift each client above the previous one.
    lift = msg_owner * (4 * (order.shape[0] + 1))
    j = np.maximum.accumulate(s - m + lift) - lift + m
    return np.where(j < slot_count[msg_owner], j, -1)


def stationary_backlog(
    clients: np.ndarray, rho: float, service_rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Messages waiting at time 0 in stationary M/M/1 queues: (owner, creation time ≤ 0), by owner."""
    waiting = rng.geometric(1.0 - rho, size=clients.shape[0]) - 1
    owner = np.repeat(clients, waiting)
    total = np.cumsum(rng.exponential(1.0 / service_rate, size=owner.shape[0]))
    run_start = np.cumsum(waiting) - waiting
    before = np.concatenate([[0.0], total])[run_start]
    ages = total - np.repeat(before, waiting)  # the i-th most recent waiting message is i gaps old
    return owner, -ages


def client_emissions(config: SimConfig, horizon: float, rng: np.random.Generator) -> Emissions:
    """Every packet the clients send during [0, horizon]."""
    n = config.clients
    slot_owner, slot_time = poisson_streams(n, config.lambda_p, horizon, rng)
    slot_real = np.zeros(slot_owner.shape[0], bool)
    slot_created = slot_time.copy()
    if config.workload == "saturated":
        slot_real[:] = True
    else:
        active = np.sort(rng.choice(n, size=max(1, int(round(config.active_fraction * n))), replace=False))
        owner_idx, msg_time = poisson_streams(active.shape[0], config.message_rate, horizon, rng)
        backlog_owner, backlog_time = stationary_backlog(active, config.utilisation, config.lambda_p, rng)
        msg_owner = np.concatenate([backlog_owner, active[owner_idx]])
        msg_time = np.concatenate([backlog_time, msg_time])
        by_owner = np.lexsort((msg_time, msg_owner))
        msg_owner, msg_time = msg_owner[by_owner], msg_time[by_owner]
        j = fifo_slots(slot_owner, slot_time, msg_owner, msg_time, n)
        sent = j >= 0
        slot_start = np.concatenate([[0], np.cumsum(np.bincount(slot_owner, minlength=n))[:-1]])
        slot_index = slot_start[msg_owner[sent]] + j[sent]
        slot_real[slot_index] = True
        slot_created[slot_index] = msg_time[sent]
    recipient = np.full(slot_owner.shape[0], -1, np.int64)
    real_senders = slot_owner[slot_real]
    other = rng.integers(0, n - 1, size=real_senders.shape[0])
    recipient[slot_real] = other + (other >= real_senders)
    kind = np.where(slot_real, PacketKind.REAL, PacketKind.DROP).astype(np.int8)

    loop_owner, loop_time = poisson_streams(n, config.lambda_l, horizon, rng)
    drop_owner, drop_time = poisson_streams(n, config.lambda_d, horizon, rng)
    return Emissions(
        kind=np.concatenate(
            [
                kind,
                np.full(loop_owner.shape[0], PacketKind.LOOP, np.int8),
                np.full(drop_owner.shape[0], PacketKind.DROP, np.int8),
            ]
        ),
        source=np.concatenate([slot_owner, loop_owner, drop_owner]),
        recipient=np.concatenate([recipient, loop_owner, np.full(drop_owner.shape[0], -1, np.int64)]),
        created=np.concatenate([slot_created, loop_time, drop_time]),
        emitted=np.concatenate([slot_time, loop_time, drop_time]),
    )


def node_loop_emissions(
    nodes: int, kind: PacketKind, config: SimConfig, horizon: float, rng: np.random.Generator
) -> Emissions:
    """Every loop ``nodes`` mixes or gateways send during [0, horizon]; the source is the node's
    index among its kind (mixes layer-major)."""
    owner, time = poisson_streams(nodes, config.lambda_m, horizon, rng)
    return Emissions(
        kind=np.full(owner.shape[0], kind, np.int8),
        source=owner,
        recipient=np.full(owner.shape[0], -1, np.int64),
        created=time,
        emitted=time.copy(),
    )
