"""The authority's HTTP API: a Starlette application (on Trio, through anyio) around an
`AuthorityCore`.

    GET  /v1/health                      status and counters (JSON, for people)
    GET  /metrics                        the counters, in Prometheus' text format
    POST /v1/descriptor                  a node uploads its descriptor
    POST /v1/vote                        an authority hands over its vote
    GET  /v1/vote/{epoch}                this authority's vote
    GET  /v1/relay/{epoch}               the votes held when votes closed (relay index)
    GET  /v1/vote/{epoch}/{digest}       a vote held, by digest (for the relay)
    POST /v1/reveal                      an authority hands over its reveal
    GET  /v1/reveal/{epoch}              this authority's reveal, once votes closed
    GET  /v1/reveals/{epoch}             the reveals held when reveals closed
    POST /v1/signature                   an authority hands over its consensus signature
    GET  /v1/signature/{epoch}           this authority's signature message
    GET  /v1/consensus/{epoch}           the published, signed consensus
    GET  /v1/evidence/{epoch}            the authorities caught equivocating (JSON)
    GET  /v1/evidence/{epoch}/{key}      the evidence against one of them

Documents travel as `application/octet-stream` in their canonical encoding; answers to
uploads and errors are JSON: `{"status": outcome}` or `{"error": code, "reason": text}`.
A request body must arrive whole within `request_seconds` (408 otherwise) and within its
route's size limit (413 as soon as the declared or received length exceeds it). A vote is
judged by its first bytes (signer and epoch) before the rest is read, and only one upload
per claimed signer is read at a time. Wrong methods get 405 on every route. Every outcome
is counted; nothing a peer sends can make the app raise, and no traceback reaches a peer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from directory.authority_core import AuthorityCore
from directory.canonical import MAX_EPOCH
from directory.counters import Counters
from directory.descriptor import MAX_DESCRIPTOR_SIZE
from directory.rejection import Rejection
from directory.shared_random import MAX_REVEAL_SIZE
from directory.signature_message import MAX_SIGNATURE_MESSAGE_SIZE
from directory.vote import MAX_VOTE_SIZE, VOTE_PREFIX_SIZE

log = logging.getLogger(__name__)

MAX_EPOCH_DIGITS = 19
OCTET_STREAM = "application/octet-stream"
NO_STORE = {"cache-control": "no-store"}
DEFAULT_REQUEST_SECONDS = 10.0

Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


def error_response(status: int, code: str, reason: str) -> Response:
    return JSONResponse({"error": code, "reason": reason}, status_code=status, headers=NO_STORE)


def document_response(document: bytes) -> Response:
    return Response(document, media_type=OCTET_STREAM, headers=NO_STORE)


def parse_epoch(text: str) -> int | None:
    """A decimal epoch number in 0..2^63-1, or None."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_EPOCH_DIGITS:
        return None
    epoch = int(text)
    return epoch if epoch <= MAX_EPOCH else None


def parse_key(text: str) -> bytes | None:
    """32 bytes in 64 hex digits, or None."""
    if len(text) != 64:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


