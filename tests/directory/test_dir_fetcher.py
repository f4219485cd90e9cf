"""`ConsensusFetcher` against real authority daemons on loopback: failover, verification,
the disk cache, and keeping up with the epochs."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import trio
from dir_helpers import (
    GEOMETRY,
    free_port,
    make_consensus,
    make_network,
    signed_document,
)
from dir_network import clock_starting_now, plan_authorities, start_authority, upload

from directory.consensus import Consensus
from directory.endpoints import AuthorityEndpoint
from directory.errors import ConsensusUnavailableError
from directory.fetcher import ConsensusFetcher


class InOrder(random.Random):
    """Randomness whose shuffles keep the order: the fetcher asks the authorities as listed."""

    def shuffle(self, x: list) -> None:  # type: ignore[override, type-arg]
        pass


async def test_fails_over_verifies_and_caches(tmp_path: Path) -> None:
    rng = random.Random(61)
    clock = clock_starting_now(60_000)
    plan = plan_authorities(rng, 3)
    keys = [key for key, _ in plan]
    endpoints = [endpoint for _, endpoint in plan]
    epoch = clock.epoch_at(time.time())
    consensus = make_consensus(rng, keys, epoch, clock)
    good = signed_document(consensus, keys[:2])
    minority = signed_document(consensus, keys[2:])
    dead = AuthorityEndpoint(keys[2].public_key, f"http://127.0.0.1:{free_port()}")
    cache = tmp_path / "cache"

    async with trio.open_nursery() as nursery:
        running = [
            await start_authority(nursery, key, endpoint, endpoints, clock, tmp_path / f"a{i}")
            for i, (key, endpoint) in enumerate(plan[:2])
        ]
        try:
            running[0].store.put_published(epoch, good)
            running[1].store.put_published(epoch, minority)  # one signature only: refused
            order = [dead, endpoints[1], endpoints[0]]
            fetcher = ConsensusFetcher(order, GEOMETRY, clock, cache_dir=cache, rng=InOrder())
            fetched = await fetcher.fetch(epoch)
            assert fetched == consensus
            assert fetcher.counters.snapshot() == {
                "consensus.fetched": 1,
                "consensus.rejected": 1,
                "consensus.unreachable": 1,
            }
            assert (cache / f"consensus-{epoch}.bin").read_bytes() == good
            assert await fetcher.fetch(epoch) is fetched  # from memory, no request

            with pytest.raises(ConsensusUnavailableError) as caught:
                await fetcher.fetch(epoch + 1)
            message = str(caught.value)
            assert "connection failed" in message and "HTTP 404" in message
        finally:
            for authority in running:
                await authority.stop()

    # Every authority gone: a new fetcher still has the cached document, verified again.
    gone = [AuthorityEndpoint(k.public_key, f"http://127.0.0.1:{free_port()}") for k in keys]
    offline = ConsensusFetcher(gone, GEOMETRY, clock, cache_dir=cache, rng=random.Random(1))
    assert await offline.fetch(epoch) == consensus
    assert offline.counters.get("consensus.from_cache") == 1
    # A damaged cache file is dropped, not trusted.
    (cache / f"consensus-{epoch}.bin").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    fresh = ConsensusFetcher(gone, GEOMETRY, clock, cache_dir=cache, rng=random.Random(1))
    with pytest.raises(ConsensusUnavailableError):
        await fresh.fetch(epoch)
    assert not (cache / f"consensus-{epoch}.bin").exists()


async def test_run_keeps_up_with_the_epochs(tmp_path: Path) -> None:
    rng = random.Random(62)
    clock = clock_starting_now(2_000, into_epoch_ms=50)
    plan = plan_authorities(rng, 1)
    key, endpoint = plan[0]
    seen: list[Consensus] = []
    switched_at: list[float] = []

    async def on_consensus(consensus: Consensus) -> None:
        seen.append(consensus)
        switched_at.append(time.time())

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            authority = await start_authority(nursery, key, endpoint, [endpoint], clock, tmp_path)
            try:
                current = clock.epoch_at(time.time())
                for epoch in (current + 1, current + 2):
                    for node in make_network(rng, epoch, 3, 1):
                        response = await upload(endpoint, node.to_bytes())
                        assert response.status_code == 200, response.text
                fetcher = ConsensusFetcher(
                    [endpoint], GEOMETRY, clock, cache_dir=tmp_path / "cache", rng=random.Random(3)
                )
                nursery.start_soon(lambda: fetcher.run(on_consensus=on_consensus))
                while len(seen) < 2:
                    await trio.sleep(0.05)
                assert [c.epoch for c in seen] == [current + 1, current + 2]
                assert fetcher.current == seen[1]
                # Each took over when its epoch began, not before.
                assert switched_at[1] >= clock.start(current + 2)
                assert (tmp_path / "cache" / f"consensus-{current + 2}.bin").exists()
                nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    await authority.stop()
