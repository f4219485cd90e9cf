"""The event log: what happened in a run, in the form every metric reads.

The log is independent of how it was produced. The discrete-event model writes one; the
later emulation mode (real node and client code under a virtual clock) is meant to write the
same thing. It holds, column by column:

* packets: who sent what (kind, source, recipient), when it was created, emitted and received;
* hops: for every packet, each node that held it, when it entered and when it left;
* nodes: their role, layer, and whether they are corrupt.

The global passive adversary sees every link, so it sees every (node, time in, time out)
triple, but across an honest node it cannot tell which packet that entered is which packet
that left. At a corrupt node it can: the node tells it. That, with the link timings, is the
adversary's whole view; nothing else in the log (packet kinds, sources) may be used to
compute its beliefs, only to score them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from simulations.errors import EventLogError


class PacketKind(enum.IntEnum):
    """What a packet is; every kind is the same size on the wire and looks the same."""

    REAL = 0  # a real message, on the payload stream
    DROP = 1  # drop cover: the payload stream's filler and the λ_D stream; discarded at the last hop
    LOOP = 2  # client loop cover (λ_L): comes back to its sender
    MIX_LOOP = 3  # mix loop cover (λ_M): leaves a mix and comes back to it
    GATEWAY_LOOP = 4  # gateway loop cover (λ_M): leaves a gateway and comes back to it


NODE_LOOPS = (PacketKind.MIX_LOOP, PacketKind.GATEWAY_LOOP)


class NodeRole(enum.IntEnum):
    """A node that holds packets. A gateway appears twice, once per direction."""

    INGRESS = 0  # a gateway's entry side: from its clients to layer 1
    MIX = 1
    EGRESS = 2  # a gateway's exit side: from the last layer to clients


@dataclass(frozen=True, slots=True, eq=False)
class EventLog:
    """Columns of packets, hops and nodes. Rows of one packet's hops are contiguous, in order.

    Packet p held by nodes ``node[first_row[p]:first_row[p + 1]]`` in that order; it entered
    the i-th at ``t_in`` and left it at ``t_out`` of that row, and reached its destination (a
    client, or the node that sent a loop) at ``received`` (a drop: when its last node discarded
    it). A packet's source is a client id for client packets and a node id for node loops.
    """

    clients: int
    horizon: float  # sources emitted packets during [0, horizon]
    # packets
    kind: np.ndarray  # int8, PacketKind
    source: np.ndarray  # int64
    recipient: np.ndarray  # int64 client id; -1 for drops and node loops
    created: np.ndarray  # float64: when the content came to be (a real message's arrival in its queue)
    emitted: np.ndarray  # float64: when the source put the packet on its first link (or in its own pool)
    received: np.ndarray  # float64: when it reached its destination, after the last link
    first_row: np.ndarray  # int64, len packets + 1
    # hops
    node: np.ndarray  # int32
    t_in: np.ndarray  # float64
    t_out: np.ndarray  # float64
    # nodes
    node_role: np.ndarray  # int8, NodeRole
    node_layer: np.ndarray  # int16; -1 for gateways
    corrupt: np.ndarray  # bool

    @property
    def packets(self) -> int:
        return int(self.kind.shape[0])

    @property
    def rows(self) -> int:
        return int(self.node.shape[0])

    @property
    def nodes(self) -> int:
        return int(self.node_role.shape[0])

    def row_packet(self) -> np.ndarray:
        """The packet of every hop row."""
        packets: np.ndarray = np.repeat(np.arange(self.packets, dtype=np.int64), np.diff(self.first_row))
        return packets

    def row_hop(self) -> np.ndarray:
        """The position of every hop row in its packet's path (0 for the first node)."""
        counts = np.diff(self.first_row)
        hops: np.ndarray = np.arange(self.rows, dtype=np.int64) - np.repeat(self.first_row[:-1], counts)
        return hops

    def from_client(self) -> np.ndarray:
        """Whether each packet was sent by a client (not a node's own loop)."""
        mask: np.ndarray = ~np.isin(self.kind, NODE_LOOPS)
        return mask

    def last_row(self) -> np.ndarray:
        """The final hop row of every packet."""
        return self.first_row[1:] - 1

    def delivered(self) -> np.ndarray:
        """When every packet reached its destination (delivered, discarded or consumed)."""
        return self.received

    def select(self, keep: np.ndarray) -> EventLog:
        """The log of only the packets where ``keep`` is true (node table unchanged)."""
        rows = np.repeat(keep, np.diff(self.first_row))
        first_row = np.zeros(int(keep.sum()) + 1, np.int64)
        np.cumsum(np.diff(self.first_row)[keep], out=first_row[1:])
        return EventLog(
            clients=self.clients,
            horizon=self.horizon,
            kind=self.kind[keep],
            source=self.source[keep],
            recipient=self.recipient[keep],
            created=self.created[keep],
            emitted=self.emitted[keep],
            received=self.received[keep],
            first_row=first_row,
            node=self.node[rows],
            t_in=self.t_in[rows],
            t_out=self.t_out[rows],
            node_role=self.node_role,
            node_layer=self.node_layer,
            corrupt=self.corrupt,
        )

    def validate(self) -> None:
        """Raise EventLogError unless the columns are consistent."""
        p, r, m = self.packets, self.rows, self.nodes
        for name, size in (
            ("source", p),
            ("recipient", p),
            ("created", p),
            ("emitted", p),
            ("received", p),
            ("first_row", p + 1),
            ("t_in", r),
            ("t_out", r),
            ("node_layer", m),
            ("corrupt", m),
        ):
            if getattr(self, name).shape != (size,):
                raise EventLogError(f"{name} has shape {getattr(self, name).shape}, expected ({size},)")
        if self.clients < 1:
            raise EventLogError("a log needs at least one client")
        if p == 0:
            return
        if self.first_row[0] != 0 or self.first_row[-1] != r or np.any(np.diff(self.first_row) < 1):
            raise EventLogError("first_row must start at 0, end at the row count and give every packet a hop")
        if np.any((self.node < 0) | (self.node >= m)):
            raise EventLogError("a hop names a node that does not exist")
        if not (np.all(np.isfinite(self.t_in)) and np.all(np.isfinite(self.t_out))):
            raise EventLogError("hop times must be finite")
        if np.any(self.t_out < self.t_in):
            raise EventLogError("a packet leaves a node before it enters it")
        hop = self.row_hop()
        later = np.nonzero(hop > 0)[0]
        if np.any(self.t_in[later] < self.t_out[later - 1]):
            raise EventLogError("a packet enters a node before it left the previous one")
        if np.any(self.t_in[self.first_row[:-1]] < self.emitted):
            raise EventLogError("a packet reaches its first node before it was emitted")
        if np.any(self.created > self.emitted):
            raise EventLogError("a packet is emitted before its content was created")
        if not np.all(self.received >= self.t_out[self.last_row()]):
            raise EventLogError("a packet is received before it left its last node")
        client_sourced = self.from_client()
        if np.any((self.source[client_sourced] < 0) | (self.source[client_sourced] >= self.clients)):
            raise EventLogError("a client packet's source is not a client")
        if np.any((self.source[~client_sourced] < 0) | (self.source[~client_sourced] >= m)):
            raise EventLogError("a node loop's source is not a node")
