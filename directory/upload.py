"""`upload_descriptor`: how a node hands its signed descriptor to every authority (a thin
Trio driver; nodes call it each epoch for the epochs ahead).

The uploads run concurrently, each with one deadline for the whole request and a cap on the
answer's size (`directory.http_client`), so a slow or dead authority costs one timeout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import httpx
import trio

from directory.counters import Counters
from directory.descriptor import NodeDescriptor
from directory.endpoints import AuthorityEndpoint
from directory.http_client import PeerError, bounded_request

log = logging.getLogger(__name__)

MAX_ANSWER_SIZE = 4096
ACCEPTING = ("accepted", "duplicate")


async def upload_descriptor(
    authorities: Sequence[AuthorityEndpoint],
    descriptor: NodeDescriptor | bytes,
    *,
    timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
    counters: Counters | None = None,
) -> int:
    """POST `descriptor` to every authority at once; returns how many hold it now (answered
    `accepted` or `duplicate`). Each request must complete within `timeout` seconds.
    Outcomes are counted in `counters` (`upload.accepted`, `upload.refused_<code>`,
    `upload.unreachable`, ...) if given; nothing about an authority is logged above DEBUG."""
    document = descriptor if isinstance(descriptor, bytes) else descriptor.to_bytes()
    holding = 0

    async def one(endpoint: AuthorityEndpoint, http: httpx.AsyncClient) -> None:
        nonlocal holding
        outcome = await _upload_one(http, endpoint, document, timeout)
        if counters is not None:
            counters.increment(f"upload.{outcome}")
        if outcome in ACCEPTING:
            holding += 1

    async def all_of(http: httpx.AsyncClient) -> None:
        async with trio.open_nursery() as nursery:
            for endpoint in authorities:
                nursery.start_soon(one, endpoint, http)

    if client is not None:
        await all_of(client)
    else:
        async with httpx.AsyncClient(timeout=timeout) as own:
            await all_of(own)
    return holding


async def _upload_one(
    client: httpx.AsyncClient, endpoint: AuthorityEndpoint, document: bytes, timeout: float
) -> str:
    try:
        reply = await bounded_request(
            client,
            "POST",
            endpoint.route("/v1/descriptor"),
            max_body=MAX_ANSWER_SIZE,
            timeout=timeout,
            content=document,
        )
    except PeerError as error:
        log.debug("descriptor upload: %s", error.outcome)
        return error.outcome
    try:
        answer = json.loads(reply.body)
        key = "status" if reply.status == 200 else "error"
        code = str(answer[key])
    except (ValueError, KeyError, TypeError):
        return "bad_response"
    if reply.status == 200 and code in ACCEPTING:
        return code
    return f"refused_{code}" if code.isidentifier() else "bad_response"
