"""The client daemon's WebSocket server: a thin Trio driver (trio-websocket) between local
apps and one open `Client`. The protocol is `mixclient.ws_protocol` (docs/CLIENT_API.md).

- It listens on 127.0.0.1 by default: anyone who can connect can send as this client.
- At most `max_connections` apps at once (more are refused with HTTP 503); each may have
  `max_in_flight` requests in flight (more get an error `busy`), each in its own task, so a
  slow send never holds up a `self_address` or another send.
- A WebSocket message over `MAX_REQUEST_BYTES` gets an error `too_large`; one over the
  transport cap (`transport_cap`, larger) closes that connection (code 1009), as the
  WebSocket library does, since it would have to be read into memory first.
- Received messages go to every connected app as `received` events. While no app is
  connected the daemon takes no message from the client: they wait, durably, in its inbox,
  and the first app to connect gets them. (A message is handed over once: an app that
  disconnects while an event is on its way may miss it.)
- Bad input never closes the connection or the daemon; every failure of a request is an
  `error` event with the request's id.
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from mixclient.address import AddressError
from mixclient.client import Client
from mixclient.client_errors import (
    ClientError,
    MessageTooLargeError,
    NoReplySurbsError,
    SendFailedError,
)
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
    binary: bool = False
    """Whether its last request was msgpack: events go to it in the same form."""
    in_flight: int = 0
    send_lock: trio.Lock = field(default_factory=trio.Lock)


class ClientWebSocketServer:
    def __init__(
        self,
        client: Client,
        *,
        max_connections: int = 16,
        max_in_flight: int = 64,
        transport_cap: int = 4 * MAX_REQUEST_BYTES,
        send_timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self.transport_cap = transport_cap
        self.send_timeout = send_timeout
        self._apps: list[_App] = []
        self._app_connected = trio.Event()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; `task_status.started(bound port)`."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward_received)
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    self._handle,
                    host,
                    port,
                    ssl_context=None,
                    max_message_size=self.transport_cap,
                    task_status=task_status,
                )
            )
            task_status.started(server.port)

    async def _handle(self, request: WebSocketRequest) -> None:
        if len(self._apps) >= self.max_connections:
            await request.reject(503, body=b"too many connections")
            return
        connection = await request.accept()
        app = _App(connection)
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
        finally:
            app.in_flight -= 1
        await self._emit(app, event)

    async def _perform(self, request: Request) -> dict[str, Any]:
        client = self.client
        try:
            if request.type == "self_address":
                return {"type": "self_address", "id": request.id, "address": client.address}
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

    async def _emit(self, app: _App, event: dict[str, Any]) -> None:
        """Send one event; an app that is gone or too slow to take it is left to close."""
        with trio.move_on_after(self.send_timeout):
            async with app.send_lock:
                try:
                    await app.connection.send_message(encode_event(event, binary=app.binary))
                except ConnectionClosed:
                    pass

    async def _forward_received(self) -> None:
        """Take messages from the client only while an app is connected; one that comes as
        the last app leaves is kept here for the next one."""
        held: deque[dict[str, Any]] = deque()
        while True:
            await self._app_connected.wait()
            while held and self._apps:
                await self._broadcast(held.popleft())
            async with aclosing(self.client.messages()) as stream:
                async for message in stream:
                    event = received_event(message)
                    if not self._apps:
                        held.append(event)
                        break
                    await self._broadcast(event)
                    if not self._apps:
                        break

    async def _broadcast(self, event: dict[str, Any]) -> None:
        for app in list(self._apps):
            await self._emit(app, event)
