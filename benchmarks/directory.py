"""Directory speed: one JSON line.

verify_ms        median ms of `verify_consensus` on a consensus of N nodes with 5 authority
                 signatures (target: at most 10 ms for 1,000 nodes)
compute_ms       median ms of `compute_consensus` from 5 votes of N descriptors, each
                 authority carrying every descriptor, plus encoding the body to sign
                 (target: at most 300 ms for 1,000 descriptors)
decode_vote_ms   median ms of `decode_vote` (signature check included) of one such vote
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

from directory import (  # noqa: E402
    Address,
    AuthoritySignature,
    EpochClock,
    Parameters,
    Role,
    SignedConsensus,
    SigningKey,
    compute_consensus,
    decode_vote,
    sign_descriptor,
    sign_vote,
    verify_consensus,
)
from sphinx_packets import Geometry  # noqa: E402

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
            addresses=(Address(f"10.{index // 256 % 256}.{index % 256}.1", 30000 + index % 1000),),
            version="0.1.0",
        )
        for index in range(arguments.nodes)
    ]
    authorities = [SigningKey.from_seed(rng.randbytes(32)) for _ in range(AUTHORITIES)]
    pinned = [a.public_key for a in authorities]
    votes = [
        sign_vote(
            a,
            epoch=epoch,
            parameters=Parameters.default(),
            geometry_hash=geometry.hash(),
            descriptors=descriptors,
        )
        for a in authorities
    ]
    vote_bytes = votes[0].to_bytes()

    def compute() -> bytes:
        consensus = compute_consensus(votes, epoch=epoch, authorities=pinned, clock=clock)
        return consensus.to_bytes()

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
            lambda: verify_consensus(document, pinned, epoch, geometry, now=now), arguments.runs
        ),
        "compute_ms": _median_ms(compute, max(3, arguments.runs // 3)),
        "decode_vote_ms": _median_ms(lambda: decode_vote(vote_bytes), max(3, arguments.runs // 3)),
        "consensus_bytes": len(document),
        "python": platform.python_version(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
