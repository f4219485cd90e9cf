"""Serving the authority's ASGI app: hypercorn's HTTP/1.1 protocol (h11) on Trio, behind a
listener that caps connections.

hypercorn has no connection limit, so the accept loop is ours (in place of hypercorn's
`worker_serve`, using its `TCPServer` per connection; pyproject pins the hypercorn versions
whose internals this matches): `CappedListener` admits at
most `max_connections` at once (kept within the process's file-descriptor limit) and at most
`max_per_source` from one source address; a connection over a cap is accepted and reset at
once, and counted. Each admitted connection is handed to hypercorn's `TCPServer`, which
closes a connection whose request head has not arrived within `keep_alive_timeout`; the app
bounds the time to read a whole request body. So a flood of slow connections from one
source, or a low descriptor limit, cannot keep `/v1/health` from answering.
"""

from __future__ import annotations

import logging
import resource
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import hypercorn.config
import trio
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

log = logging.getLogger(__name__)

FD_RESERVE = 64
"""Descriptors kept free for the database, logs and outgoing requests."""


DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_MAX_PER_SOURCE = 32


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_per_source: int = DEFAULT_MAX_PER_SOURCE

    def within_descriptor_limit(self) -> ConnectionLimits:
        """These limits, lowered to fit the process's soft file-descriptor limit (and the
        per-source cap to at most half the total, so one source never takes them all)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        total = self.max_connections
        if soft != resource.RLIM_INFINITY:
            total = max(4, min(total, soft - FD_RESERVE))
        return ConnectionLimits(total, max(1, min(self.max_per_source, total // 2)))


class _TrackedStream(trio.abc.HalfCloseableStream):
    """An admitted connection: releases its slot when closed."""

    def __init__(self, inner: trio.SocketStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    @property
    def socket(self) -> Any:  # hypercorn reads the peer and local addresses from it
        return self._inner.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
        await self._inner.aclose()


class CappedListener(trio.abc.Listener[_TrackedStream]):
    """Accepts connections within `limits`; `on_refused(reason)` hears of each one reset."""

    def __init__(
        self,
        inner: trio.SocketListener,
        limits: ConnectionLimits,
        on_refused: Callable[[str], None],
    ) -> None:
        self.inner = inner
        self.limits = limits
        self.on_refused = on_refused
        self.open = 0
        self._per_source: Counter[str] = Counter()

    @property
    def port(self) -> int:
        return int(self.inner.socket.getsockname()[1])

    async def accept(self) -> _TrackedStream:
        while True:
            stream = await self.inner.accept()
            try:
                source = str(stream.socket.getpeername()[0])
            except OSError:
                await _reset(stream)
                continue
            if self.open >= self.limits.max_connections:
                self.on_refused("connections")
                await _reset(stream)
                continue
            if self._per_source[source] >= self.limits.max_per_source:
                self.on_refused("connections_per_source")
                await _reset(stream)
                continue
            self.open += 1
            self._per_source[source] += 1
            return _TrackedStream(stream, partial(self._release, source))

    def _release(self, source: str) -> None:
        self.open -= 1
        self._per_source[source] -= 1
        if self._per_source[source] <= 0:
            del self._per_source[source]

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _reset(stream: trio.SocketStream) -> None:
    """Close at once with a reset, so the refused connection holds nothing here."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    with trio.CancelScope(shield=True):
        await stream.aclose()


async def open_capped_listener(
    host: str, port: int, limits: ConnectionLimits, on_refused: Callable[[str], None]
) -> CappedListener:
    listeners = await trio.open_tcp_listeners(port, host=host)
    for extra in listeners[1:]:
        await extra.aclose()
    return CappedListener(listeners[0], limits.within_descriptor_limit(), on_refused)


async def serve(
    app: Any,
    config: hypercorn.config.Config,
    listener: CappedListener,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` (ASGI) on `listener` until `shutdown_trigger` returns; then stop
    accepting, let requests in progress finish for `config.graceful_timeout`, and return."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    state = ConnectionState({})
    async with trio.open_nursery() as connections:
        async with trio.open_nursery() as accepting:
            accepting.start_soon(
                partial(
                    trio.serve_listeners,
                    partial(TCPServer, wrapped, config, context, state),
                    [listener],
                    handler_nursery=connections,
                )
            )
            task_status.started()
            await shutdown_trigger()
            accepting.cancel_scope.cancel()
        await context.terminated.set()
        connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
