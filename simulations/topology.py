"""The stratified network: node numbering, clients' gateways, and which nodes are corrupt.

Node ids are laid out as ``[ingress gateways | mixes, layer by layer | egress gateways]``.
A gateway is one machine, but the adversary sees which link a packet comes in on and which
it leaves on, and packets from clients always leave towards layer 1 while packets from the
last layer always leave towards clients; so a gateway is two separate pools, and the model
gives each direction its own node id. A corrupt gateway is corrupt in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.config import SimConfig
from simulations.eventlog import NodeRole


@dataclass(frozen=True, slots=True, eq=False)
class Topology:
    layers: int
    width: int
    gateways: int
    client_gateway: np.ndarray  # int64, gateway index of every client
    node_role: np.ndarray  # int8
    node_layer: np.ndarray  # int16
    corrupt: np.ndarray  # bool

    @property
    def nodes(self) -> int:
        return int(self.node_role.shape[0])

    def ingress(self, gateway: np.ndarray) -> np.ndarray:
        return np.asarray(gateway, dtype=np.int64)

    def mix(self, layer: np.ndarray | int, index: np.ndarray) -> np.ndarray:
        return (
            self.gateways + np.asarray(layer, dtype=np.int64) * self.width + np.asarray(index, dtype=np.int64)
        )

    def egress(self, gateway: np.ndarray) -> np.ndarray:
        return self.gateways + self.layers * self.width + np.asarray(gateway, dtype=np.int64)


def build_topology(config: SimConfig, rng: np.random.Generator) -> Topology:
    """Lay out the nodes, spread clients over gateways in turn, and pick the corrupt nodes."""
    g, layers, width = config.gateways, config.layers, config.width
    mixes = layers * width
    role = np.concatenate(
        [
            np.full(g, NodeRole.INGRESS, dtype=np.int8),
            np.full(mixes, NodeRole.MIX, dtype=np.int8),
            np.full(g, NodeRole.EGRESS, dtype=np.int8),
        ]
    )
    layer = np.concatenate(
        [
            np.full(g, -1, dtype=np.int16),
            np.repeat(np.arange(layers, dtype=np.int16), width),
            np.full(g, -1, dtype=np.int16),
        ]
    )
    corrupt = np.zeros(role.shape[0], dtype=bool)
    bad_mixes = rng.choice(mixes, size=int(round(config.corrupt_fraction * mixes)), replace=False)
    corrupt[g + bad_mixes] = True
    if g > 0:
        bad_gateways = rng.choice(g, size=int(round(config.corrupt_gateways * g)), replace=False)
        corrupt[bad_gateways] = True
        corrupt[g + mixes + bad_gateways] = True
    client_gateway = (
        np.arange(config.clients, dtype=np.int64) % g if g > 0 else np.full(config.clients, -1, np.int64)
    )
    return Topology(layers, width, g, client_gateway, role, layer, corrupt)
