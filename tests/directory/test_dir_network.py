"""Three authorities on loopback with epochs of a few seconds: nodes upload, a consensus
appears and verifies; with one authority stopped, still; with two stopped, none."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
import trio
from dir_helpers import GEOMETRY, make_network, make_vote, reveals_of, signed_document
from dir_network import (
    clock_starting_now,
    plan_authorities,
    start_authority,
    upload_all,
)

from directory.compute import compute_consensus
from directory.consensus import (
    AuthoritySignature,
    SignedConsensus,
    decode_consensus,
    decode_signed_consensus,
)
from directory.descriptor import NodeDescriptor
from directory.endpoints import AuthorityEndpoint
from directory.errors import (
    ConsensusUnavailableError,
    DirectoryError,
    InsufficientSignaturesError,
)
from directory.evidence import decode_equivocation
from directory.fetcher import ConsensusFetcher
from directory.signature_message import sign_consensus_body
from directory.verify import verify_consensus
from directory.vote import decode_vote

EPOCH_MS = 3000


class InOrder(random.Random):
    """Randomness whose shuffles keep the order: the fetcher asks the authorities as listed."""

    def shuffle(self, x: list) -> None:  # type: ignore[override, type-arg]
        pass


async def _upload_all(
    descriptors: list[NodeDescriptor], endpoints: list[AuthorityEndpoint]
) -> None:
    await upload_all([d.to_bytes() for d in descriptors], endpoints)


async def _sleep_until(deadline_ms: int) -> None:
    await trio.sleep(max(0.0, deadline_ms / 1000 - time.time()))


async def test_three_authorities_one_down_then_two_down(tmp_path: Path) -> None:
    rng = random.Random(31)
    clock = clock_starting_now(EPOCH_MS)
    plan = plan_authorities(rng, 3)
    endpoints = [endpoint for _, endpoint in plan]
    fetcher = ConsensusFetcher(endpoints, GEOMETRY, clock, rng=random.Random(5), request_timeout=2)
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            running = [
                await start_authority(nursery, key, endpoint, endpoints, clock, tmp_path / f"a{i}")
                for i, (key, endpoint) in enumerate(plan)
            ]
            try:
                # All three up: epoch 2 is being built.
                epoch = clock.epoch_at(time.time()) + 1
                nodes = make_network(rng, epoch, 6, 2)
                await _upload_all(nodes, endpoints)
                await _sleep_until(clock.schedule(epoch).publish_at + 300)
                consensus = await fetcher.fetch(epoch)
                assert {d.node_id for d in consensus.descriptors} == {d.node_id for d in nodes}
                assert [len(layer) for layer in consensus.layers] == [2, 2, 2]
                documents = []
                for authority in running:
                    published = authority.store.published(epoch)
                    assert published is not None
                    documents.append(decode_signed_consensus(published))
                assert len({d.body for d in documents}) == 1
                assert all(len(d.signatures) == 3 for d in documents)

                # One authority down: the other two still agree.
                await running[2].stop()
                epoch += 1
                nodes = make_network(rng, epoch, 3, 1)
                await _upload_all(nodes, endpoints[:2])
                await _sleep_until(clock.schedule(epoch).publish_at + 300)
                consensus = await fetcher.fetch(epoch)
                assert len(consensus.descriptors) == 4
                published = running[0].store.published(epoch)
                assert published is not None
                assert len(decode_signed_consensus(published).signatures) == 2

                # Two down: no consensus, and a clear error.
                await running[1].stop()
                epoch += 1
                await _upload_all(make_network(rng, epoch, 3, 1), endpoints[:1])
                await _sleep_until(clock.schedule(epoch).publish_at + 300)
                with pytest.raises(ConsensusUnavailableError) as caught:
                    await fetcher.fetch(epoch)
                message = str(caught.value)
                assert f"no valid consensus for epoch {epoch}" in message
                assert "connection failed" in message
                assert "HTTP 404" in message
                health = await running[0].health()
                assert "only 1 of 3 authorities voted" in health["notes"][str(epoch)]
                assert health["status"] == "degraded"
            finally:
                for authority in running:
                    if not authority.stopped.is_set():
                        await authority.stop()


async def test_byzantine_authority_cannot_get_its_document_accepted(tmp_path: Path) -> None:
    """Two honest authorities run; the third, byzantine, votes, then signs a document of
    its own making, sends that signature to the others and serves its document."""
    rng = random.Random(32)
    clock = clock_starting_now(EPOCH_MS)
    plan = plan_authorities(rng, 3)
    endpoints = [endpoint for _, endpoint in plan]
    byzantine_key, byzantine_endpoint = plan[2]
    pinned = [e.public_key for e in endpoints]
    epoch = clock.epoch_at(time.time()) + 1
    nodes = make_network(rng, epoch, 3, 1)

    byzantine_document = b""

    async def byzantine_app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": byzantine_document})

    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = [byzantine_endpoint.url.removeprefix("http://")]
    config.accesslog = None
    config.errorlog = None
    stop_byzantine = trio.Event()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: hypercorn.trio.serve(
                    byzantine_app,
                    config,
                    shutdown_trigger=stop_byzantine.wait,
                    task_status=task_status,
                )
            )
            honest = [
                await start_authority(nursery, key, endpoint, endpoints, clock, tmp_path / f"a{i}")
                for i, (key, endpoint) in enumerate(plan[:2])
            ]
            try:
                await _upload_all(nodes, endpoints[:2])
                # The byzantine authority votes like anyone, for a network with an extra node...
                extra = make_network(rng, epoch, 1, 0)
                vote = make_vote(byzantine_key, epoch, nodes + extra).to_bytes()
                await _sleep_until(clock.schedule(epoch).vote_at + 50)
                async with httpx.AsyncClient(timeout=5) as client:
                    for endpoint in endpoints[:2]:
                        response = await client.post(endpoint.route("/v1/vote"), content=vote)
                        assert response.status_code == 200, response.text
                # ...then signs a consensus of its own making, with its extra node in.
                forged = compute_consensus(
                    [make_vote(byzantine_key, epoch, nodes + extra)],
                    epoch=epoch,
                    authorities=[byzantine_key.public_key],
                    clock=clock,
                    reveals=reveals_of([byzantine_key], epoch),
                )
                byzantine_document = signed_document(forged, [byzantine_key])
                await _sleep_until(clock.schedule(epoch).compute_at + 100)
                message = sign_consensus_body(
                    byzantine_key, epoch=epoch, consensus_body=forged.to_bytes()
                )
                async with httpx.AsyncClient(timeout=5) as client:
                    for endpoint in endpoints[:2]:
                        response = await client.post(
                            endpoint.route("/v1/signature"), content=message.to_bytes()
                        )
                        assert response.status_code == 409
                        assert response.json()["error"] == "different_document"

                await _sleep_until(clock.schedule(epoch).publish_at + 300)
                # The fetcher meets the byzantine authority first, refuses, fails over.
                fetcher = ConsensusFetcher(
                    [byzantine_endpoint, *endpoints[:2]], GEOMETRY, clock, rng=InOrder()
                )
                consensus = await fetcher.fetch(epoch)
                assert {d.node_id for d in consensus.descriptors} == {d.node_id for d in nodes}
                published = honest[0].store.published(epoch)
                assert published is not None
                signers = {s.authority_key for s in decode_signed_consensus(published).signatures}
                assert signers == set(pinned[:2])
                health = await honest[0].health()
                assert health["counters"]["signature.rejected.different_document"] == 1

                assert fetcher.counters.get("consensus.rejected") == 1
                with pytest.raises(InsufficientSignaturesError, match="1 valid signatures"):
                    verify_consensus(byzantine_document, pinned, epoch, GEOMETRY, now=time.time())
            finally:
                for authority in honest:
                    await authority.stop()
                stop_byzantine.set()


async def test_an_equivocating_authority_cannot_split_three_daemons(tmp_path: Path) -> None:
    """Finding 1 against real daemons: the byzantine third authority sends one vote to each
    honest daemon (they differ in a node only the first honest one knows), reveals, and then
    signs every body it can think of. The relay shows both daemons both votes: they leave it
    out, publish one body, serve the evidence, and no second document can verify."""
    rng = random.Random(33)
    clock = clock_starting_now(EPOCH_MS)
    plan = plan_authorities(rng, 3)
    endpoints = [endpoint for _, endpoint in plan]
    byzantine_key, byzantine_endpoint = plan[2]
    pinned = [e.public_key for e in endpoints]
    epoch = clock.epoch_at(time.time()) + 1
    nodes = make_network(rng, epoch, 4, 1)
    allowed = {d.identity_key: d.role for d in nodes}
    to_first = make_vote(byzantine_key, epoch, nodes).to_bytes()
    to_second = make_vote(byzantine_key, epoch, nodes[1:]).to_bytes()

    async def byzantine_app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        # It serves no vote of its own, and its second vote in its relay index.
        from directory.relay import encode_relay_index
        from directory.signatures import digest

        body = b""
        if scope["path"] == f"/v1/relay/{epoch}":
            body = encode_relay_index(epoch, [(byzantine_key.public_key, digest(to_second))])
        status = 200 if body else 404
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = [byzantine_endpoint.url.removeprefix("http://")]
    config.accesslog = None
    config.errorlog = None
    stop_byzantine = trio.Event()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: hypercorn.trio.serve(
                    byzantine_app,
                    config,
                    shutdown_trigger=stop_byzantine.wait,
                    task_status=task_status,
                )
            )
            honest = [
                await start_authority(
                    nursery,
                    key,
                    endpoint,
                    endpoints,
                    clock,
                    tmp_path / f"a{i}",
                    allowed_nodes=allowed,
                )
                for i, (key, endpoint) in enumerate(plan[:2])
            ]
            try:
                await _upload_all(nodes[1:], endpoints[:2])
                await _upload_all(nodes[:1], endpoints[:1])
                schedule = clock.schedule(epoch)
                await _sleep_until(schedule.vote_at - 150)
                async with httpx.AsyncClient(timeout=5) as client:
                    for endpoint, vote in zip(endpoints[:2], (to_first, to_second), strict=True):
                        response = await client.post(endpoint.route("/v1/vote"), content=vote)
                        assert response.status_code == 200, response.text
                    await _sleep_until(schedule.relay_at + 20)
                    reveal = reveals_of([byzantine_key], epoch)[0].to_bytes()
                    for endpoint in endpoints[:2]:
                        await client.post(endpoint.route("/v1/reveal"), content=reveal)

                    await _sleep_until(schedule.publish_at + 300)
                    for endpoint in endpoints[:2]:
                        response = await client.get(endpoint.route(f"/v1/evidence/{epoch}"))
                        assert response.json()["equivocators"] == [byzantine_key.public_key.hex()]
                        evidence = await client.get(
                            endpoint.route(f"/v1/evidence/{epoch}/{byzantine_key.public_key.hex()}")
                        )
                        assert evidence.status_code == 200
                        checked = decode_equivocation(evidence.content, authorities=pinned)
                        assert {checked.first, checked.second} == {to_first, to_second}
                    honest_votes = [
                        (await client.get(e.route(f"/v1/vote/{epoch}"))).content
                        for e in endpoints[:2]
                    ]

                documents = [a.store.published(epoch) for a in honest]
                assert documents[0] is not None and documents[1] is not None
                bodies = {decode_signed_consensus(d).body for d in documents if d}
                assert len(bodies) == 1
                (honest_body,) = bodies
                # Every body the byzantine authority could have wanted: from either of its
                # votes with the honest ones. Signed by itself and whichever honest daemon
                # signed that body, only the honest body verifies.
                candidates = {honest_body}
                for byzantine_vote in (to_first, to_second):
                    votes = [decode_vote(v) for v in (*honest_votes, byzantine_vote)]
                    candidates.add(
                        compute_consensus(
                            votes,
                            epoch=epoch,
                            authorities=pinned,
                            clock=clock,
                            reveals=reveals_of([k for k, _ in plan], epoch),
                        ).to_bytes()
                    )
                assert len(candidates) == 3
                verifying = []
                for body in candidates:
                    signers = [byzantine_key] + [k for k, _ in plan[:2] if body == honest_body]
                    document = SignedConsensus(
                        body, tuple(AuthoritySignature(k.public_key, k.sign(body)) for k in signers)
                    ).to_bytes()
                    try:
                        verify_consensus(document, pinned, epoch, GEOMETRY, now=time.time())
                    except DirectoryError:
                        continue
                    verifying.append(body)
                assert verifying == [honest_body]
                consensus = decode_consensus(honest_body)
                assert {d.node_id for d in consensus.descriptors} == {d.node_id for d in nodes[1:]}
                health = await honest[0].health()
                assert health["counters"]["vote.accepted"] >= 2
            finally:
                for authority in honest:
                    await authority.stop()
                stop_byzantine.set()
