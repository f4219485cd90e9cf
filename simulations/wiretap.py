"""The wiretap: what an emulation records, turned into the simulator's `EventLog`.

The emulated links carry each packet with a trace number that only the wiretap reads (the
node and client cores see the packet bytes alone). The wiretap writes down, in virtual
seconds, when a source emitted a packet and what it was (the ground truth the log keeps
apart from the adversary's view), when it entered each pool and left it, and when it
reached its destination. `event_log()` gives the same columns the model writes.

A packet is in the log only once it has reached its destination: one lost on the way (a
replay, a full queue, a route the consensus does not know) never completes and is counted in
`lost`. A drop ends where its last node discards it, as in the model: its reception is the
moment it left that node.
"""

from __future__ import annotations

import math

import numpy as np

from simulations.eventlog import EventLog, PacketKind
from simulations.topology import Topology


class Wiretap:
    """Records packets as they are emitted, held and received (sans-I/O: times passed in)."""

    def __init__(self, clients: int, topology: Topology, horizon: float) -> None:
        self._clients = clients
        self._topology = topology
        self._horizon = horizon
        self._kind: list[int] = []
        self._source: list[int] = []
        self._recipient: list[int] = []
        self._created: list[float] = []
        self._emitted: list[float] = []
        self._received: list[float] = []
        self._hops: list[list[list[float]]] = []  # per packet: [node, t_in, t_out] rows
        self._open = 0  # packets emitted and not yet received

    @property
    def in_flight(self) -> int:
        return self._open

    @property
    def emitted_count(self) -> int:
        return len(self._kind)

    def emitted(self, kind: PacketKind, source: int, recipient: int, created: float, at: float) -> int:
        """A source put a packet on its first link (or a node built its loop); its trace."""
        self._kind.append(int(kind))
        self._source.append(source)
        self._recipient.append(recipient)
        self._created.append(created)
        self._emitted.append(at)
        self._received.append(math.nan)
        self._hops.append([])
        self._open += 1
        return len(self._kind) - 1

    def entered(self, trace: int, node: int, at: float) -> None:
        """The packet entered the pool of event-log node `node`."""
        self._hops[trace].append([node, at, math.nan])

    def left(self, trace: int, at: float) -> None:
        """The packet left the pool it is in (no-op for a node's own loop, which starts on a link)."""
        hops = self._hops[trace]
        if hops and math.isnan(hops[-1][2]):
            hops[-1][2] = at

    def received(self, trace: int, at: float) -> None:
        """The packet reached its destination (a drop: `at` is ignored, it ends where it left)."""
        if not math.isnan(self._received[trace]):
            return
        hops = self._hops[trace]
        if self._kind[trace] == PacketKind.DROP and hops:
            at = hops[-1][2]
        self._received[trace] = at
        self._open -= 1

    @property
    def lost(self) -> int:
        """Packets emitted that never reached their destination."""
        return sum(1 for r in self._received if math.isnan(r))

    def event_log(self) -> EventLog:
        """The log of every packet that reached its destination through at least one pool."""
        complete = [
            p
            for p, (received, hops) in enumerate(zip(self._received, self._hops, strict=True))
            if not math.isnan(received) and hops and not math.isnan(hops[-1][2])
        ]
        rows = [row for p in complete for row in self._hops[p]]
        counts = np.array([len(self._hops[p]) for p in complete], np.int64)
        first_row = np.zeros(len(complete) + 1, np.int64)
        np.cumsum(counts, out=first_row[1:])
        hop_table = np.array(rows, np.float64).reshape(-1, 3)
        index = np.array(complete, np.int64)

        def column(values: list[float] | list[int], dtype: type) -> np.ndarray:
            return np.asarray(values, dtype=dtype)[index] if index.shape[0] else np.zeros(0, dtype)

        topology = self._topology
        return EventLog(
            clients=self._clients,
            horizon=self._horizon,
            kind=column(self._kind, np.int8),
            source=column(self._source, np.int64),
            recipient=column(self._recipient, np.int64),
            created=column(self._created, np.float64),
            emitted=column(self._emitted, np.float64),
            received=column(self._received, np.float64),
            first_row=first_row,
            node=hop_table[:, 0].astype(np.int32),
            t_in=hop_table[:, 1].copy(),
            t_out=hop_table[:, 2].copy(),
            node_role=topology.node_role,
            node_layer=topology.node_layer,
            corrupt=topology.corrupt,
        )
