"""`Client`: the Trio driver that joins the sans-I/O client cores to a gateway link.

    async with Client(config) as client:
        await client.send(address, data)
        async for message in client.messages(): ...

What runs while the client is open (one nursery, four tasks):

- consensus: `directory.ConsensusFetcher.run` keeps the verified consensus of the current
  epoch; a new one changes the stream rates, the poll interval and the keys packets use.
- emitter: the three Poisson streams of `cover_streams.CoverSchedule`. A payload slot takes
  the next queued real packet (a fragment, a retransmission or a reply) or sends a drop
  packet; a loop slot sends a loop through the network to the own mailbox; a drop slot a drop
  packet. Each slot is taken from the schedule ahead of its time and its packet built
  (fresh route, fresh SURB-ACK for a fragment) while the emitter waits for it; at the slot
  only ready bytes go out, so what a real packet costs to build never shows on the link. A
  real packet queued after the next slot was taken goes in the payload slot after it.
  Nothing else puts a packet on the link.
- link: connects to the gateway (the second address of its descriptor, its Noise key from
  the consensus), registers, then polls the mailbox on a fixed schedule: one FETCH frame up
  (carrying the acknowledgements of the messages read since) and `fetch_count` frames down,
  every `poll_interval`, whatever arrived; FETCHes are pipelined (sent on time, answers read
  in order by another task, up to `MAX_POLLS_IN_FLIGHT` unanswered). A lost link is reopened
  with jittered backoff; the streams go on meanwhile (real packets whose slot came while the
  link was down wait for the next slot).
- timers: retransmissions (`reliability.AckTracker`) and loops that did not come back.

What arrives: SURB-ACKs (SURB replies on the ids of this client's SURB-ACKs, verified with
their keys), loops (counted back), fragments (kept in the state store before the gateway is
told to delete them, then reassembled), and SURB replies on the reply SURBs this client gave
away with an anonymous message. Whole messages are opened (HPKE), queued in the state store
and handed to `messages()` exactly once.

Durability: a message `send` accepted is in the state store before any packet of it leaves;
a restarted client resends its unacknowledged fragments. A fragment received is in the store
before the gateway may delete it. Once `send` has accepted a message, its delivery goes on
even if the caller stops waiting.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Self

import httpx
import trio

from directory.consensus import Consensus
from directory.counters import Counters
from directory.descriptor import Role
from directory.fetcher import ConsensusFetcher
from mixclient.address import ClientAddress
from mixclient.client_config import ClientConfig
from mixclient.client_errors import (
    ClientError,
    DirectoryUnavailableError,
    GatewayUnavailableError,
    MessageTooLargeError,
    NoReplySurbsError,
    NotConnectedError,
    RegistrationRefusedError,
    SendFailedError,
)
from mixclient.client_state import (
    MESSAGE_ID_SIZE,
    ClientState,
    InboxEntry,
    OutgoingMessage,
    Registration,
    StateFullError,
    StateLimits,
)
from mixclient.cover_streams import CoverSchedule, Emission, StreamKind, StreamRates
from mixclient.e2e import E2EError, E2EKeyPair, open_sealed, seal
from mixclient.envelope import Envelope, EnvelopeError, EnvelopeKind
from mixclient.fragments import MAX_USER_MESSAGE_SIZE, Reassembler, fragment
from mixclient.loop_tracker import LoopTracker
from mixclient.payload_framing import (
    Frame,
    FrameKind,
    FramingError,
    decode_frame,
    decode_user_payload,
    encode_frame,
    encode_user_payload,
)
from mixclient.reliability import AckTracker, MessageFailed, Retransmit
from mixclient.routes import RouteError, forward_route, loop_route, surb_route
from mixnode.gateway_client import (
    FetchedMessage,
    GatewayClient,
    GatewayError,
    GatewayRefusal,
)
from mixnode.gateway_protocol import MAX_ACK, ErrorCode, MessageKind
from mixnode.link import LinkError
from mixnode.link_driver import LinkClosed, backoff_delay
from sphinx_packets import (
    SphinxError,
    SURBKeys,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    new_surb,
)

log = logging.getLogger(__name__)

MESSAGE_INFO = b"trimix message v1"
"""The HPKE `info` of every sealed message."""
MAX_REPLY_SURBS = 100
"""The most reply SURBs one anonymous message may carry (556 bytes each by default)."""
LOOP_MARGIN = 5.0
"""Seconds a loop may take beyond the delays drawn for it before it may count as lost (once
the mailbox is also found drained after that: `mixclient.loop_tracker`)."""
MAX_POLLS_IN_FLIGHT = 8
"""FETCHes sent whose answers have not been read yet, at most (then the schedule waits)."""
_NO_NEW_MAILBOX = {
    ErrorCode.REGISTRY_FULL: "the gateway's registry of mailboxes is full: choose another gateway",
    ErrorCode.REGISTRATION_LIMITED: (
        "the gateway takes no more new mailboxes from this network address for now "
        "(at most a few an hour): try again later, or choose another gateway"
    ),
}
_LINK_ERRORS = (
    GatewayError,
    GatewayUnavailableError,
    LinkClosed,
    LinkError,
    OSError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)
INBOUND_SWEEP_SECONDS = 60.0
"""How often fragments of messages the reassembly gave up are dropped from the store."""
BUILD_AHEAD = 0.1
"""Seconds ahead of their slots that packets are built (at least the next slot's always)."""
STABLE_LINK_SECONDS = 30.0
"""A gateway link that served this long resets the reconnection backoff."""
_MAX_TRACKED_LOOPS = 10_000
_MAX_CONVERSATIONS = 10_000


@dataclass(frozen=True, slots=True)
class ClientStats:
    """What the client put on its link and what came back (counts since it opened)."""

    packets_sent: int
    """Every packet put on the link: real and cover."""
    real_sent: int
    """Packets that carried a fragment, a retransmission or a reply (payload slots only)."""
    cover_sent: dict[str, int]
    """Cover packets by stream: payload (drop in a payload slot), loop, drop."""
    loops_returned: int
    loops_lost: int
    retransmissions: int
    acks_received: int
    link_reconnects: int
    polls: int
    dropped: dict[str, int]
    """What came into the mailbox and was dropped, by reason (only reasons seen): `undecodable`
    (no frame of this client's format), `unopenable` (a whole message that did not decrypt
    or parse: not sealed to this client, or tampered with), `forged_ack` (a SURB-ACK that
    did not verify), `unmatched_reply` (on a SURB this client does not hold, or that did not
    decrypt; late ACKs of finished messages too), `unmatched_loop` (a loop not awaited, or
    back after it was counted lost), `duplicate` (another copy of a fragment of a message
    already delivered: retransmissions make these), and the reassembler's refusals
    (`conflicting_fragment`, `bad_layout`, `too_large`, `table_full`, `buffer_full`).
    Anyone who knows the address can put things in the mailbox; they end here."""
    slots_unroutable: int = 0
    """Stream slots that passed with no packet because no path could be built: this
    client's gateway, or every node of a layer, is missing from the consensus (a warning is
    logged once an epoch). A fragment's try is spent as if sent, and retransmitted later."""


@dataclass(frozen=True, slots=True)
class Emitted:
    """A packet the client put on its link (for `Client(on_emit=...)`)."""

    at: float
    """`trio.current_time()` once the link took it."""
    real: bool
    """A fragment, retransmission or reply; else cover."""
    delay_ms: int = 0
    """For a fragment: the sum of the delays drawn for its hops (0 otherwise)."""
    scheduled: float = 0.0
    """When its stream slot fell due (the packet was built before; `at` adds the send)."""


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A whole message. `messages()` hands each to the application once; with
    `messages(auto_ack=False)` the client keeps it until `ack()` and hands it out again (to
    the next `messages()`, after a restart too) until then."""

    data: bytes = field(repr=False)
    sender: str | None = field(repr=False)
    """The sender's address (a claim: see mixclient.envelope); None when anonymous."""
    conversation: str | None = field(repr=False)
    """Anonymous messages and replies: the token to answer through (`Client.reply`)."""
    kind: EnvelopeKind
    received_at: float
    _client: Client = field(repr=False, compare=False)
    message_id: str = field(default="", repr=False)
    """32 hex digits that name the message for `Client.ack` (the same when it is handed
    out again)."""

    @property
    def anonymous(self) -> bool:
        return self.kind is EnvelopeKind.ANONYMOUS

    async def ack(self) -> bool:
        """The application has the message (`messages(auto_ack=False)`): the client forgets
        it. False if it was acknowledged before."""
        return await self._client.ack(self.message_id)

    async def reply(self, data: bytes) -> None:
        """Answer: through the SURBs of an anonymous message, to the sender's address of a
        direct one, and anonymously again in a conversation this client began."""
        if self.kind is EnvelopeKind.DIRECT:
            assert self.sender is not None
            await self._client.send(self.sender, data)
        else:
            assert self.conversation is not None
            await self._client.reply(self.conversation, data)


@dataclass(frozen=True, slots=True)
class _FragmentJob:
    message_id: bytes = field(repr=False)
    index: int


@dataclass(frozen=True, slots=True, eq=False)
class _ReplyJob:
    first_hop: bytes = field(repr=False)
    packet: bytes = field(repr=False)
    sent: trio.Event | None = None


_Job = _FragmentJob | _ReplyJob


@dataclass(slots=True)
class _Acks:
    """A poll's acknowledgements, stored together: fragments, and messages they complete."""

    fragments: list[tuple[bytes, int]] = field(default_factory=list)
    finished: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    """A slot's packet, built before the slot: `job` is None for cover."""

    packet: bytes = field(repr=False)
    job: _Job | None = None
    stream: str = ""
    keys: SURBKeys | None = field(default=None, repr=False)
    delay_ms: int = 0
    ack_ms: int = 0


@dataclass(eq=False)
class _Outgoing:
    recipient: ClientAddress
    frames: tuple[Frame, ...]
    done: trio.Event = field(default_factory=trio.Event)
    error: ClientError | None = None
    surb_ids: dict[int, list[bytes]] = field(default_factory=dict)


class Client:
    """A trimix client: its address, sending, receiving. Open it with `async with`."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        rng: random.Random | None = None,
        on_emit: Callable[[Emitted], None] | None = None,
        state_limits: StateLimits | None = None,
    ) -> None:
        """`rng` draws routes, delays and stream times (seed it for a reproducible
        schedule); keys and ids always come from the operating system. `on_emit(Emitted)` is
        called for every packet put on the link (for tests, benchmarks and the demo).
        `state_limits` bounds the state store (the defaults of `StateLimits` without it)."""
        self.config = config
        self._state_limits = state_limits
        self._rng = rng if rng is not None else random.SystemRandom()
        # The streams draw from their own generator: with a fixed seed their times are the
        # same whether the user sends or not (routes for real packets draw more numbers).
        self._stream_rng = random.Random(self._rng.getrandbits(64))
        self._on_emit = on_emit
        self._running = False
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "packets_sent", "real_sent", "cover_payload", "cover_loop", "cover_drop",
                "retransmissions", "acks_received", "link_reconnects", "polls",
                "slots_unroutable",
            ),
            0,
        )
        self._unroutable_warned = -1  # the epoch of the last "no path" warning
        self._dropped: Counter[str] = Counter()
        self._reassembly_counters = Counters(
            "trimix_client_reassembly_events", "Client reassembly by outcome."
        )
        self._outgoing: dict[bytes, _Outgoing] = {}
        self._ack_keys: dict[bytes, tuple[SURBKeys, bytes, int]] = {}
        self._loops = LoopTracker(max_tracked=_MAX_TRACKED_LOOPS)
        self._conversations: OrderedDict[bytes, ClientAddress] = OrderedDict()
        self._acks_to_send: list[bytes] = []
        self._inbox_event = trio.Event()
        self._inbound_lock = trio.Lock()
        self._parked: dict[bytes, None] = {}
        """Whole messages the full inbox refused: their fragments wait in the state store
        (the gateway has forgotten them) until an acknowledgement makes room."""
        self._link_up = trio.Event()
        self._gateway: GatewayClient | None = None
        self._consumer = False

    # --- the public API --------------------------------------------------------------------

    @property
    def address(self) -> str:
        """This client's address: paste it to whoever should write to it (known from the
        first opening on; the same across restarts)."""
        return self._own_address().to_string()

    @property
    def stats(self) -> ClientStats:
        c = self._counts
        return ClientStats(
            packets_sent=c["packets_sent"],
            real_sent=c["real_sent"],
            cover_sent={"payload": c["cover_payload"], "loop": c["cover_loop"],
                        "drop": c["cover_drop"]},
            loops_returned=self._loops.returned_count,
            loops_lost=self._loops.lost_count,
            retransmissions=c["retransmissions"],
            acks_received=c["acks_received"],
            link_reconnects=c["link_reconnects"],
            polls=c["polls"],
            dropped=self._dropped_by_reason(),
            slots_unroutable=c["slots_unroutable"],
        )

    def _dropped_by_reason(self) -> dict[str, int]:
        dropped = Counter(self._dropped)
        prefix = "reassembly.refused."
        for name, count in self._reassembly_counters.snapshot().items():
            if name.startswith(prefix) and count:
                reason = name[len(prefix) :]
                dropped["duplicate" if reason == "already_delivered" else reason] += count
        return dict(sorted(dropped.items()))

    @property
    def outbox_size(self) -> int:
        """Messages accepted for sending (also by an earlier run) and not yet acknowledged."""
        return len(self._outgoing)

    async def send(self, address: str | ClientAddress, data: bytes) -> None:
        """Send `data` (1 byte to 1 MiB) to `address`; returns once every fragment is
        acknowledged by the recipient's gateway. `SendFailedError` after the bounded tries."""
        recipient = self._recipient(address)
        payload = _message_data(data)
        await self._send_envelope(
            recipient, Envelope(EnvelopeKind.DIRECT, payload, sender=self._own_address())
        )

    async def send_anonymous(
        self, address: str | ClientAddress, data: bytes, *, reply_surbs: int = 10
    ) -> None:
        """Send `data` without any address of this client; the recipient may answer
        through the `reply_surbs` SURBs it carries (built for the current epoch's keys, so
        usable until the end of the next epoch)."""
        recipient = self._recipient(address)
        payload = _message_data(data)
        if isinstance(reply_surbs, bool) or not isinstance(reply_surbs, int):
            raise TypeError("reply_surbs must be an integer")
        if not 0 <= reply_surbs <= MAX_REPLY_SURBS:
            raise ValueError(f"reply_surbs must be from 0 to {MAX_REPLY_SURBS}")
        conversation = os.urandom(16)
        envelope = await self._anonymous_envelope(recipient, payload, conversation, reply_surbs)
        self._remember_conversation(conversation, recipient)
        await self._send_envelope(recipient, envelope)

    async def reply(self, conversation: str, data: bytes) -> None:
        """Answer in `conversation` (a `ReceivedMessage.conversation`): through the SURBs an
        anonymous sender gave (`NoReplySurbsError` at once when too few are left), or, in a
        conversation this client began anonymously, anonymously again. Returns when the
        reply's packets are on the link (replies on SURBs cannot be acknowledged)."""
        self._require_running()
        try:
            token = bytes.fromhex(conversation)
        except (TypeError, ValueError):
            raise ClientError("a conversation token is a hex string") from None
        if len(token) != 16:
            raise ClientError("a conversation token is 32 hex digits")
        payload = _message_data(data)
        peer = self._conversations.get(token)
        if peer is not None:
            envelope = await self._anonymous_envelope(peer, payload, token, 10)
            await self._send_envelope(peer, envelope)
            return
        await self._reply_on_surbs(token, payload)

    def reply_surbs_left(self, conversation: str) -> int:
        """Unused reply SURBs of `conversation` (some may have expired)."""
        self._require_running()
        return self._state.count_reply_surbs(bytes.fromhex(conversation))

    async def messages(self, *, auto_ack: bool = True) -> AsyncIterator[ReceivedMessage]:
        """Whole messages as they arrive, oldest first. One consumer at a time.

        With `auto_ack` (the default) each message leaves the client as it is yielded: it is
        handed out once, across restarts too, and lost if the application crashes before it
        keeps it. With `auto_ack=False` a message stays in the client until `ack()` (or
        `Client.ack`): this iteration yields it once, and the next `messages()` (after a
        restart too) yields every message not acknowledged yet again, so an application that
        stores a message before acknowledging it loses none (it may see one twice, with the
        same `message_id`)."""
        self._require_running()
        if self._consumer:
            raise ClientError("messages() already has a consumer")
        self._consumer = True
        try:
            last: InboxEntry | None = None
            while True:
                event = self._inbox_event
                entry = await trio.to_thread.run_sync(self._state.next_inbox, last)
                if entry is None:
                    await event.wait()
                    continue
                if auto_ack:
                    await self._deliver(entry.message_id)
                else:
                    last = entry
                try:
                    envelope = Envelope.from_bytes(entry.envelope, self.config.geometry.surb_size)
                except EnvelopeError:  # checked when queued: a damaged state store
                    log.warning("a queued message could not be read; skipped")
                    if not auto_ack:
                        await self._deliver(entry.message_id)
                    continue
                yield self._received(envelope, entry.message_id)
        finally:
            self._consumer = False

    async def ack(self, message_id: str) -> bool:
        """The application has message `message_id` (its `ReceivedMessage.message_id`):
        the client forgets it. False if no message of that id is waiting (acknowledged
        before, or never received); `ValueError` for a malformed id."""
        self._require_running()
        try:
            raw = bytes.fromhex(message_id) if isinstance(message_id, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != MESSAGE_ID_SIZE:
            raise ValueError(f"a message id is {2 * MESSAGE_ID_SIZE} hex digits")
        return await self._deliver(raw)

    async def _deliver(self, message_id: bytes) -> bool:
        """Message `message_id` leaves the inbox; whether it was there."""
        delivered = await trio.to_thread.run_sync(self._state.deliver_inbox, message_id)
        if delivered and self._parked:
            await self._unpark()
        return delivered

    # --- opening and closing ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._running:
            raise ClientError("this client is already open")
        self._state = await trio.to_thread.run_sync(
            ClientState, self.config.state_dir, self._state_limits
        )
        self._http = httpx.AsyncClient(timeout=self.config.link_timeout)
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        try:
            await self._start(self._nursery)
        except BaseException as error:
            self._nursery.cancel_scope.cancel()
            if not await self._close(type(error), error, error.__traceback__):
                raise
        self._running = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        self._running = False
        self._nursery.cancel_scope.cancel()
        return await self._close(exc_type, exc, tb)

    async def _close(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        """Stop the tasks and release everything; True if `exc` is to be suppressed."""
        try:
            with trio.CancelScope(shield=True):
                await self._drop_link()
                await self._http.aclose()
            try:
                return bool(await self._nursery_manager.__aexit__(exc_type, exc, tb))  # type: ignore[arg-type]
            except BaseExceptionGroup as group:
                # The body's own exception comes back wrapped: let it propagate as it was.
                if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                    return False
                raise
        finally:
            for outgoing in self._outgoing.values():
                if not outgoing.done.is_set():
                    outgoing.error = NotConnectedError("the client closed before it was sent")
                    outgoing.done.set()
            self._state.close()

    async def _start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        config = self.config
        state = self._state
        link_private = await trio.to_thread.run_sync(
            state.secret, "link_key", lambda: os.urandom(32)
        )
        e2e_raw = await trio.to_thread.run_sync(
            state.secret, "e2e_key", lambda: E2EKeyPair.generate(config.suite).private_bytes()
        )
        self._link_private = link_private
        self._e2e = E2EKeyPair.from_private_bytes(e2e_raw)
        fetcher = ConsensusFetcher(
            config.authorities,
            config.geometry,
            config.clock,
            cache_dir=config.state_dir / "consensus",
            rng=random.Random(),
            threshold=config.threshold,
            http_client=self._http,
        )
        try:
            with trio.fail_after(config.startup_timeout):
                self._consensus: Consensus = await nursery.start(
                    lambda task_status: fetcher.run(
                        on_consensus=self._on_consensus, task_status=task_status
                    )
                )
        except trio.TooSlowError:
            last = fetcher.last_failure
            raise DirectoryUnavailableError(
                f"no verified consensus within {config.startup_timeout:g} s: are the "
                "authorities reachable, and do they agree?"
                + ("" if last is None else f" (last answer: {last})")
            ) from None
        registration = await trio.to_thread.run_sync(state.registration)
        gateway_id = self._choose_gateway(registration)
        self._gateway_id = gateway_id
        self._mailbox_id = registration.mailbox_id if registration is not None else None
        try:
            with trio.fail_after(config.startup_timeout):
                while self._gateway is None:  # the first link, before the address is known
                    try:
                        await self._open_link()
                    except RegistrationRefusedError:
                        raise  # asking again at once would not change the answer
                    except _LINK_ERRORS as error:
                        log.info("gateway not reachable yet (%s); retrying", type(error).__name__)
                        await trio.sleep(1.0)
        except trio.TooSlowError:
            raise GatewayUnavailableError(
                f"the gateway did not take a link within {config.startup_timeout:g} s"
            ) from None
        now = trio.current_time()
        parameters = self._consensus.parameters
        self._schedule: CoverSchedule[_Job] = CoverSchedule(
            StreamRates.from_parameters(parameters),
            rng=self._stream_rng,
            now=now,
            queue_capacity=1 << 20,
        )
        self._poll_interval = config.poll_interval(parameters.lambda_p, parameters.lambda_l)
        self._tracker = AckTracker(config.retry, max_messages=1 << 16, max_fragments=1 << 22)
        self._reassembler = Reassembler(config.geometry, counters=self._reassembly_counters)
        self._pending = trio.Semaphore(config.max_pending_messages)
        await self._restore()
        nursery.start_soon(self._emit_forever)
        nursery.start_soon(self._link_forever)
        nursery.start_soon(self._timers_forever)

    def _choose_gateway(self, registration: Registration | None) -> bytes:
        wanted = self.config.gateway
        if registration is not None:
            if wanted is not None and wanted != registration.gateway_id:
                raise ClientError(
                    "this state directory is registered at another gateway than the "
                    "configured one: use a fresh state directory to move"
                )
            return registration.gateway_id
        if wanted is not None:
            return wanted
        gateways = self._consensus.gateways
        if not gateways:
            raise GatewayUnavailableError("the consensus lists no gateway")
        return random.SystemRandom().choice(gateways)

    async def _restore(self) -> None:
        """Resume the outbox and the reassembly a previous run left."""
        geometry = self.config.geometry
        for message in await trio.to_thread.run_sync(self._state.pending_outgoing):
            try:
                recipient = ClientAddress.parse(message.recipient)
            except ValueError:
                await trio.to_thread.run_sync(self._state.finish_outgoing, message.message_id)
                continue
            frames = fragment(message.message_id, FrameKind.DATA, message.body, geometry)
            self._track(message.message_id, recipient, frames, message.acked)
        recent = await trio.to_thread.run_sync(
            self._state.recent_delivered, self._reassembler.max_delivered_ids
        )
        for message_id in recent:
            self._reassembler.mark_delivered(message_id)
        stored = await trio.to_thread.run_sync(self._state.inbound_frames)
        await self._reassemble_stored(stored, self._reassembler)

    async def _reassemble_stored(self, stored: list[bytes], reassembler: Reassembler) -> None:
        """Feed fragments kept in the state store (a marker byte, 1 for a reply's, then the
        frame) to `reassembler`, and complete the messages they make whole."""
        for item in stored:
            try:
                frame = decode_frame(self.config.geometry, item[1:])
            except FramingError:
                continue
            whole = reassembler.add(frame, trio.current_time())
            if whole is not None:
                await self._complete(frame.message_id, whole, via_surb=item[0] == 1)

    async def _unpark(self) -> None:
        """The inbox has room again: complete the messages it refused, oldest first (each
        goes back to `_parked` if the inbox is full again). Shielded, as `_take` is: a
        message taken off `_parked` is completed before anything else can happen."""
        with trio.CancelScope(shield=True):
            await self._unpark_shielded()

    async def _unpark_shielded(self) -> None:
        async with self._inbound_lock:
            for message_id in list(self._parked):
                self._parked.pop(message_id, None)
                stored = await trio.to_thread.run_sync(self._state.inbound_frames, message_id)
                await self._reassemble_stored(stored, Reassembler(self.config.geometry))
                if message_id in self._parked:
                    break

    # --- consensus and link ----------------------------------------------------------------

    async def _on_consensus(self, consensus: Consensus) -> None:
        self._consensus = consensus
        schedule = getattr(self, "_schedule", None)
        if schedule is not None:
            parameters = consensus.parameters
            schedule.set_rates(StreamRates.from_parameters(parameters), trio.current_time())
            self._poll_interval = self.config.poll_interval(
                parameters.lambda_p, parameters.lambda_l
            )
            # Reply SURBs built two epochs ago can no longer be carried: no node has the keys.
            await trio.to_thread.run_sync(
                self._state.forget_surb_keys_before, consensus.epoch - 2
            )

    async def _open_link(self) -> None:
        try:
            descriptor = self._consensus.descriptor(self._gateway_id)
        except KeyError:
            raise GatewayUnavailableError("the gateway is not in the consensus") from None
        if descriptor.role is not Role.GATEWAY or len(descriptor.addresses) < 2:
            raise GatewayUnavailableError("the gateway's descriptor lists no client address")
        address = descriptor.addresses[1]
        gateway = await GatewayClient.connect(
            address.host,
            address.port,
            self._link_private,
            descriptor.link_key,
            self.config.geometry.packet_size,
            timeout=self.config.link_timeout,
        )
        try:
            mailbox_id = await gateway.register()
        except BaseException as error:
            with trio.CancelScope(shield=True):
                await gateway.aclose()
            if isinstance(error, GatewayRefusal) and error.code in _NO_NEW_MAILBOX:
                raise RegistrationRefusedError(_NO_NEW_MAILBOX[error.code]) from None
            raise
        if mailbox_id != self._mailbox_id:
            if self._mailbox_id is not None:
                log.warning("the gateway gave this client a new mailbox: its address changed")
            await trio.to_thread.run_sync(
                self._state.set_registration, Registration(self._gateway_id, mailbox_id)
            )
            self._mailbox_id = mailbox_id
        self._gateway = gateway
        self._link_up.set()

    async def _link_forever(self) -> None:
        """Keep a link to the gateway. After a failure, wait a jittered backoff that doubles
        with each failure (0.25-0.5 s first, at most 30 s), and starts again from the first
        only after a link that served `STABLE_LINK_SECONDS`: a gateway that takes the link
        and then fails it at once (broken, or hostile) is not called in a loop."""
        attempt = 0
        while True:
            opened_at: float | None = None
            try:
                if self._gateway is None:
                    await self._open_link()
                    self._counts["link_reconnects"] += 1
                    log.info("gateway link reopened")
                opened_at = trio.current_time()
                await self._poll_forever(self._gateway)
            except _LINK_ERRORS as error:
                log.info("gateway link lost (%s)", type(error).__name__)
            await self._drop_link()
            served = opened_at is not None and (
                trio.current_time() - opened_at >= STABLE_LINK_SECONDS
            )
            attempt = 1 if served else attempt + 1
            await trio.sleep(backoff_delay(attempt, initial=0.5, maximum=30.0, rng=self._rng))

    async def _drop_link(self) -> None:
        gateway, self._gateway = self._gateway, None
        self._link_up = trio.Event()
        if gateway is not None:
            with trio.CancelScope(shield=True):
                await gateway.aclose()

    async def _poll_forever(self, gateway: GatewayClient | None) -> None:
        """Poll on the fixed schedule with FETCHes pipelined: each is sent when its time
        comes, whether or not the answers to earlier ones have been read (up to
        `MAX_POLLS_IN_FLIGHT`), so a slow gateway or a slow answer neither thins the polls
        nor shifts them on the link. Raises what ends the link."""
        assert gateway is not None
        failures: list[BaseException] = []
        sent, outstanding = trio.open_memory_channel[float](MAX_POLLS_IN_FLIGHT)

        async def guarded(run: Callable[[], Awaitable[None]]) -> None:
            try:
                await run()
            except _LINK_ERRORS as error:
                failures.append(error)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guarded, partial(self._send_polls, gateway, sent))
            nursery.start_soon(guarded, partial(self._read_polls, gateway, outstanding))
        if failures:
            raise failures[0]

    async def _send_polls(
        self, gateway: GatewayClient, sent: trio.MemorySendChannel[float]
    ) -> None:
        next_poll = trio.current_time()
        while True:
            acks = self._acks_to_send[:MAX_ACK]
            del self._acks_to_send[: len(acks)]
            await sent.send(trio.current_time())  # waits while too many are in flight
            await gateway.send_fetch(self.config.fetch_count, ack=acks)
            next_poll = max(next_poll + self._poll_interval, trio.current_time())
            await trio.sleep_until(next_poll)

    async def _read_polls(
        self, gateway: GatewayClient, outstanding: trio.MemoryReceiveChannel[float]
    ) -> None:
        async for sent_at in outstanding:
            # An answer is due within the link timeout of its FETCH, or of the moment this
            # reader came to it (it may have been busy storing the previous answer).
            deadline = max(sent_at, trio.current_time()) + gateway.timeout
            fetched = await gateway.receive_fetch(self.config.fetch_count, deadline=deadline)
            self._counts["polls"] += 1
            self._acks_to_send.extend(await self._take(fetched))
            if len(fetched) < self.config.fetch_count:  # fillers: nothing more was waiting
                self._loops.drained(sent_at)

    # --- what arrives ----------------------------------------------------------------------

    async def _take(self, fetched: list[FetchedMessage]) -> list[bytes]:
        """Handle one poll's messages; the gateway ids that may now be deleted.

        Shielded from cancellation (the link's end cancels the poll reader): the reassembler
        and the ACK tracker change in memory step by step with the state store, so a poll
        left half taken could mark a message delivered, or a fragment acknowledged, that the
        state store never recorded. The gateway's copy, handed out again, would then be
        acknowledged as a duplicate and the message lost (or a `send` never return). What
        runs here is local work with an end: SQLite in worker threads, HPKE, reassembly."""
        with trio.CancelScope(shield=True):
            return await self._take_whole(fetched)

    async def _take_whole(self, fetched: list[FetchedMessage]) -> list[bytes]:
        geometry = self.config.geometry
        done: list[bytes] = []
        keep: list[tuple[bytes, Frame, bool, bytes]] = []  # (gateway id, frame, via SURB, stored)
        acks = _Acks()
        for item in fetched:
            delivery = item.message
            if delivery.kind is MessageKind.SURB_REPLY:
                acked = self._ack_keys.get(delivery.surb_id)
                if acked is not None:
                    self._on_ack(delivery.surb_id, delivery.payload, acked, acks)
                    done.append(item.message_id)
                    continue
                frame = await self._open_reply(delivery.surb_id, delivery.payload)
                if frame is None:
                    self._dropped["unmatched_reply"] += 1  # a late ACK, or junk
                    done.append(item.message_id)
                    continue
                if self._reassembler.is_delivered(frame.message_id):
                    self._dropped["duplicate"] += 1  # a copy of a fragment of a whole message
                    done.append(item.message_id)
                    continue
                stored = b"\x01" + encode_frame(geometry, frame)
                keep.append((item.message_id, frame, True, stored))
                continue
            try:
                frame = decode_frame(geometry, delivery.payload)
            except FramingError:
                self._dropped["undecodable"] += 1
                done.append(item.message_id)
                continue
            if frame.kind is FrameKind.LOOP:
                if not self._loops.returned(frame.message_id):
                    self._dropped["unmatched_loop"] += 1
            elif frame.kind is FrameKind.DATA:
                if not self._reassembler.is_delivered(frame.message_id):
                    keep.append((item.message_id, frame, False, b"\x00" + delivery.payload))
                    continue
                self._dropped["duplicate"] += 1
            done.append(item.message_id)
        if acks.fragments:
            await self._record_acks(acks)
        if not keep:
            return done
        async with self._inbound_lock:
            return await self._keep(keep, done)

    async def _keep(
        self, keep: list[tuple[bytes, Frame, bool, bytes]], done: list[bytes]
    ) -> list[bytes]:
        """Store received fragments, then reassemble them; the gateway ids to delete."""
        try:
            await trio.to_thread.run_sync(
                self._state.add_inbound,
                [(f.message_id, f.fragment_index, stored) for _, f, _, stored in keep],
            )
        except StateFullError:
            log.warning("received fragments are past their bound: left at the gateway")
            return done
        now = trio.current_time()
        for gateway_id, frame, via_surb, _ in keep:
            done.append(gateway_id)
            whole = self._reassembler.add(frame, now)
            if whole is not None:
                await self._complete(frame.message_id, whole, via_surb=via_surb)
        return done

    async def _open_reply(self, surb_id: bytes, payload: bytes) -> Frame | None:
        """The frame a reply on one of this client's reply SURBs holds, re-keyed so that
        it reassembles apart from forward fragments; None if it is not one."""
        raw = await trio.to_thread.run_sync(self._state.surb_keys, surb_id)
        if raw is None:
            return None
        try:
            keys = SURBKeys.from_bytes(raw)
            user_payload = decrypt_surb_payload(self.config.geometry, keys, surb_id, payload)
            _, frame = decode_user_payload(self.config.geometry, user_payload)
        except (SphinxError, FramingError, ValueError):
            return None
        if frame.kind is not FrameKind.DATA:
            return None
        return replace(frame, message_id=_reply_key(frame.message_id))

    async def _complete(self, message_id: bytes, body: bytes, *, via_surb: bool) -> None:
        """A message is whole: open it and queue it for the application."""
        opened: bytes | None
        envelope: Envelope | None = None
        try:
            opened = body if via_surb else open_sealed(self._e2e, body, info=MESSAGE_INFO)
            envelope = Envelope.from_bytes(opened, self.config.geometry.surb_size)
            if via_surb != (envelope.kind is EnvelopeKind.REPLY):
                raise EnvelopeError("a reply must come on a SURB, and only a reply")
        except (E2EError, EnvelopeError):
            log.info("a received message could not be opened; dropped")
            self._dropped["unopenable"] += 1
            opened = None
        try:
            queued = await trio.to_thread.run_sync(
                self._state.complete_inbound, message_id, opened
            )
        except StateFullError:
            log.warning("the inbox is full: a received message waits in its fragments")
            self._parked[message_id] = None
            return
        if queued and envelope is not None and envelope.surbs:
            assert envelope.conversation is not None
            try:
                await trio.to_thread.run_sync(
                    self._state.add_reply_surbs,
                    envelope.conversation,
                    envelope.surb_epoch,
                    list(envelope.surbs),
                )
            except StateFullError:
                log.warning("too many reply SURBs held: these were dropped")
        if queued:
            self._inbox_event.set()
            self._inbox_event = trio.Event()

    def _on_ack(
        self, surb_id: bytes, payload: bytes, entry: tuple[SURBKeys, bytes, int], acks: _Acks
    ) -> None:
        """Verify a SURB-ACK and stop its fragment's timer; `acks` collects what to store."""
        keys, message_id, index = entry
        try:
            decrypt_surb_payload(self.config.geometry, keys, surb_id, payload)
        except SphinxError:
            log.info("a forged or damaged SURB-ACK was ignored")
            self._dropped["forged_ack"] += 1
            return
        result = self._tracker.on_ack(surb_id)
        outgoing = self._outgoing.get(message_id)
        if outgoing is not None:
            for known in outgoing.surb_ids.pop(index, []):
                self._ack_keys.pop(known, None)
        if result is None:
            return
        self._counts["acks_received"] += 1
        acks.fragments.append((message_id, index))
        if result.message_done:
            acks.finished.append(message_id)

    async def _record_acks(self, acks: _Acks) -> None:
        """Store a poll's acknowledgements in one transaction; then finished sends return."""
        await trio.to_thread.run_sync(self._state.record_acks, acks.fragments, acks.finished)
        for message_id in acks.finished:
            self._finish(message_id, None)

    def _finish(self, message_id: bytes, error: ClientError | None) -> None:
        outgoing = self._outgoing.pop(message_id, None)
        if outgoing is None:
            return
        for ids in outgoing.surb_ids.values():
            for surb_id in ids:
                self._ack_keys.pop(surb_id, None)
        outgoing.error = error
        outgoing.done.set()

    # --- what leaves -----------------------------------------------------------------------

    async def _send_envelope(self, recipient: ClientAddress, envelope: Envelope) -> None:
        self._require_running()
        geometry = self.config.geometry
        try:
            body = seal(
                recipient.suite,
                recipient.public_key,
                envelope.to_bytes(geometry.surb_size),
                info=MESSAGE_INFO,
            )
        except E2EError as error:
            raise ClientError(f"cannot seal to this address: {error}") from None
        message_id = os.urandom(16)
        frames = fragment(message_id, FrameKind.DATA, body, geometry)
        async with self._pending:
            await trio.to_thread.run_sync(
                self._state.accept_outgoing,
                OutgoingMessage(message_id, recipient.to_string(), body, len(frames), time.time()),
            )
            outgoing = self._track(message_id, recipient, frames, frozenset())
            await outgoing.done.wait()
        if outgoing.error is not None:
            raise outgoing.error

    def _track(
        self,
        message_id: bytes,
        recipient: ClientAddress,
        frames: tuple[Frame, ...],
        acked: frozenset[int],
    ) -> _Outgoing:
        outgoing = _Outgoing(recipient, frames)
        self._outgoing[message_id] = outgoing
        self._tracker.add_message(message_id, len(frames), acked=acked)
        for index in range(len(frames)):
            if index not in acked:
                self._schedule.queue.put(_FragmentJob(message_id, index))
        return outgoing

    async def _anonymous_envelope(
        self, recipient: ClientAddress, data: bytes, conversation: bytes, reply_surbs: int
    ) -> Envelope:
        consensus = self._consensus
        surbs: list[bytes] = []
        keys: list[tuple[bytes, int, bytes]] = []
        try:
            for _ in range(reply_surbs):
                route = surb_route(
                    consensus,
                    self._gateway_id,
                    self._own_mailbox(),
                    self._rng,
                    first_hop_id=recipient.gateway_id,
                )
                surb, surb_keys = new_surb(self.config.geometry, route.hops)
                surbs.append(surb.to_bytes())
                keys.append((surb_keys.surb_id, consensus.epoch, surb_keys.to_bytes()))
        except RouteError as error:
            raise ClientError(f"cannot build reply SURBs: {error}") from None
        if keys:
            await trio.to_thread.run_sync(self._state.add_surb_keys, keys)
        return Envelope(
            EnvelopeKind.ANONYMOUS,
            data,
            conversation=conversation,
            surb_epoch=consensus.epoch,
            surbs=tuple(surbs),
        )

    async def _reply_on_surbs(self, conversation: bytes, data: bytes) -> None:
        geometry = self.config.geometry
        body = Envelope(EnvelopeKind.REPLY, data, conversation=conversation).to_bytes(
            geometry.surb_size
        )
        frames = fragment(os.urandom(16), FrameKind.DATA, body, geometry)
        left = await trio.to_thread.run_sync(self._state.count_reply_surbs, conversation)
        if left < len(frames):
            raise NoReplySurbsError(
                f"the reply needs {len(frames)} SURBs and {left} are left in this conversation"
            )
        jobs: list[_ReplyJob] = []
        min_epoch = self._consensus.epoch - 1
        for frame in frames:
            surb = await trio.to_thread.run_sync(
                lambda: self._state.take_reply_surb(conversation, min_epoch=min_epoch)
            )
            if surb is None:
                raise NoReplySurbsError("the conversation's SURBs have expired")
            try:
                first_hop, packet = create_surb_reply(
                    geometry, surb, encode_user_payload(geometry, frame)
                )
            except SphinxError:
                raise ClientError("a reply SURB is malformed") from None
            if first_hop != self._gateway_id:
                raise ClientError("the reply SURBs lead through another gateway than this one")
            jobs.append(_ReplyJob(first_hop, packet))
        sent = trio.Event()
        jobs[-1] = _ReplyJob(jobs[-1].first_hop, jobs[-1].packet, sent)
        for job in jobs:
            self._schedule.queue.put(job, urgent=True)
        await sent.wait()

    async def _emit_forever(self) -> None:
        """Send each slot's packet at the slot's time, built before it.

        Slots are taken from the schedule ahead of their time: every slot due within
        `BUILD_AHEAD` seconds, and at least the next one. A packet is built only while the
        next slot is further away than a few builds take, so that a build never runs into a
        slot: the link shows the slot times, not what a real or a cover packet cost to build.
        """
        ready: deque[tuple[Emission[_Job], _Prepared | None]] = deque()  # None: no path
        build_seconds = 0.001  # running mean of the time one build takes
        while True:
            now = trio.current_time()
            if ready and ready[0][0].at <= now:
                emission, prepared = ready.popleft()
                if prepared is not None:
                    await self._send_prepared(prepared, emission.at)
                continue
            room = ready[0][0].at - now if ready else math.inf
            horizon = ready[-1][0].at - now if ready else -math.inf
            if room > 4 * build_seconds and (not ready or horizon < BUILD_AHEAD):
                emission = self._schedule.next_emission(now)
                if emission is not None:
                    started = time.perf_counter()
                    ready.append((emission, self._prepare(emission)))
                    build_seconds += 0.1 * (time.perf_counter() - started - build_seconds)
                    await trio.lowlevel.checkpoint()
                    continue
            if ready:
                await trio.sleep_until(ready[0][0].at)
            else:  # every stream is off: look again when the rates may have changed
                await trio.sleep(1.0)

    def _prepare(self, emission: Emission[_Job]) -> _Prepared | None:
        """The packet for a slot (real if it took a job and the job still needs sending);
        None, the slot passing empty, if no path can be built in this consensus."""
        job = emission.packet
        if isinstance(job, _ReplyJob):
            return _Prepared(job.packet, job=job)
        if isinstance(job, _FragmentJob) and self._tracker.is_pending(job.message_id, job.index):
            built = self._fragment_packet(job)
            if built is not None:
                packet, keys, forward_ms, ack_ms = built
                return _Prepared(packet, job=job, keys=keys, delay_ms=forward_ms, ack_ms=ack_ms)
        # A cover slot (or a real slot whose fragment was acknowledged or cannot be routed).
        try:
            if emission.kind is StreamKind.LOOP:
                return _Prepared(self._loop_packet(emission.at), stream="loop")
            return _Prepared(self._drop_packet(), stream=emission.kind.value)
        except RouteError:
            self._counts["slots_unroutable"] += 1
            epoch = self._consensus.epoch
            if epoch != self._unroutable_warned:
                self._unroutable_warned = epoch
                log.warning(
                    "no path through the network: this client's gateway or a whole layer is "
                    "missing from the consensus; nothing is sent until it is back"
                )
            return None

    async def _send_prepared(self, prepared: _Prepared, due: float) -> None:
        job = prepared.job
        sent = await self._put_on_link(
            prepared.packet, real=job is not None, stream=prepared.stream,
            delay_ms=prepared.delay_ms, scheduled=due,
        )
        if job is None:
            return
        if not sent:
            self._schedule.queue.put(job, urgent=True)  # the next payload slot rebuilds it
            return
        if isinstance(job, _ReplyJob):
            if job.sent is not None:
                job.sent.set()
            return
        keys = prepared.keys
        assert keys is not None
        tracked = self._tracker.sent(
            job.message_id, job.index, keys.surb_id, trio.current_time(),
            forward_delay_ms=prepared.delay_ms, ack_delay_ms=prepared.ack_ms,
        )
        outgoing = self._outgoing.get(job.message_id)
        if tracked and outgoing is not None:
            self._ack_keys[keys.surb_id] = (keys, job.message_id, job.index)
            outgoing.surb_ids.setdefault(job.index, []).append(keys.surb_id)

    def _fragment_packet(self, job: _FragmentJob) -> tuple[bytes, SURBKeys, int, int] | None:
        outgoing = self._outgoing.get(job.message_id)
        if outgoing is None:
            return None
        consensus = self._consensus
        geometry = self.config.geometry
        recipient = outgoing.recipient
        try:
            route = forward_route(
                consensus, self._gateway_id, recipient.gateway_id, recipient.mailbox_id, self._rng
            )
            ack_route = surb_route(consensus, self._gateway_id, self._own_mailbox(), self._rng)
        except RouteError:
            # The recipient's gateway is not in this consensus: the try is spent, its timer
            # runs, and the message fails after its tries unless the gateway comes back.
            self._tracker.sent(
                job.message_id, job.index, os.urandom(16), trio.current_time(),
                forward_delay_ms=0, ack_delay_ms=0,
            )
            return None
        surb, keys = new_surb(geometry, ack_route.hops)
        payload = encode_user_payload(geometry, outgoing.frames[job.index], surb.to_bytes())
        packet = create_packet(geometry, route.hops, payload)
        return packet, keys, route.delay_ms, ack_route.delay_ms

    def _loop_packet(self, now: float) -> bytes:
        geometry = self.config.geometry
        loop_id = os.urandom(16)
        route = loop_route(self._consensus, self._gateway_id, self._own_mailbox(), self._rng)
        frame = Frame(FrameKind.LOOP, loop_id, 0, 1, 0, b"")
        self._loops.sent(loop_id, now + route.delay_ms / 1000 + LOOP_MARGIN)
        return create_packet(geometry, route.hops, encode_user_payload(geometry, frame))

    def _drop_packet(self) -> bytes:
        """A packet through every layer to a random gateway and a mailbox nobody has."""
        geometry = self.config.geometry
        gateways = self._consensus.gateways
        if not gateways:  # every gateway down for an epoch: this client's own is too
            raise RouteError("the consensus lists no gateway")
        frame = Frame(FrameKind.DROP, os.urandom(16), 0, 1, 0, b"")
        route = forward_route(
            self._consensus, self._gateway_id, self._rng.choice(gateways), os.urandom(32),
            self._rng,
        )
        return create_packet(geometry, route.hops, encode_user_payload(geometry, frame))

    async def _put_on_link(
        self,
        packet: bytes,
        *,
        real: bool,
        stream: str = "",
        delay_ms: int = 0,
        scheduled: float = 0.0,
    ) -> bool:
        gateway = self._gateway
        if gateway is None:
            return False
        try:
            await gateway.send_packet(packet)
        except _LINK_ERRORS:
            return False  # the link task notices and reopens it
        now = trio.current_time()
        self._counts["packets_sent"] += 1
        if real:
            self._counts["real_sent"] += 1
        else:
            self._counts[f"cover_{stream}"] += 1
        if self._on_emit is not None:
            self._on_emit(Emitted(now, real, delay_ms, scheduled))
        return True

    async def _timers_forever(self) -> None:
        last_sweep = trio.current_time()
        while True:
            await trio.sleep(0.1)
            now = trio.current_time()
            if now - last_sweep > INBOUND_SWEEP_SECONDS:
                last_sweep = now
                async with self._inbound_lock:
                    self._reassembler.expire(now)
                    await trio.to_thread.run_sync(
                        self._state.retain_inbound,
                        self._reassembler.partial_ids() | frozenset(self._parked),
                    )
            for action in self._tracker.due(now):
                if isinstance(action, Retransmit):
                    self._counts["retransmissions"] += 1
                    self._schedule.queue.put(
                        _FragmentJob(action.message_id, action.fragment_index), urgent=True
                    )
                elif isinstance(action, MessageFailed):
                    await trio.to_thread.run_sync(
                        self._state.finish_outgoing, action.message_id
                    )
                    self._finish(
                        action.message_id,
                        SendFailedError(
                            f"a fragment went unacknowledged {action.tries} times: "
                            "the message was not delivered"
                        ),
                    )
            self._loops.expire()

    # --- helpers ---------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self._running:
            raise NotConnectedError("the client is not open: use `async with Client(config)`")

    def _own_mailbox(self) -> bytes:
        if self._mailbox_id is None:
            raise NotConnectedError("the client has no mailbox yet")
        return self._mailbox_id

    def _own_address(self) -> ClientAddress:
        if getattr(self, "_mailbox_id", None) is None:
            raise NotConnectedError("the client has no address until it is first opened")
        return ClientAddress(
            self._gateway_id, self._own_mailbox(), self._e2e.suite, self._e2e.public_key
        )

    def _recipient(self, address: str | ClientAddress) -> ClientAddress:
        self._require_running()
        if isinstance(address, ClientAddress):
            return address
        return ClientAddress.parse(address)

    def _remember_conversation(self, conversation: bytes, peer: ClientAddress) -> None:
        self._conversations[conversation] = peer
        while len(self._conversations) > _MAX_CONVERSATIONS:
            self._conversations.popitem(last=False)

    def _received(self, envelope: Envelope, message_id: bytes) -> ReceivedMessage:
        return ReceivedMessage(
            data=envelope.data,
            sender=envelope.sender.to_string() if envelope.sender is not None else None,
            conversation=envelope.conversation.hex() if envelope.conversation else None,
            kind=envelope.kind,
            received_at=trio.current_time(),
            _client=self,
            message_id=message_id.hex(),
        )


def _message_data(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"message data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not 1 <= len(data) <= MAX_USER_MESSAGE_SIZE:
        raise MessageTooLargeError(
            f"a message is 1 to {MAX_USER_MESSAGE_SIZE} bytes, not {len(data)}"
        )
    return data


def _reply_key(message_id: bytes) -> bytes:
    """The reassembly id of a reply's fragments: apart from any forward message's, so that
    no sender can mix fragments into a reply."""
    return hashlib.blake2b(message_id, digest_size=16, person=b"trimix-reply").digest()


__all__ = ["Client", "ClientStats", "Emitted", "ReceivedMessage"]
