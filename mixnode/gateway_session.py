"""One client's link to its gateway (a thin Trio driver around `gateway_protocol`).

SQLite calls (each commit is an fsync) run in a worker thread, never on the event loop.
The Noise handshake proved the client's static key; the mailbox is bound to that key, so a
client can only ever register, read and acknowledge its own. Until it has registered, a
client may do nothing but register. Packets it sends enter the network here (the gateway is
their first hop). A FETCH is answered by exactly the number of frames asked for, messages
first and EMPTY fillers after, so that the link does not show whether mail was waiting. A
client may send a FETCH before it has read the answer to the previous one: what a link
handed out is leased to it (`Leases`) until acknowledged, so it is not sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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
from mixnode.mailbox import (
    MailboxStorageError,
    MailboxStore,
    StoredMessage,
    TooManyMailboxesError,
)

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
    fetch_wait: Callable[[int], float],
    may_register: Callable[[], bool],
) -> None:
    """Serve one client until its link closes; raises what the link raises. Before it
    answers a FETCH of n frames it waits `fetch_wait(n)` seconds (the link's budget,
    `mixnode.rate_limit`): a link that polls faster than any client gets slower answers.
    A key with no mailbox gets one only if `may_register()` (its address's budget of new
    mailboxes); reopening a mailbox is always allowed. If the mailbox store fails (disk
    full, I/O error), the session ends, counted `store_failed`: the link closes and the client
    connects again later. No message is lost: one leaves its mailbox only in the transaction
    that stores the owner's acknowledgement."""
    try:
        owner = link.peer_static_key
        registered = await trio.to_thread.run_sync(mailboxes.mailbox_of, owner) is not None
        leases = Leases()
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
                if not registered and not may_register():
                    count("registration_limited")
                    await _reply(link, [Error(ErrorCode.REGISTRATION_LIMITED)])
                    continue
                try:
                    mailbox_id = await trio.to_thread.run_sync(
                        partial(mailboxes.register, owner, now=now())
                    )
                except TooManyMailboxesError:
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
                wait = fetch_wait(request.count)
                if wait > 0:
                    count("fetch_paced")
                    await trio.sleep(wait)
                if request.acks:
                    count("ack")
                at = now()
                leases.release(request.acks, at)
                stored = await trio.to_thread.run_sync(
                    partial(_ack_then_fetch, mailboxes, owner, request, at, leases.held())
                )
                leases.take([m.message_id for m in stored], at)
                replies: list[Message | Empty] = [Message(m.message_id, m.payload) for m in stored]
                replies.extend(Empty() for _ in range(request.count - len(replies)))
                count("fetch")
                await _reply(link, replies)
            elif isinstance(request, Ack):
                leases.release(request.message_ids, now())
                await trio.to_thread.run_sync(
                    partial(mailboxes.ack, owner, list(request.message_ids), now=now())
                )
                count("ack")

    except MailboxStorageError:
        count("store_failed")


LEASE_SECONDS = 30.0
"""How long a message handed out on a link is not handed out again on it, unacknowledged."""
MAX_LEASES = 1024


class Leases:
    """The messages this link has handed out and the client has not acknowledged yet, so
    that a FETCH sent before the answer to the previous one was read (a pipelined poll)
    does not fetch them twice. A lease lapses after `LEASE_SECONDS` (the client did not
    keep the message: it is offered again); a new link starts with none."""

    def __init__(self, *, seconds: float = LEASE_SECONDS, limit: int = MAX_LEASES) -> None:
        self._seconds = seconds
        self._limit = limit
        self._until: dict[bytes, float] = {}  # insertion-ordered: oldest first

    def held(self) -> frozenset[bytes]:
        return frozenset(self._until)

    def take(self, message_ids: Sequence[bytes], now: float) -> None:
        for message_id in message_ids:
            self._until.pop(message_id, None)
            self._until[message_id] = now + self._seconds
        while len(self._until) > self._limit:  # the oldest lapse early: offered again
            del self._until[next(iter(self._until))]

    def release(self, message_ids: Sequence[bytes], now: float) -> None:
        for message_id in message_ids:
            self._until.pop(message_id, None)
        while self._until:
            message_id, until = next(iter(self._until.items()))
            if until > now:
                break
            del self._until[message_id]


def _ack_then_fetch(
    mailboxes: MailboxStore, owner: bytes, request: Fetch, now: float, leased: frozenset[bytes]
) -> list[StoredMessage]:
    """A FETCH in one trip to a worker thread: the acknowledged messages deleted, then the
    next ones read, those leased to this link left out."""
    if request.acks:
        mailboxes.ack(owner, list(request.acks), now=now)
    return mailboxes.fetch(owner, limit=request.count, now=now, exclude=leased)


async def _reply(link: ClientLink, replies: list[Registered | Message | Empty | Error]) -> None:
    await link.send_many([Frame(FrameKind.CONTROL, encode_reply(r)) for r in replies])
