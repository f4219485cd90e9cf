"""The network an emulation runs: real descriptors, real Sphinx keys, a real consensus.

Three authorities sign votes over one signed descriptor per node, and the consensus is
computed from them by `directory.compute.compute_consensus`, as the directory does; the
mixes are dealt to layers from the authorities' shared random value. The emulation keeps
every node's private Sphinx keys (it runs the nodes) and every client's mailbox and
end-to-end key pair.

The simulator's `Topology` (node numbering of the event log, corrupt nodes, clients'
gateways) is laid over it: the i-th mix of layer l in the consensus (ascending node id) is
the topology's ``mix(l, i)``, the g-th gateway is ``ingress(g)`` and ``egress(g)``.

The consensus carries integers: the mean delay in whole milliseconds and the rates in
millihertz. `consensus_parameters` converts a `SimConfig`, and refuses one that does not
convert exactly (a μ whose 1/μ is not a whole number of milliseconds, a rate finer than a
millihertz): the emulation must run the parameters the model is given, not neighbours.
No network addresses are used; descriptors name 127.0.0.1 only because they must name one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from directory.compute import compute_consensus
from directory.consensus import Consensus
from directory.descriptor import Address, Role, sign_descriptor
from directory.epoch import EpochClock
from directory.parameters import Parameters
from directory.shared_random import Reveal, reveal_for
from directory.signatures import SigningKey
from directory.vote import sign_vote
from mixclient.e2e import E2EKeyPair, E2ESuite
from simulations.config import SimConfig
from simulations.errors import ConfigError
from simulations.topology import Topology
from sphinx_packets import Geometry, NodeKeys, SphinxKey

EPOCH = 1
AUTHORITIES = 3
MAILBOX_ID_SIZE = 32
USER_PAYLOAD_SIZE = Geometry.default().user_payload_size
"""The default packet's user payload (SURB-ACK, frame header and 2,048 bytes of data)."""


@dataclass(frozen=True, slots=True)
class EmulatedNode:
    """One node of the emulated network and where it sits in the event log."""

    node_id: bytes = field(repr=False)
    keys: NodeKeys = field(repr=False)
    is_gateway: bool
    layer: int | None
    """0-based layer of a mix; None for a gateway."""
    pool: int
    """The event-log node of a mix, or of a gateway's ingress direction."""
    egress_pool: int
    """The event-log node of a gateway's egress direction (= `pool` for a mix)."""


@dataclass(frozen=True, slots=True)
class EmulatedClientIdentity:
    """A client's registration (gateway, mailbox) and end-to-end key pair."""

    index: int
    gateway_id: bytes = field(repr=False)
    mailbox_id: bytes = field(repr=False)
    e2e: E2EKeyPair = field(repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class EmulatedNetwork:
    geometry: Geometry
    consensus: Consensus
    topology: Topology
    nodes: tuple[EmulatedNode, ...]
    clients: tuple[EmulatedClientIdentity, ...]

    def node(self, node_id: bytes) -> EmulatedNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError("no such node in the emulated network")


def _exact_int(value: float, what: str) -> int:
    rounded = round(value)
    if not math.isclose(value, rounded, rel_tol=1e-9, abs_tol=1e-9):
        raise ConfigError(
            f"the consensus carries {what} as a whole number; {value:g} is not: choose a value "
            "that converts exactly so the emulation runs what the model runs"
        )
    return int(rounded)


def consensus_parameters(config: SimConfig) -> Parameters:
    """The consensus parameters of `config` (mean delay in ms, rates in mHz), exactly."""
    return Parameters(
        mean_delay_ms=_exact_int(1000.0 / config.mu, "the mean delay 1/μ in milliseconds"),
        lambda_p_mhz=_exact_int(config.lambda_p * 1000.0, "λ_P in millihertz"),
        lambda_l_mhz=_exact_int(config.lambda_l * 1000.0, "λ_L in millihertz"),
        lambda_d_mhz=_exact_int(config.lambda_d * 1000.0, "λ_D in millihertz"),
        lambda_m_mhz=_exact_int(config.lambda_m * 1000.0, "λ_M in millihertz"),
        layers=config.layers,
    )


def check_emulable(config: SimConfig) -> Parameters:
    """The consensus parameters, or `ConfigError` when the emulation cannot run `config`."""
    if config.gateways < 1:
        raise ConfigError("the emulation needs gateways >= 1: the real clients reach the mixes through one")
    if config.layers + 2 > 16:
        raise ConfigError("the emulation supports at most 14 layers (Sphinx paths of up to 16 hops)")
    return consensus_parameters(config)


def build_network(config: SimConfig, topology: Topology, rng: random.Random) -> EmulatedNetwork:
    """Keys, signed descriptors, votes of three authorities and their consensus for `config`."""
    parameters = check_emulable(config)
    geometry = Geometry(hops=config.layers + 2, user_payload_size=USER_PAYLOAD_SIZE)
    clock = EpochClock(origin_ms=0, length_ms=3_600_000)
    authorities = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(AUTHORITIES)]
    descriptors = []
    sphinx_keys: dict[bytes, SphinxKey] = {}
    total = config.mixes + config.gateways
    for index in range(total):
        role = Role.MIX if index < config.mixes else Role.GATEWAY
        key = SphinxKey.generate(EPOCH, rng=rng.randbytes)
        others = [SphinxKey.generate(EPOCH + i, rng=rng.randbytes).public_key for i in (1, 2)]
        descriptor = sign_descriptor(
            SigningKey.from_seed(rng.randbytes(32)),
            epoch=EPOCH,
            name=f"emulated-{'mix' if role is Role.MIX else 'gateway'}-{index}",
            role=role,
            link_key=rng.randbytes(32),
            sphinx_keys=(key.public_key, *others),
            addresses=(Address("127.0.0.1", 1024 + index),),
            version="emulation",
        )
        descriptors.append(descriptor)
        sphinx_keys[descriptor.node_id] = key
    reveals = [Reveal(EPOCH, k.public_key, reveal_for(k, EPOCH)) for k in authorities]
    votes = [
        sign_vote(
            key,
            epoch=EPOCH,
            parameters=parameters,
            geometry_hash=geometry.hash(),
            commitment=reveal.commitment(),
            descriptors=descriptors,
        )
        for key, reveal in zip(authorities, reveals, strict=True)
    ]
    consensus = compute_consensus(
        votes, epoch=EPOCH, authorities=[k.public_key for k in authorities], clock=clock, reveals=reveals
    )
    nodes: list[EmulatedNode] = []
    for layer, members in enumerate(consensus.layers):
        if len(members) != config.width:
            raise ConfigError("the consensus dealt the mixes unevenly over the layers")
        for position, node_id in enumerate(members):
            pool = int(topology.mix(layer, position))
            nodes.append(EmulatedNode(node_id, NodeKeys((sphinx_keys[node_id],)), False, layer, pool, pool))
    for position, node_id in enumerate(consensus.gateways):
        nodes.append(
            EmulatedNode(
                node_id,
                NodeKeys((sphinx_keys[node_id],)),
                True,
                None,
                int(topology.ingress(position)),
                int(topology.egress(position)),
            )
        )
    clients = tuple(
        EmulatedClientIdentity(
            index,
            consensus.gateways[int(topology.client_gateway[index])],
            rng.randbytes(MAILBOX_ID_SIZE),
            E2EKeyPair.from_private_bytes(bytes((E2ESuite.X25519,)) + rng.randbytes(32)),
        )
        for index in range(config.clients)
    )
    return EmulatedNetwork(geometry, consensus, topology, tuple(nodes), clients)