class AuthorityHttpApp:
    """The ASGI application of one authority (`app.asgi`, or the object itself)."""

    def __init__(
        self,
        core: AuthorityCore,
        counters: Counters,
        now: Callable[[], float],
        *,
        request_seconds: float = DEFAULT_REQUEST_SECONDS,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.core = core
        self.counters = counters
        self.now = now
        self.request_seconds = request_seconds
        self.status_extra = status_extra
        self._vote_uploads: set[bytes] = set()
        get = self._get_document
        routes = [
            Route("/v1/health", self._guard("health", self._health), methods=["GET"]),
            Route("/metrics", self._guard("metrics", self._metrics), methods=["GET"]),
            Route("/v1/descriptor", self._guard("descriptor", self._descriptor), methods=["POST"]),
            Route("/v1/vote", self._guard("vote", self._vote), methods=["POST"]),
            Route("/v1/reveal", self._guard("reveal", self._reveal), methods=["POST"]),
            Route("/v1/signature", self._guard("signature", self._signature), methods=["POST"]),
            Route("/v1/vote/{epoch}", get("vote", lambda e: core.vote_bytes(e)), methods=["GET"]),
            Route(
                "/v1/relay/{epoch}",
                get("relay", lambda e: core.relay_index(e, self.now())),
                methods=["GET"],
            ),
            Route(
                "/v1/vote/{epoch}/{digest}",
                self._guard("held_vote", self._held_vote),
                methods=["GET"],
            ),
            Route(
                "/v1/reveal/{epoch}",
                get("reveal", lambda e: core.reveal_bytes(e, self.now())),
                methods=["GET"],
            ),
            Route(
                "/v1/reveals/{epoch}",
                get("reveals", lambda e: core.reveal_set(e, self.now())),
                methods=["GET"],
            ),
            Route("/v1/signature/{epoch}", get("signature", core.signature_bytes), methods=["GET"]),
            Route("/v1/consensus/{epoch}", get("consensus", core.published), methods=["GET"]),
            Route(
                "/v1/evidence/{epoch}", self._guard("evidence", self._evidence), methods=["GET"]
            ),
            Route(
                "/v1/evidence/{epoch}/{authority}",
                self._guard("evidence", self._evidence_document),
                methods=["GET"],
            ),
        ]
        self.asgi = Starlette(
            routes=routes,
            exception_handlers={HTTPException: self._http_exception},  # type: ignore[dict-item]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)

    # plumbing

    def _guard(self, kind: str, handler: Handler) -> Handler:
        """`handler` with every failure turned into a counted JSON error."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Rejection as rejection:
                self.counters.increment(f"{kind}.rejected.{rejection.code}")
                return error_response(rejection.status, rejection.code, rejection.reason)
            except BodyTooLarge:
                self.counters.increment("http.rejected.too_large")
                return error_response(413, "too_large", "the request body is over the limit")
            except BodyTooSlow:
                self.counters.increment("http.rejected.request_timeout")
                return error_response(
                    408, "request_timeout", "the request body did not arrive in time"
                )
            except ClientDisconnect:
                self.counters.increment("http.rejected.disconnected")
                return error_response(400, "disconnected", "the request ended early")
            except Exception:
                # A defect, not bad input: keep serving, tell the peer nothing about it.
                log.exception("internal error while handling a request")
                self.counters.increment("http.internal_error")
                return error_response(500, "internal", "internal error")

        return endpoint

    async def _http_exception(self, request: Request, error: HTTPException) -> Response:
        if error.status_code == 405:
            self.counters.increment("http.rejected.method_not_allowed")
            return error_response(405, "method_not_allowed", "method not allowed on this route")
        if error.status_code == 404:
            self.counters.increment("http.rejected.not_found")
            return error_response(404, "not_found", "no such route")
        self.counters.increment(f"http.rejected.{error.status_code}")
        return error_response(error.status_code, "bad_request", "the request is not understood")

    def _epoch(self, request: Request) -> int:
        epoch = parse_epoch(request.path_params["epoch"])
        if epoch is None:
            raise Rejection(400, "bad_epoch", f"the epoch must be a decimal number <= {MAX_EPOCH}")
        return epoch

    def _get_document(self, kind: str, getter: Callable[[int], bytes | None]) -> Handler:
        async def handler(request: Request) -> Response:
            epoch = self._epoch(request)
            document = getter(epoch)
            if document is None:
                raise Rejection(404, "not_found", f"no {kind} for epoch {epoch} here (yet)")
            self.counters.increment(f"{kind}.get.served")
            return document_response(document)

        return self._guard(kind, handler)

    async def _read_body(
        self, request: Request, limit: int, screen: Callable[[bytes], bool] | None = None
    ) -> bytes:
        """The whole body, within `limit` bytes and the request deadline; `screen` sees the
        first bytes as they come until it returns True (it raises to refuse)."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise BodyTooLarge()
        body = bytearray()
        screened = screen is None
        with trio.move_on_after(self.request_seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise BodyTooLarge()
                if not screened and screen is not None:
                    screened = screen(bytes(body[:VOTE_PREFIX_SIZE]))
            return bytes(body)
        raise BodyTooSlow()

    def _answer(self, kind: str, outcome: str) -> Response:
        self.counters.increment(f"{kind}.{outcome}")
        return JSONResponse(
            {"status": outcome}, status_code=202 if outcome == "pending" else 200, headers=NO_STORE
        )

    # routes

    async def _health(self, request: Request) -> Response:
        status = self.core.status(self.now())
        if self.status_extra is not None:
            status.update(self.status_extra())
        status["counters"] = self.counters.snapshot()
        return JSONResponse(status, headers=NO_STORE)

    async def _metrics(self, request: Request) -> Response:
        return Response(
            self.counters.exposition(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
            headers=NO_STORE,
        )

    async def _descriptor(self, request: Request) -> Response:
        source = request.client.host if request.client is not None else None
        body = await self._read_body(request, MAX_DESCRIPTOR_SIZE)
        return self._answer(
            "descriptor", self.core.accept_descriptor(body, self.now(), source=source)
        )

    async def _vote(self, request: Request) -> Response:
        claimed: list[bytes] = []

        def screen(head: bytes) -> bool:
            prefix = self.core.screen_vote(head, self.now())
            if prefix is None:
                return False
            signer = prefix.authority_key
            if signer in self._vote_uploads:
                raise Rejection(429, "busy", "another vote upload by this signer is in progress")
            self._vote_uploads.add(signer)
            claimed.append(signer)
            return True

        try:
            body = await self._read_body(request, MAX_VOTE_SIZE, screen)
            return self._answer("vote", self.core.accept_vote(body, self.now()))
        finally:
            for signer in claimed:
                self._vote_uploads.discard(signer)

    async def _reveal(self, request: Request) -> Response:
        body = await self._read_body(request, MAX_REVEAL_SIZE)
        return self._answer("reveal", self.core.accept_reveal(body, self.now()))

    async def _signature(self, request: Request) -> Response:
        body = await self._read_body(request, MAX_SIGNATURE_MESSAGE_SIZE)
        return self._answer("signature", self.core.accept_signature(body, self.now()))

    async def _held_vote(self, request: Request) -> Response:
        epoch = self._epoch(request)
        vote_digest = parse_key(request.path_params["digest"])
        if vote_digest is None:
            raise Rejection(400, "bad_digest", "the digest must be 64 hex digits")
        document = self.core.held_vote(epoch, vote_digest)
        if document is None:
            raise Rejection(404, "not_found", f"no such vote for epoch {epoch} here")
        self.counters.increment("held_vote.get.served")
        return document_response(document)

    async def _evidence(self, request: Request) -> Response:
        epoch = self._epoch(request)
        keys = [key.hex() for key in self.core.evidence_keys(epoch)]
        return JSONResponse({"epoch": epoch, "equivocators": keys}, headers=NO_STORE)

    async def _evidence_document(self, request: Request) -> Response:
        epoch = self._epoch(request)
        key = parse_key(request.path_params["authority"])
        if key is None:
            raise Rejection(400, "bad_key", "the authority key must be 64 hex digits")
        document = self.core.evidence(epoch, key)
        if document is None:
            raise Rejection(404, "not_found", f"no evidence against this authority in {epoch}")
        self.counters.increment("evidence.get.served")
        return document_response(document)

