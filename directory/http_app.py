"""The authority's HTTP API: a small raw ASGI application around an `AuthorityCore`.

    GET  /v1/health               status and counters (JSON)
    POST /v1/descriptor           a node uploads its descriptor
    POST /v1/vote                 an authority hands over its vote
    GET  /v1/vote/{epoch}         this authority's vote
    POST /v1/signature            an authority hands over its consensus signature
    GET  /v1/signature/{epoch}    this authority's signature message
    GET  /v1/consensus/{epoch}    the published, signed consensus

Documents travel as `application/octet-stream` in their canonical encoding; answers to
uploads and errors are JSON: `{"status": outcome}` or `{"error": code, "reason": text}`.
Bodies larger than the limit of their route are refused with 413 before they are read in
full. Every outcome is counted; nothing a peer sends can make the app raise, and no
traceback ever reaches a peer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from directory.authority_core import AuthorityCore, Rejection
from directory.counters import Counters
from directory.descriptor import MAX_DESCRIPTOR_SIZE
from directory.signature_message import MAX_SIGNATURE_MESSAGE_SIZE
from directory.vote import MAX_VOTE_SIZE

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_EPOCH_DIGITS = 20
OCTET_STREAM = b"application/octet-stream"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes


def json_response(status: int, payload: dict[str, Any]) -> Response:
    return Response(status, json.dumps(payload).encode(), b"application/json")


def error_response(status: int, code: str, reason: str) -> Response:
    return json_response(status, {"error": code, "reason": reason})


class BodyTooLarge(Exception):
    pass


class AuthorityHttpApp:
    """The ASGI application of one authority."""

    def __init__(self, core: AuthorityCore, counters: Counters, now: Callable[[], float]):
        self.core = core
        self.counters = counters
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self._route(scope, receive)
        except BodyTooLarge:
            self.counters.increment("http.rejected.too_large")
            response = error_response(413, "too_large", "the request body is over the limit")
        except Exception:
            # A defect, not bad input: keep serving, tell the peer nothing about it.
            log.exception("internal error while handling a request")
            self.counters.increment("http.internal_error")
            response = error_response(500, "internal", "internal error")
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type),
                    (b"content-length", str(len(response.body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive) -> Response:
        method = scope["method"]
        parts = scope["path"].strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v1":
            return self._not_found()
        route = parts[1]
        if len(parts) == 2:
            if route == "health" and method == "GET":
                return self._health()
            uploads = {
                "descriptor": (MAX_DESCRIPTOR_SIZE, self.core.accept_descriptor),
                "vote": (MAX_VOTE_SIZE, self.core.accept_vote),
                "signature": (MAX_SIGNATURE_MESSAGE_SIZE, self.core.accept_signature),
            }
            if route in uploads:
                if method != "POST":
                    return self._method_not_allowed()
                limit, accept = uploads[route]
                body = await read_body(scope, receive, limit)
                return self._upload(route, accept, body)
            return self._not_found()
        if len(parts) == 3 and route in ("vote", "signature", "consensus"):
            if method != "GET":
                return self._method_not_allowed()
            epoch = parse_epoch(parts[2])
            if epoch is None:
                self.counters.increment("http.rejected.bad_epoch")
                return error_response(400, "bad_epoch", "the epoch must be a decimal number")
            getters = {
                "vote": self.core.vote_bytes,
                "signature": self.core.signature_bytes,
                "consensus": self.core.published,
            }
            document = getters[route](epoch)
            if document is None:
                self.counters.increment(f"{route}.get.not_found")
                return error_response(404, "not_found", f"no {route} for epoch {epoch} here (yet)")
            self.counters.increment(f"{route}.get.served")
            return Response(200, document, OCTET_STREAM)
        return self._not_found()

    def _upload(self, kind: str, accept: Callable[[bytes, float], str], body: bytes) -> Response:
        try:
            outcome = accept(body, self.now())
        except Rejection as rejection:
            self.counters.increment(f"{kind}.rejected.{rejection.code}")
            return error_response(rejection.status, rejection.code, rejection.reason)
        self.counters.increment(f"{kind}.{outcome}")
        return json_response(200 if outcome != "pending" else 202, {"status": outcome})

    def _health(self) -> Response:
        status = self.core.status(self.now())
        status["counters"] = self.counters.snapshot()
        status["status"] = "ok"
        return json_response(200, status)

    def _not_found(self) -> Response:
        self.counters.increment("http.rejected.not_found")
        return error_response(404, "not_found", "no such route")

    def _method_not_allowed(self) -> Response:
        self.counters.increment("http.rejected.method_not_allowed")
        return error_response(405, "method_not_allowed", "method not allowed on this route")


def parse_epoch(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_EPOCH_DIGITS:
        return None
    return int(text)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, or `BodyTooLarge` as soon as it is known to exceed `limit`."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:  # h11 refuses these before they get here
                continue
            if declared > limit:
                raise BodyTooLarge()
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
