"""The authority's HTTP API on loopback: every bad upload gets a clear 4xx and is counted,
and the daemon keeps serving."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from dir_helpers import make_descriptor, make_vote, signing_key
from dir_network import (
    RunningAuthority,
    clock_starting_now,
    plan_authorities,
    start_authority,
    upload,
)

from directory.descriptor import MAX_DESCRIPTOR_SIZE
from directory.endpoints import AuthorityEndpoint
from directory.signature_message import sign_consensus_body
from directory.vote import MAX_VOTE_SIZE


@pytest.fixture
async def authority(tmp_path: Path) -> AsyncIterator[RunningAuthority]:
    rng = random.Random(41)
    clock = clock_starting_now(60_000)
    plan = plan_authorities(rng, 3)
    endpoints = [endpoint for _, endpoint in plan]
    async with trio.open_nursery() as nursery:
        running = await start_authority(nursery, plan[0][0], plan[0][1], endpoints, clock, tmp_path)
        try:
            yield running
        finally:
            await running.stop()


async def test_bad_requests_get_clear_4xx_and_are_counted(
    authority: RunningAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(42)
    core = authority.daemon.core
    epoch = core.building_epoch(time.time())
    route = authority.endpoint.route
    node = make_descriptor(rng, epoch)
    async with httpx.AsyncClient(timeout=5) as client:

        async def post(path: str, content: bytes) -> httpx.Response:
            return await client.post(route(path), content=content)

        async def expect(response: httpx.Response, status: int, code: str) -> None:
            assert response.status_code == status, response.text
            payload = response.json()
            assert payload["error"] == code
            assert payload["reason"]
            assert "Traceback" not in response.text

        response = await post("/v1/descriptor", node.to_bytes())
        assert response.json() == {"status": "accepted"}
        response = await post("/v1/descriptor", node.to_bytes())
        assert response.json() == {"status": "duplicate"}
        other = make_descriptor(rng, epoch, key=None)
        conflicting = make_descriptor(rng, epoch, key=signing_key(random.Random(1)), port=1)
        await post("/v1/descriptor", conflicting.to_bytes())
        conflicting_again = make_descriptor(rng, epoch, key=signing_key(random.Random(1)), port=2)
        await expect(await post("/v1/descriptor", conflicting_again.to_bytes()), 409, "conflict")
        await expect(await post("/v1/descriptor", b"\x92\x01"), 400, "malformed")
        await expect(await post("/v1/descriptor", b""), 400, "malformed")
        await expect(
            await post("/v1/descriptor", b"x" * (MAX_DESCRIPTOR_SIZE + 1)), 413, "too_large"
        )

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"y" * MAX_DESCRIPTOR_SIZE

        streamed = await client.post(route("/v1/descriptor"), content=chunks())  # no length
        await expect(streamed, 413, "too_large")
        forged = bytearray(other.to_bytes())
        forged[-2] ^= 0x40
        await expect(await post("/v1/descriptor", bytes(forged)), 401, "bad_signature")
        await expect(
            await post("/v1/descriptor", make_descriptor(rng, epoch - 1).to_bytes()), 410, "stale"
        )

        unknown = make_vote(signing_key(rng), epoch, []).to_bytes()
        await expect(await post("/v1/vote", unknown), 403, "unknown_authority")
        await expect(await post("/v1/vote", b"not signed at all"), 400, "malformed")
        await expect(await post("/v1/vote", b"\x00" * 10 + b"\x01" * 100), 400, "malformed")
        # A declared length over the limit is refused before any of the body is sent.
        port = int(authority.endpoint.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(
                b"POST /v1/vote HTTP/1.1\r\nhost: authority\r\n"
                + f"content-length: {MAX_VOTE_SIZE + 1}\r\n\r\n".encode()
            )
            answer = b""
            with trio.fail_after(5):
                while b"too_large" not in answer:
                    chunk = await stream.receive_some()
                    assert chunk, answer
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        stranger = sign_consensus_body(signing_key(rng), epoch=epoch, consensus_body=b"x")
        await expect(await post("/v1/signature", stranger.to_bytes()), 403, "unknown_authority")

        await expect(await client.get(route("/v1/consensus/abc")), 400, "bad_epoch")
        await expect(await client.get(route("/v1/consensus/-1")), 400, "bad_epoch")
        await expect(await client.get(route(f"/v1/consensus/{epoch}")), 404, "not_found")
        await expect(await client.get(route("/v2/anything")), 404, "not_found")
        await expect(
            await client.put(route("/v1/descriptor"), content=b""), 405, "method_not_allowed"
        )
        await expect(
            await client.post(route("/v1/consensus/1"), content=b""), 405, "method_not_allowed"
        )

        for _ in range(40):  # a flood of noise changes nothing
            noise = rng.randbytes(rng.randrange(0, 600))
            response = await post(
                rng.choice(["/v1/descriptor", "/v1/vote", "/v1/signature"]), noise
            )
            assert 400 <= response.status_code < 500

        health = (await client.get(route("/v1/health"))).json()
    counters = health["counters"]
    assert health["status"] == "ok"
    assert health["descriptors"] == 2
    assert counters["descriptor.accepted"] == 2
    assert counters["descriptor.duplicate"] == 1
    assert counters["descriptor.rejected.conflict"] == 1
    assert counters["descriptor.rejected.malformed"] >= 2
    assert counters["http.rejected.too_large"] >= 3
    assert counters["descriptor.rejected.bad_signature"] == 1
    assert counters["descriptor.rejected.stale"] == 1
    assert counters["vote.rejected.unknown_authority"] == 1
    assert counters["signature.rejected.unknown_authority"] == 1
    assert counters["consensus.rejected.bad_epoch"] == 2
    assert counters["consensus.rejected.not_found"] == 1
    assert counters["http.rejected.method_not_allowed"] == 2
    assert "http.internal_error" not in counters

    # Logs at the default level hold no addresses, no node ids, no payloads.
    # (httpx's own INFO lines come from this test's client; the CLI quiets httpx.)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "127.0.0.1" not in text
    assert node.node_id.hex() not in text and node.identity_key.hex() not in text


async def test_every_route_answers_405_to_a_wrong_method_and_huge_epochs_are_4xx(
    authority: RunningAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 9: an epoch of 2^63 or more in a path is refused before it reaches SQLite
    (which would overflow): a 400, and no traceback in the log."""
    caplog.set_level(logging.INFO)
    route = authority.endpoint.route
    key = "00" * 32
    gets = [
        "/v1/health",
        "/metrics",
        "/v1/vote/5",
        "/v1/relay/5",
        f"/v1/vote/5/{key}",
        "/v1/reveal/5",
        "/v1/reveals/5",
        "/v1/signature/5",
        "/v1/consensus/5",
        "/v1/evidence/5",
        f"/v1/evidence/5/{key}",
    ]
    posts = ["/v1/descriptor", "/v1/vote", "/v1/reveal", "/v1/signature"]
    async with httpx.AsyncClient(timeout=5) as client:
        for path in gets:
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                response = await client.request(method, route(path), content=b"x")
                assert response.status_code == 405, (method, path)
                assert response.json()["error"] == "method_not_allowed"
        for path in posts:
            for method in ("GET", "PUT", "DELETE"):
                response = await client.request(method, route(path))
                assert response.status_code == 405, (method, path)
        for epoch in (str(1 << 63), str((1 << 64) - 1), str(1 << 64), "9" * 30):
            for path in gets[2:]:
                response = await client.get(route(path.replace("/5", f"/{epoch}")))
                assert response.status_code == 400, (path, epoch)
                assert response.json()["error"] == "bad_epoch"
        largest = await client.get(route(f"/v1/consensus/{(1 << 63) - 1}"))
        assert largest.status_code == 404
        metrics = await client.get(route("/metrics"))
        assert metrics.status_code == 200
        assert 'trimix_authority_events_total{outcome="http.rejected.method_not_allowed"}' in (
            metrics.text
        )
        health = (await client.get(route("/v1/health"))).json()
    assert "http.internal_error" not in health["counters"]
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text


