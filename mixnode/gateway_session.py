"""One client's link to its gateway (a thin Trio driver around `gateway_protocol`).

SQLite calls (each commit is an fsync) run in a worker thread, never on the event loop.
The Noise handshake proved the client's static key; the mailbox is bound to that key, so a
client can only ever register, read and acknowledge its own. Until it has registered, a
client may do nothing but register. Packets it sends enter the network here (the gateway is
their first hop). A FETCH is answered by exactly the number of frames asked for, messages
first and EMPTY fillers after, so that the link does not show whether mail was waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Protocol

import trio

from mixnode.gateway_protocol import (
    Ack,
    ControlError,
    Empty,
    Error,
    ErrorCode,
    Fetch,
    Message,
    Register,
    Registered,
    decode_request,
    encode_reply,
)
from mixnode.link import Frame, FrameKind
from mixnode.mailbox import MailboxError, MailboxStore, StoredMessage

log = logging.getLogger(__name__)


class ClientLink(Protocol):
    @property
    def peer_static_key(self) -> bytes: ...

    async def receive(self) -> Frame: ...

    async def send_many(self, frames: list[Frame]) -> None: ...


async def serve_client(
    link: ClientLink,
    mailboxes: MailboxStore,
    *,
    on_packet: Callable[[bytes], None],
    count: Callable[[str], None],
    now: Callable[[], float],
) -> None:
    """Serve one client until its link closes; raises what the link raises."""
    owner = link.peer_static_key
    registered = await trio.to_thread.run_sync(mailboxes.mailbox_of, owner) is not None
    while True:
        frame = await link.receive()
        if frame.kind is FrameKind.PACKET:
            if not registered:
                count("packet_unregistered")
                continue
            on_packet(frame.body)
            continue
        if frame.kind is not FrameKind.CONTROL:
            continue
        try:
            request = decode_request(frame.body)
        except ControlError:
            count("malformed")
            await _reply(link, [Error(ErrorCode.MALFORMED)])
            continue
        if isinstance(request, Register):
            try:
                mailbox_id = await trio.to_thread.run_sync(
                    partial(mailboxes.register, owner, now=now())
                )
            except MailboxError:
                count("registry_full")
                await _reply(link, [Error(ErrorCode.REGISTRY_FULL)])
                continue
            registered = True
            count("registered")
            await _reply(link, [Registered(mailbox_id)])
        elif not registered:
            count("not_registered")
            await _reply(link, [Error(ErrorCode.NOT_REGISTERED)])
        elif isinstance(request, Fetch):
            if request.acks:
                count("ack")
            stored = await trio.to_thread.run_sync(
                partial(_ack_then_fetch, mailboxes, owner, request, now())
            )
            replies: list[Message | Empty] = [Message(m.message_id, m.payload) for m in stored]
            replies.extend(Empty() for _ in range(request.count - len(replies)))
            count("fetch")
            await _reply(link, replies)
        elif isinstance(request, Ack):
            await trio.to_thread.run_sync(
                partial(mailboxes.ack, owner, list(request.message_ids), now=now())
            )
            count("ack")


def _ack_then_fetch(
    mailboxes: MailboxStore, owner: bytes, request: Fetch, now: float
) -> list[StoredMessage]:
    """A FETCH in one trip to a worker thread: the acknowledged messages deleted, then the
    next ones read."""
    if request.acks:
        mailboxes.ack(owner, list(request.acks), now=now)
    return mailboxes.fetch(owner, limit=request.count, now=now)


async def _reply(link: ClientLink, replies: list[Registered | Message | Empty | Error]) -> None:
    await link.send_many([Frame(FrameKind.CONTROL, encode_reply(r)) for r in replies])
