"""The client daemon's WebSocket server: a thin Trio driver (trio-websocket) between local
apps and one open `Client`. The protocol is `mixclient.ws_protocol` (docs/CLIENT_API.md).

- It listens on 127.0.0.1 by default, and serves only an app that presents the daemon's
  token and is no web page of an origin not allowed (`mixclient.ws_access`): any local
  process and any page in the user's browser can reach a loopback port. A refused handshake
  gets HTTP 401 or 403 and is counted in `refused`.
- At most `max_connections` apps at once (more are refused with HTTP 503) and at most
  `max_streams` TCP connections open, handshakes included (more wait in the listen backlog);
  a handshake must be over within `handshake_timeout`. Each app may have `max_in_flight`
  requests in flight (more get an error `busy`), each in its own task, so a slow send never
  holds up a `self_address` or another send.
- A WebSocket message over `MAX_REQUEST_BYTES` gets an error `too_large`; one over the
  transport cap (`transport_cap`, larger) closes that connection (code 1009), as the
  WebSocket library does, since it would have to be read into memory first.
- Received messages go to every connected app as `received` events, to all of them at once.
  A message stays in the client's durable inbox until an app acknowledges it (`ack`): the
  one consumer of `client.messages(auto_ack=False)` runs only while an app is connected,
  and each time it starts (the first app after none, or after a restart) it hands out again
  every message not acknowledged yet. An app that disconnects while an event is on its way,
  or that crashes before it has stored one, misses nothing: it sees the message again (with
  the same `message_id`) when it reconnects.
- An app that does not take an event within `send_timeout` is disconnected, so it cannot
  hold up the events of the others.
- Bad input never closes the connection or the daemon; every failure of a request is an
  `error` event with the request's id (`internal` for a failure the daemon did not foresee,
  logged without its details at the default level).
- An app that disconnects with requests in flight gets no answer; its requests are
  cancelled, but a message the client has accepted is delivered all the same (the client
  keeps it in its outbox).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
)

from mixclient.address import AddressError
from mixclient.client import Client
from mixclient.client_errors import (
    ClientError,
    MessageTooLargeError,
    NoReplySurbsError,
    SendFailedError,
)
from mixclient.ws_access import ApiToken, handshake_refusal
from mixclient.ws_protocol import (
    MAX_REQUEST_BYTES,
    Request,
    RequestError,
    encode_event,
    error_event,
    parse_request,
    received_event,
)

log = logging.getLogger(__name__)


@dataclass
class _App:
    connection: WebSocketConnection
    scope: trio.CancelScope
    """Cancelled to drop the app: its handler returns and the library closes the socket."""
    binary: bool = False
    """Whether its last request was msgpack: events go to it in the same form."""
    in_flight: int = 0
    send_lock: trio.Lock = field(default_factory=trio.Lock)


class _SlotStream(trio.abc.Stream):
    """A TCP stream that gives its slot back when it is closed."""

    def __init__(self, stream: trio.SocketStream, slots: trio.Semaphore) -> None:
        self._stream = stream
        self._slots: trio.Semaphore | None = slots

    def __repr__(self) -> str:
        return "_SlotStream(...)"  # never the peer's address

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        if self._slots is not None:
            self._slots.release()
            self._slots = None
        await self._stream.aclose()


class _CappedListener(trio.abc.Listener[_SlotStream]):
    """A TCP listener that accepts only while fewer than its semaphore's count of the streams
    it gave out are open; the rest wait in the kernel's backlog."""

    def __init__(self, listener: trio.SocketListener, slots: trio.Semaphore) -> None:
        self._listener = listener
        self._slots = slots

    async def accept(self) -> _SlotStream:
        await self._slots.acquire()
        try:
            stream = await self._listener.accept()
        except BaseException:
            self._slots.release()
            raise
        return _SlotStream(stream, self._slots)

    async def aclose(self) -> None:
        await self._listener.aclose()


