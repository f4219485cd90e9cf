"""The stratified network: node numbering, clients' gateways, and which nodes are corrupt.

Node ids are laid out as ``[ingress gateways | mixes, layer by layer | egress gateways]``.
A gateway is one machine, but the adversary sees which link a packet comes in on and which
it leaves on, and packets from clients always leave towards layer 1 while packets from the
last layer always leave towards clients; so a gateway is two separate pools, and the model
gives each direction its own node id. A corrupt gateway is corrupt in both directions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from simulations.config import SimConfig
from simulations.eventlog import NodeRole

logger = logging.getLogger(__name__)


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
    in_bad_layer = np.isin(np.repeat(np.arange(1, layers + 1), width), config.corrupt_layers)
    corrupt[g : g + mixes] = in_bad_layer
    count = config.random_corrupt_mixes
    if config.corrupt_mixes is None and config.corrupt_fraction > 0 and count != config.corrupt_fraction * mixes:
        logger.warning(
            "corrupt_fraction %g of %d mixes rounds to %d corrupt mixes (%.3g); "
            "set corrupt_mixes for an exact count",
            config.corrupt_fraction,
            mixes,
            count,
            count / mixes,
        )
    bad_mixes = rng.choice(np.flatnonzero(~in_bad_layer), size=count, replace=False)
    corrupt[g + bad_mixes] = True
    if g > 0:
        gateway_count = round(config.corrupt_gateways * g)
        if config.corrupt_gateways > 0 and gateway_count != config.corrupt_gateways * g:
            logger.warning(
                "corrupt_gateways %g of %d gateways rounds to %d corrupt gateways",
                config.corrupt_gateways,
                g,
                gateway_count,
            )
        bad_gateways = rng.choice(g, size=gateway_count, replace=False)
        corrupt[bad_gateways] = True
        corrupt[g + mixes + bad_gateways] = True
    client_gateway = (
        np.arange(config.clients, dtype=np.int64) % g if g > 0 else np.full(config.clients, -1, np.int64)
    )
    return Topology(layers, width, g, client_gateway, role, layer, corrupt)