async def test_sybil_uploads_from_one_source_cannot_crowd_out_an_honest_node(
    tmp_path: Path,
) -> None:
    """Finding 5 against a daemon: with open registration (a testnet), 300 Sybil descriptors
    from one address (127.0.0.2) against a capacity of 100: the per-source budget (50 per
    epoch length, a token bucket) stops them near 50, and an honest node from another
    address is still accepted. With closed registration (the default), none gets in."""
    rng = random.Random(43)
    clock = clock_starting_now(60_000)
    plan = plan_authorities(rng, 2)
    endpoints = [endpoint for _, endpoint in plan]
    epoch = clock.epoch_at(time.time()) + 1
    sybils = [make_descriptor(rng, epoch).to_bytes() for _ in range(300)]
    honest = make_descriptor(rng, epoch)
    limits = {"uploads_per_source_per_epoch": 50, "max_descriptors_per_epoch": 100}
    async with trio.open_nursery() as nursery:
        opened = await start_authority(
            nursery, *plan[0], endpoints, clock, tmp_path / "open", **limits
        )
        closed = await start_authority(
            nursery,
            *plan[1],
            endpoints,
            clock,
            tmp_path / "closed",
            allowed_nodes={honest.identity_key: honest.role},
            **limits,
        )
        try:
            sybil_transport = httpx.AsyncHTTPTransport(
                local_address="127.0.0.2", limits=httpx.Limits(max_connections=16)
            )
            async with httpx.AsyncClient(timeout=10, transport=sybil_transport) as sybil:
                for authority in (opened, closed):
                    outcomes: dict[int, int] = {}

                    async def one(document: bytes, endpoint: AuthorityEndpoint) -> None:
                        response = await sybil.post(
                            endpoint.route("/v1/descriptor"), content=document
                        )
                        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1

                    started = time.monotonic()
                    async with trio.open_nursery() as uploads:
                        for document in sybils:
                            uploads.start_soon(one, document, authority.endpoint)
                    refilled = int((time.monotonic() - started) * 50 / 60) + 1
                    admitted = 200 if authority is opened else 403
                    assert set(outcomes) == {admitted, 429}
                    assert 50 <= outcomes[admitted] <= 50 + refilled
                    assert outcomes[429] == 300 - outcomes[admitted]
                    response = await upload(authority.endpoint, honest.to_bytes())
                    assert response.status_code == 200, response.text
            health = await opened.health()
            assert 51 <= health["descriptors"] < 100  # the capacity was never reached
        finally:
            await opened.stop()
            await closed.stop()
