"""Shared builders for the directory tests (imported as a plain module, not a conftest)."""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence

from directory.compute import compute_consensus
from directory.consensus import AuthoritySignature, Consensus, SignedConsensus
from directory.descriptor import Address, NodeDescriptor, Role, sign_descriptor
from directory.epoch import EpochClock
from directory.parameters import Parameters
from directory.shared_random import Reveal, reveal_for
from directory.signatures import SigningKey
from directory.vote import Vote, sign_vote
from sphinx_packets import Geometry

GEOMETRY = Geometry.default()


def signing_key(rng: random.Random) -> SigningKey:
    return SigningKey.from_seed(rng.randbytes(32))


def make_descriptor(
    rng: random.Random,
    epoch: int,
    *,
    key: SigningKey | None = None,
    role: Role = Role.MIX,
    name: str | None = None,
    port: int = 4000,
    host: str = "127.0.0.1",
) -> NodeDescriptor:
    key = key or signing_key(rng)
    return sign_descriptor(
        key,
        epoch=epoch,
        name=name or f"node-{key.public_key[:4].hex()}",
        role=role,
        link_key=rng.randbytes(32),
        sphinx_keys=tuple(rng.randbytes(32) for _ in range(3)),
        addresses=(Address(host, port),),
        version="0.1.0",
    )


def make_network(rng: random.Random, epoch: int, mixes: int, gateways: int) -> list[NodeDescriptor]:
    return [make_descriptor(rng, epoch) for _ in range(mixes)] + [
        make_descriptor(rng, epoch, role=Role.GATEWAY) for _ in range(gateways)
    ]


def make_vote(
    key: SigningKey,
    epoch: int,
    descriptors: Sequence[NodeDescriptor],
    *,
    parameters: Parameters | None = None,
    geometry: Geometry = GEOMETRY,
) -> Vote:
    """A vote committing to `reveal_of(key, epoch)`."""
    return sign_vote(
        key,
        epoch=epoch,
        parameters=parameters or Parameters.default(),
        geometry_hash=geometry.hash(),
        commitment=reveal_of(key, epoch).commitment(),
        descriptors=descriptors,
    )


def reveal_of(key: SigningKey, epoch: int) -> Reveal:
    return Reveal(epoch, key.public_key, reveal_for(key, epoch))


def reveals_of(keys: Sequence[SigningKey], epoch: int) -> list[Reveal]:
    return [reveal_of(k, epoch) for k in keys]


def signed_document(consensus: Consensus, signers: Sequence[SigningKey]) -> bytes:
    body = consensus.to_bytes()
    return SignedConsensus(
        body, tuple(AuthoritySignature(k.public_key, k.sign(body)) for k in signers)
    ).to_bytes()


def make_consensus(
    rng: random.Random,
    authorities: Sequence[SigningKey],
    epoch: int,
    clock: EpochClock,
    *,
    mixes: int = 6,
    gateways: int = 2,
) -> Consensus:
    network = make_network(rng, epoch, mixes, gateways)
    votes = [make_vote(k, epoch, network) for k in authorities]
    return compute_consensus(
        votes,
        epoch=epoch,
        authorities=[k.public_key for k in authorities],
        clock=clock,
        reveals=reveals_of(authorities, epoch),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
