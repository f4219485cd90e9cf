"""The client side of a gateway link: register a mailbox, send packets, fetch and acknowledge.

A thin Trio driver over `gateway_protocol` and a `LinkConnection`; the client library
(mixclient) and the testnet's smoke run use it. Every request and every reply is one
fixed-size frame. Each exchange has one deadline for the whole of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from mixnode.gateway_protocol import (
    Ack,
    ControlError,
    Delivery,
    Empty,
    Error,
    ErrorCode,
    Fetch,
    Message,
    Register,
    Registered,
    decode_reply,
    encode_request,
)
from mixnode.link import Frame, FrameKind
from mixnode.link_driver import LinkConnection, open_link


class GatewayError(Exception):
    """The gateway refused a request, answered something malformed, or did not answer."""


class GatewayRefusal(GatewayError):
    """The gateway answered a request with ERROR `code`."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(f"the gateway refused the request ({code.name.lower()})")
        self.code = code


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    message_id: bytes = field(repr=False)
    message: Delivery = field(repr=False)


class GatewayClient:
    """One open link to a gateway's client port."""

    def __init__(self, connection: LinkConnection, *, timeout: float = 10.0) -> None:
        self.connection = connection
        self.timeout = timeout
        self._lock = trio.Lock()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        local_private_key: bytes,
        gateway_link_key: bytes,
        frame_body_size: int,
        *,
        timeout: float = 10.0,
    ) -> GatewayClient:
        connection = await open_link(
            host,
            port,
            local_private_key,
            gateway_link_key,
            frame_body_size,
            handshake_timeout=timeout,
        )
        return cls(connection, timeout=timeout)

    async def aclose(self) -> None:
        await self.connection.aclose()

    async def register(self) -> bytes:
        """Open (or reopen) the mailbox bound to this client's static key; its id."""
        async with self._lock:
            replies = await self._exchange(Register(), 1)
        reply = replies[0]
        if not isinstance(reply, Registered):
            raise _refusal(reply)
        return reply.mailbox_id

    async def send_packet(self, packet: bytes) -> None:
        with trio.fail_after(self.timeout):
            await self.connection.send(Frame(FrameKind.PACKET, packet))

    async def fetch(self, count: int, *, ack: Sequence[bytes] = ()) -> list[FetchedMessage]:
        """Acknowledge `ack` (at most `MAX_ACK` ids), then ask for `count` frames; the
        messages among them (the rest are fillers). One frame up, `count` frames down."""
        async with self._lock:
            replies = await self._exchange(Fetch(count, tuple(ack)), count)
        return _messages(replies)

    async def send_fetch(self, count: int, *, ack: Sequence[bytes] = ()) -> None:
        """The first half of a pipelined `fetch`: the FETCH frame only. Its answer is read
        by `receive_fetch`, in order, by one reader, and nothing else may be asked on this
        link meanwhile (the gateway leases what it hands out, so FETCHes in flight do not
        fetch the same message twice)."""
        request = Frame(FrameKind.CONTROL, encode_request(Fetch(count, tuple(ack))))
        try:
            with trio.fail_after(self.timeout):
                await self.connection.send(request)
        except trio.TooSlowError:
            raise GatewayError("the gateway did not take a request in time") from None

    async def receive_fetch(self, count: int, *, deadline: float) -> list[FetchedMessage]:
        """The second half: the answer to the oldest FETCH not yet answered, by `deadline`
        (`trio.current_time()` based: the FETCH's sending time plus a timeout)."""
        try:
            with trio.fail_at(deadline):
                replies = await self._replies(count)
        except trio.TooSlowError:
            raise GatewayError("the gateway did not answer in time") from None
        except ControlError as error:
            raise GatewayError(f"malformed answer from the gateway: {error}") from None
        return _messages(replies)

    async def ack(self, message_ids: list[bytes]) -> None:
        for start in range(0, len(message_ids), 64):
            chunk = tuple(message_ids[start : start + 64])
            with trio.fail_after(self.timeout):
                await self.connection.send(Frame(FrameKind.CONTROL, encode_request(Ack(chunk))))

    async def _exchange(
        self, request: Register | Fetch, replies: int
    ) -> list[Registered | Message | Empty | Error]:
        try:
            with trio.fail_after(self.timeout):
                await self.connection.send(Frame(FrameKind.CONTROL, encode_request(request)))
                return await self._replies(replies)
        except trio.TooSlowError:
            raise GatewayError("the gateway did not answer in time") from None
        except ControlError as error:
            raise GatewayError(f"malformed answer from the gateway: {error}") from None

    async def _replies(self, replies: int) -> list[Registered | Message | Empty | Error]:
        """The next `replies` control frames, or fewer up to an error."""
        answers: list[Registered | Message | Empty | Error] = []
        while len(answers) < replies:
            frame = await self.connection.receive()
            if frame.kind is not FrameKind.CONTROL:
                continue
            answer = decode_reply(frame.body)
            answers.append(answer)
            if isinstance(answer, Error):
                break
        return answers


def _messages(replies: list[Registered | Message | Empty | Error]) -> list[FetchedMessage]:
    """The messages of a FETCH's answer (fillers dropped); `GatewayError` for a refusal."""
    messages = []
    for reply in replies:
        if isinstance(reply, Message):
            try:
                stored = Delivery.from_bytes(reply.stored)
            except ControlError as error:
                raise GatewayError(f"malformed stored message: {error}") from None
            messages.append(FetchedMessage(reply.message_id, stored))
        elif not isinstance(reply, Empty):
            raise _refusal(reply)
    return messages


def _refusal(reply: object) -> GatewayError:
    """The error for an answer that is not the one asked for: a `GatewayRefusal` with the
    gateway's code for an ERROR."""
    if isinstance(reply, Error):
        return GatewayRefusal(reply.code)
    return GatewayError("unexpected answer from the gateway")
