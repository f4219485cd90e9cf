"""Bounded HTTP requests to authorities: one deadline for the whole exchange (connecting,
sending, the response head and its body), and the body read as a stream with a size cap.

httpx's own timeouts apply to each read, so a peer answering one byte per second would
never trip them; here a Trio cancel scope bounds the whole request. The response body is
never decoded (`accept-encoding: identity`; a compressed answer is refused), so its size on
the wire is its size in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import trio

from directory.clock_skew import parse_http_date
from directory.errors import DirectoryError

IDENTITY = {"accept-encoding": "identity"}
OCTET_STREAM = {"content-type": "application/octet-stream", "accept-encoding": "identity"}


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    server_time: float | None = None
    """The answer's `Date` header in POSIX seconds (None if absent or malformed)."""
    body_seconds: float = 0.0
    """How long the body took to arrive after the head (which the `Date` was written for)."""


class PeerError(DirectoryError):
    """A request that brought no usable answer; `outcome` is `unreachable`, `timed_out`,
    `too_large` or `bad_response` (for counters), the message says more."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome


async def bounded_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_body: int,
    timeout: float,
    content: bytes | None = None,
) -> HttpReply:
    """The status and body of one request, within `timeout` seconds for all of it and
    `max_body` bytes of response body; `PeerError` otherwise."""
    with trio.move_on_after(max(0.0, timeout)):
        try:
            headers = IDENTITY if content is None else OCTET_STREAM
            async with client.stream(method, url, content=content, headers=headers) as response:
                head_at = trio.current_time()
                declared = response.headers.get("content-length")
                if declared is not None and (not declared.isdigit() or int(declared) > max_body):
                    raise PeerError("too_large", f"an answer of more than {max_body} bytes")
                if response.headers.get("content-encoding", "identity") != "identity":
                    raise PeerError("bad_response", "an encoded answer")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > max_body:
                        raise PeerError("too_large", f"an answer of more than {max_body} bytes")
                return HttpReply(
                    response.status_code,
                    bytes(body),
                    parse_http_date(response.headers.get("date")),
                    trio.current_time() - head_at,
                )
        except httpx.HTTPError as error:
            raise PeerError("unreachable", describe(error)) from None
    raise PeerError("timed_out", f"no complete answer within {timeout:.3g} s")


def describe(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.ConnectError):
        return "connection failed"
    return f"HTTP error ({type(error).__name__})"
