"""Directory speed: one JSON line.

verify_ms        median ms of `verify_consensus` on a consensus of N nodes with 5 authority
                 signatures (target: at most 10 ms for 1,000 nodes)
compute_ms       median ms of `compute_consensus` from 5 votes of N descriptors, each
                 authority carrying every descriptor, plus encoding the body to sign
                 (target: at most 300 ms for 1,000 descriptors)
decode_vote_ms   median ms of `decode_vote` (signature check included) of one such vote
shared_random_ms median ms to check the 5 reveals against the votes' commitments, derive
                 the shared random value and deal the N mixes to layers (part of compute_ms)
relay_ms         median ms for one authority to take in the relay from 4 peers in the worst
                 case: their 4 relay indexes, then all 4 votes new to it (each decoded and
                 its signature checked), and the 4 authorities' reveal sets
relay_bytes      bytes fetched in that worst case
vote_bomb_refusal_ms  median ms to refuse a 16 MiB vote of empty arrays whose envelope names
                 a pinned key with a forged signature (the dearest refusal: the signature is
                 checked over 16 MiB; an unpinned key is refused from the first 64 bytes)
unpinned_refusal_ms   the same bomb with an unpinned key: refused from its first bytes
consensus_bytes  size of the signed consensus document

Usage: python benchmarks/directory.py [--nodes N] [--runs R]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file is named like
# the package it measures: take the folder out so that `directory` is the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from directory import (
    Address,
    AuthoritySignature,
    DirectoryError,
    EpochClock,
    Parameters,
    Reveal,
    Role,
    SignedConsensus,
    SigningKey,
    compute_consensus,
    deal_layers,
    decode_vote,
    shared_random_value,
    sign_descriptor,
    sign_vote,
    verify_consensus,
)
from directory.canonical import pack
from directory.compute import counted_votes, valid_reveals
from directory.relay import decode_relay_index, encode_relay_index
from directory.shared_random import (
    decode_reveal_set,
    encode_reveal_set,
    reveal_for,
)
from directory.signatures import digest
from directory.vote import MAX_VOTE_SIZE, read_vote_prefix
from sphinx_packets import Geometry

AUTHORITIES = 5


def _median_ms(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - start)
    return round(statistics.median(samples) / 1e6, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    arguments = parser.parse_args()

    rng = random.Random(1)
    geometry = Geometry.default()
    clock = EpochClock()
    epoch = clock.epoch_at(time.time()) + 1
    descriptors = [
        sign_descriptor(
            SigningKey.from_seed(rng.randbytes(32)),
            epoch=epoch,
            name=f"node-{index}",
            role=Role.GATEWAY if index % 10 == 0 else Role.MIX,
            link_key=rng.randbytes(32),
            sphinx_keys=tuple(rng.randbytes(32) for _ in range(3)),
            addresses=(
                Address(
                    f"10.{index // 256 % 256}.{index % 256}.1", 30000 + index % 1000
                ),
            ),
            version="0.1.0",
        )
        for index in range(arguments.nodes)
    ]
    authorities = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(AUTHORITIES)]
    pinned = [a.public_key for a in authorities]
    reveals = [Reveal(epoch, a.public_key, reveal_for(a, epoch)) for a in authorities]
    votes = [
        sign_vote(
            a,
            epoch=epoch,
            parameters=Parameters.default(),
            geometry_hash=geometry.hash(),
            commitment=r.commitment(),
            descriptors=descriptors,
        )
        for a, r in zip(authorities, reveals, strict=True)
    ]
    vote_bytes = votes[0].to_bytes()
    mix_ids = [d.node_id for d in descriptors if d.role is Role.MIX]

    def compute() -> bytes:
        consensus = compute_consensus(
            votes, epoch=epoch, authorities=pinned, clock=clock, reveals=reveals
        )
        return consensus.to_bytes()

    def shared_random() -> object:
        counted, _ = counted_votes(votes, epoch=epoch, authorities=pinned)
        value = shared_random_value(epoch, valid_reveals(counted, reveals, epoch))
        return deal_layers(value, mix_ids, 3)

    # The relay, worst case: every peer's index, then every vote new, then the reveal sets.
    all_votes = [v.to_bytes() for v in votes]
    index = encode_relay_index(
        epoch,
        [(v.authority_key, digest(b)) for v, b in zip(votes, all_votes, strict=True)],
    )
    reveal_set = encode_reveal_set(epoch, reveals)
    peers = AUTHORITIES - 1

    def relay() -> None:
        for _ in range(peers):
            decode_relay_index(index, epoch)
        for data in all_votes[1:]:
            decode_vote(data, authorities=pinned)
        for _ in range(peers):
            decode_reveal_set(reveal_set, epoch)

    def bomb(signer: bytes) -> bytes:
        head = b"\x92\x97" + pack("trimix-vote-v2") + pack(epoch) + pack(signer)
        return (
            head + b"\x90" * (MAX_VOTE_SIZE - len(head) - 70) + b"\xc4\x40" + bytes(64)
        )

    forged_bomb = bomb(pinned[0])
    unpinned_bomb = bomb(rng.randbytes(32))

    def refuse(data: bytes) -> None:
        try:
            decode_vote(data, authorities=pinned)
        except DirectoryError:
            return
        raise AssertionError("the bomb was not refused")

    def refuse_prefix(data: bytes) -> None:
        prefix = read_vote_prefix(data[:64])
        assert prefix is not None and prefix.authority_key not in pinned

    body = compute()
    document = SignedConsensus(
        body, tuple(AuthoritySignature(a.public_key, a.sign(body)) for a in authorities)
    ).to_bytes()
    now = clock.start(epoch)
    consensus = verify_consensus(document, pinned, epoch, geometry, now=now)
    assert len(consensus.descriptors) == arguments.nodes

    figures = {
        "benchmark": "directory",
        "nodes": arguments.nodes,
        "authorities": AUTHORITIES,
        "runs": arguments.runs,
        "verify_ms": _median_ms(
            lambda: verify_consensus(document, pinned, epoch, geometry, now=now),
            arguments.runs,
        ),
        "compute_ms": _median_ms(compute, max(3, arguments.runs // 3)),
        "decode_vote_ms": _median_ms(
            lambda: decode_vote(vote_bytes), max(3, arguments.runs // 3)
        ),
        "shared_random_ms": _median_ms(shared_random, arguments.runs),
        "relay_ms": _median_ms(relay, max(3, arguments.runs // 3)),
        "relay_bytes": peers * (len(index) + len(reveal_set))
        + sum(map(len, all_votes[1:])),
        "vote_bomb_refusal_ms": _median_ms(
            lambda: refuse(forged_bomb), max(3, arguments.runs // 3)
        ),
        "unpinned_refusal_ms": _median_ms(
            lambda: refuse_prefix(unpinned_bomb), arguments.runs
        ),
        "consensus_bytes": len(document),
        "python": platform.python_version(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