class ClientWebSocketServer:
    def __init__(
        self,
        client: Client,
        token: ApiToken,
        *,
        allowed_origins: frozenset[str] = frozenset(),
        max_connections: int = 16,
        max_streams: int = 32,
        max_in_flight: int = 64,
        transport_cap: int = 4 * MAX_REQUEST_BYTES,
        handshake_timeout: float = 10.0,
        send_timeout: float = 30.0,
    ) -> None:
        if not 1 <= max_connections <= max_streams or max_in_flight < 1:
            raise ValueError("need 1 <= max_connections <= max_streams and max_in_flight >= 1")
        self.client = client
        self.token = token
        self.allowed_origins = allowed_origins
        self.refused = 0
        """Handshakes refused for want of a token or for their origin."""
        self.max_connections = max_connections
        self.max_streams = max_streams
        self.max_in_flight = max_in_flight
        self.transport_cap = transport_cap
        self.handshake_timeout = handshake_timeout
        self.send_timeout = send_timeout
        self._apps: list[_App] = []
        self._app_connected = trio.Event()
        self._forwarding: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"ClientWebSocketServer(apps={len(self._apps)})"

    async def serve(
        self,
        listeners: Sequence[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on `listeners` (from `trio.open_tcp_listeners`, on 127.0.0.1 unless whoever
        can reach the port may use this client) until cancelled; they are closed after."""
        slots = trio.Semaphore(self.max_streams)
        server = WebSocketServer(
            self._handle,
            # trio-websocket takes any trio Listener; its annotation names only its own.
            cast(Any, [_CappedListener(listener, slots) for listener in listeners]),
            max_message_size=self.transport_cap,
            connect_timeout=self.handshake_timeout,
            disconnect_timeout=self.handshake_timeout,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_received)
                await nursery.start(server.run)
                task_status.started()
        finally:
            for listener in listeners:
                await listener.aclose()

    async def _handle(self, request: WebSocketRequest) -> None:
        # Whatever leaves this handler stops the whole server: an app gone during the
        # handshake (accept and reject send) must not.
        try:
            refusal = handshake_refusal(
                self.token, self.allowed_origins, request.path, request.headers
            )
            if refusal is not None:
                self.refused += 1
                log.info("an app was refused: %s", refusal.reason)
                await request.reject(refusal.status, body=refusal.reason.encode())
                return
            if len(self._apps) >= self.max_connections:
                await request.reject(503, body=b"too many connections")
                return
            connection = await request.accept()
        except ConnectionClosed:
            return
        with trio.CancelScope() as scope:
            app = _App(connection, scope)
            self._apps.append(app)
            self._app_connected.set()
            try:
                async with trio.open_nursery() as nursery:
                    while True:
                        try:
                            message = await connection.get_message()
                        except ConnectionClosed:
                            break
                        await self._dispatch(app, message, nursery)
                    nursery.cancel_scope.cancel()
            finally:
                self._apps.remove(app)
                if not self._apps:
                    self._app_connected = trio.Event()
                    if self._forwarding is not None:
                        self._forwarding.cancel()

    async def _dispatch(self, app: _App, message: str | bytes, nursery: trio.Nursery) -> None:
        try:
            request = parse_request(message)
        except RequestError as error:
            await self._emit(app, error_event(error.code, str(error), error.request_id))
            return
        app.binary = request.binary
        if app.in_flight >= self.max_in_flight:
            await self._emit(
                app, error_event("busy", f"at most {self.max_in_flight} requests in flight",
                                 request.id)
            )
            return
        app.in_flight += 1
        nursery.start_soon(self._run, app, request)

    async def _run(self, app: _App, request: Request) -> None:
        try:
            event = await self._perform(request)
        except RequestError as error:
            event = error_event(error.code, str(error), request.id)
        except Exception as error:  # a bug must not take the other apps' daemon down
            log.warning("a %s request failed: internal error %s", request.type,
                        type(error).__name__)
            log.debug("internal error", exc_info=True)
            event = error_event("internal", "the daemon could not carry out the request",
                                request.id)
        finally:
            app.in_flight -= 1
        await self._emit(app, event)

    async def _perform(self, request: Request) -> dict[str, Any]:
        client = self.client
        try:
            if request.type == "self_address":
                return {"type": "self_address", "id": request.id, "address": client.address}
            if request.type == "ack":
                assert request.message_id is not None
                known = await client.ack(request.message_id)
                return {"type": "acked", "id": request.id, "known": known}
            if request.type == "send":
                assert request.to is not None
                await client.send(request.to, request.data)
            elif request.type == "send_anonymous":
                assert request.to is not None
                await client.send_anonymous(
                    request.to, request.data, reply_surbs=request.reply_surbs
                )
            else:
                assert request.conversation is not None
                await client.reply(request.conversation, request.data)
        except AddressError as error:
            raise RequestError("bad_address", str(error)) from None
        except NoReplySurbsError as error:
            raise RequestError("no_reply_surbs", str(error)) from None
        except MessageTooLargeError as error:
            raise RequestError("too_large", str(error)) from None
        except SendFailedError as error:
            raise RequestError("send_failed", str(error)) from None
        except ClientError as error:
            raise RequestError("send_failed", str(error)) from None
        return {"type": "sent", "id": request.id}

    async def _emit(self, app: _App, event: dict[str, Any]) -> bool:
        """Send one event; False if the app did not take it. An app too slow to take it
        within `send_timeout` is disconnected."""
        with trio.move_on_after(self.send_timeout):
            async with app.send_lock:
                try:
                    await app.connection.send_message(encode_event(event, binary=app.binary))
                except ConnectionClosed:
                    return False
                return True
        log.info("an app too slow to take its events was disconnected")
        app.scope.cancel()
        return False

    async def _forward_received(self) -> None:
        """The one consumer of `client.messages()`, running only while an app is connected
        (`_handle` cancels it as the last app leaves). Messages stay in the client until an
        app acknowledges them, so each new iteration hands out every one not acknowledged
        yet, and nothing needs holding here across iterations."""
        while True:
            await self._app_connected.wait()
            if not self._apps:  # it came and went before this task ran
                continue
            with trio.CancelScope() as self._forwarding:
                async with aclosing(self.client.messages(auto_ack=False)) as stream:
                    async for message in stream:
                        await self._give(received_event(message))
            self._forwarding = None

    async def _give(self, event: dict[str, Any]) -> None:
        """Broadcast `event` until some app took it (an app that did not is being
        disconnected, and the last one to go cancels this)."""
        while not await self._broadcast(event):
            await trio.sleep(0.05)

    async def _broadcast(self, event: dict[str, Any]) -> bool:
        """Send `event` to every connected app at once; whether any took it."""
        taken: list[bool] = []

        async def emit(app: _App) -> None:
            taken.append(await self._emit(app, event))

        async with trio.open_nursery() as nursery:
            for app in list(self._apps):
                nursery.start_soon(emit, app)
        return any(taken)
