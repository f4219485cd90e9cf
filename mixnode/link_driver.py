"""The Trio driver of `LinkCore`: connections, the listener, and a node's outgoing links.

- `LinkConnection`: one established link over a Trio stream (`send`, `send_many`, `receive`).
- `open_link` / `initiate_link`: dial (or use a stream) and run the initiator handshake.
- `LinkServer`: accept, cap connections, run the responder handshake under one deadline,
  `authorize` the peer's static key, then hand the connection to a handler.
- `PeerLinks`: a node's outgoing side, one long-lived connection per peer with a bounded
  queue, batching, reconnects with jittered exponential backoff and idle-peer closing.

Node to node, each node dials the peers it sends to and uses incoming connections only to
receive: "one connection per peer pair" holds per direction (A's link to B carries A→B
packets, B's link to A carries B→A), so neither side has to guess which of two simultaneous
dials wins, and a node's outgoing queues never wait on a connection the peer owns.

Outcomes are reported through an injected `count(name)` with the fixed names in
`LINK_OUTCOMES`; nothing here logs a peer's address or key above DEBUG.

Keep-alives: a connection sends a KEEPALIVE frame when it has sent nothing for
`keepalive_interval`, and closes when it has received no frame for `idle_timeout`. Both
happen while some task is waiting in `receive()`, so every connection must have a reader.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Self

import trio

from mixnode.link import (
    KEEPALIVE_FRAME,
    Frame,
    FrameKind,
    FrameReceived,
    LinkCore,
    LinkError,
    LinkEvent,
)
from mixnode.rate_limit import AddressBudgets

log = logging.getLogger(__name__)

LINK_OUTCOMES: tuple[str, ...] = (
    "handshake_ok",  # a handshake completed (either side)
    "handshake_failed",  # bad handshake message (wrong key, other geometry, garbage) or EOF in it
    "handshake_timeout",  # the handshake did not finish within handshake_timeout
    "refused_unauthorized",  # authorize(peer key) returned False
    "refused_capacity",  # over the total or per-address connection cap
    "refused_rate",  # over the address's budget of new connections (before the handshake)
    "frame_error",  # a bad frame after the handshake (AEAD failure, kind, length, padding)
    "idle_timeout",  # no frame received for idle_timeout
    "send_timeout",  # a write did not complete within send_timeout (peer not reading)
    "connect_failed",  # the TCP connection could not be made
    "send_queue_full",  # PeerLinks.try_send: the peer's queue is full
    "peer_unknown",  # PeerLinks: resolve() has no address for the key
    "peer_table_full",  # PeerLinks.try_send: max_peers peers already have links
    "shutting_down",  # PeerLinks.try_send after aclose() began
    "frames_lost",  # one count per queued frame that was never written (link broke, shutdown)
    "frame_unexpected",  # a non-keep-alive frame on an outgoing PeerLinks link, no on_frame
    "handler_error",  # the handler, authorize or on_frame raised: a bug, logged
)
"""Every name `count` is called with, for metrics that pre-create their labels."""

Count = Callable[[str], None]


def _ignore(outcome: str) -> None:
    """The default `count`: discard."""


@dataclass(frozen=True, slots=True)
class LinkTimings:
    """Timers of an established link (seconds)."""

    idle_timeout: float = 60.0
    """Close when no frame (keep-alives included) has arrived for this long."""
    keepalive_interval: float = 15.0
    """Send a KEEPALIVE after sending nothing for this long; must be below idle_timeout."""
    send_timeout: float = 30.0
    """Give up on a write (and the link) that the peer does not take within this long."""

    def __post_init__(self) -> None:
        if not 0 < self.keepalive_interval < self.idle_timeout:
            raise ValueError("need 0 < keepalive_interval < idle_timeout")
        if self.send_timeout <= 0:
            raise ValueError("send_timeout must be positive")


class LinkClosed(Exception):
    """The link is not, or no longer, usable. `reason` is one of: connect_failed,
    handshake_failed, handshake_timeout, eof, broken, frame_error, idle_timeout, send_timeout,
    closed. The message never names the peer."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"link closed: {reason}")
        self.reason = reason


_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class LinkConnection:
    """An established link: frames in, frames out, over one Trio stream.

    `receive()` must be called by one task at a time; `send`/`send_many` may be called from
    several (a lock keeps encryption order and write order the same).
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        core: LinkCore,
        *,
        timings: LinkTimings = LinkTimings(),
        count: Count = _ignore,
        source: str = "",
    ) -> None:
        if not core.established:
            raise ValueError("the link core has not completed its handshake")
        self.source = source
        """The peer's network address as an accepting server saw it ("" otherwise), for
        per-address limits only: never logged, counted or shown in a repr."""
        self._stream = stream
        self._core = core
        self._timings = timings
        self._count = count
        self._pending: deque[Frame] = deque()
        self._send_lock = trio.StrictFIFOLock()
        self._receive_size = 16 * core.wire_frame_size
        self._closed = False
        self._unread: bytes | bytearray | None = b""  # bytes that came with the handshake
        now = trio.current_time()
        self._last_sent = now
        self._last_received = now

    def __repr__(self) -> str:
        return (
            f"LinkConnection(frame_body_size={self._core.frame_body_size}, closed={self._closed})"
        )

    @property
    def peer_static_key(self) -> bytes:
        """The peer's raw X25519 static public key (authenticated by the handshake)."""
        key = self._core.remote_static_key
        assert key is not None
        return key

    @property
    def frame_body_size(self) -> int:
        return self._core.frame_body_size

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, frame: Frame) -> None:
        """Send one frame; `LinkClosed` if the link is down."""
        await self.send_many((frame,))

    async def send_many(self, frames: Sequence[Frame]) -> None:
        """Send several frames in one socket write; `LinkClosed` if the link is down.
        A frame whose body is too large raises ValueError and nothing is sent."""
        async with self._send_lock:
            if self._closed:
                raise LinkClosed("closed")
            data = self._core.send_many(frames)
            await self._write(data)

    async def receive(self) -> Frame:
        """The next PACKET or CONTROL frame (keep-alives are absorbed). Raises `LinkClosed`
        when the link ends: peer closed, idle timeout, a bad frame (counted), or `aclose()`."""
        while True:
            while self._pending:
                frame = self._pending.popleft()
                if frame.kind is not FrameKind.KEEPALIVE:
                    return frame
            await self._fill()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Frame:
        try:
            return await self.receive()
        except LinkClosed:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the link (idempotent)."""
        self._closed = True
        await trio.aclose_forcefully(self._stream)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _write(self, data: bytes) -> None:
        try:
            with trio.fail_after(self._timings.send_timeout):
                await self._stream.send_all(data)
        except trio.TooSlowError:
            await self._fail("send_timeout", counted=True)
        except _STREAM_ERRORS:
            await self._fail("closed" if self._closed else "broken")
        self._last_sent = trio.current_time()

    async def _fill(self) -> None:
        """Read until at least one frame is pending, sending keep-alives while waiting."""
        timings = self._timings
        while True:
            if self._closed:
                raise LinkClosed("closed")
            now = trio.current_time()
            idle_deadline = self._last_received + timings.idle_timeout
            if now >= idle_deadline:
                await self._fail("idle_timeout", counted=True)
            keepalive_at = self._last_sent + timings.keepalive_interval
            if now >= keepalive_at:
                if not self._send_lock.locked():
                    await self.send(KEEPALIVE_FRAME)
                    continue
                keepalive_at = now + timings.keepalive_interval
            data, self._unread = self._unread, None
            if data is None:
                with trio.move_on_at(min(idle_deadline, keepalive_at)):
                    try:
                        data = await self._stream.receive_some(self._receive_size)
                    except _STREAM_ERRORS:
                        await self._fail("closed" if self._closed else "broken")
                if data is None:
                    continue
                if not data:
                    await self._fail("eof")
            try:
                events = self._core.receive_data(data)
            except LinkError:
                await self._fail("frame_error", counted=True)
            if events:
                self._last_received = trio.current_time()
                self._pending.extend(_frames(events))
                return

    async def _fail(self, reason: str, *, counted: bool = False) -> NoReturn:
        if counted:
            self._count(reason)
        await self.aclose()
        raise LinkClosed(reason)


_HANDSHAKE_READ_SIZE = 4096


async def _run_handshake(stream: trio.abc.Stream, core: LinkCore) -> None:
    """Drive `core` through its handshake on `stream`. Raises LinkError for a bad handshake or
    EOF, or a stream error. No deadline: callers set one."""
    first = core.start()
    if first:
        await stream.send_all(first)
    while not core.established:
        data = await stream.receive_some(_HANDSHAKE_READ_SIZE)
        if not data:
            raise LinkError("peer closed the connection during the handshake")
        core.receive_data(data)
        reply = core.data_to_send()
        if reply:
            await stream.send_all(reply)


async def _handshake_under_deadline(
    stream: trio.abc.Stream, core: LinkCore, deadline: float, count: Count
) -> None:
    """Run the handshake until `deadline`; on any failure (or cancellation) close `stream`;
    count the outcome; `LinkClosed` unless it succeeded."""
    outcome = "handshake_timeout"
    try:
        with trio.move_on_at(deadline):
            try:
                await _run_handshake(stream, core)
                outcome = "handshake_ok"
            except (LinkError, *_STREAM_ERRORS):
                outcome = "handshake_failed"
        count(outcome)
    finally:
        if outcome != "handshake_ok":
            await trio.aclose_forcefully(stream)
    if outcome != "handshake_ok":
        raise LinkClosed(outcome)


def _frames(events: Iterable[LinkEvent]) -> list[Frame]:
    return [event.frame for event in events if isinstance(event, FrameReceived)]


async def initiate_link(
    stream: trio.abc.Stream,
    local_private: bytes,
    remote_public: bytes,
    frame_body_size: int,
    *,
    handshake_timeout: float = 10.0,
    timings: LinkTimings = LinkTimings(),
    count: Count = _ignore,
) -> LinkConnection:
    """Run the initiator handshake on an open stream (closed on failure); `LinkClosed` if it
    fails or does not finish within `handshake_timeout`."""
    core = LinkCore.initiator(local_private, remote_public, frame_body_size)
    deadline = trio.current_time() + handshake_timeout
    await _handshake_under_deadline(stream, core, deadline, count)
    return LinkConnection(stream, core, timings=timings, count=count)


async def open_link(
    host: str,
    port: int,
    local_private: bytes,
    remote_public: bytes,
    frame_body_size: int,
    *,
    handshake_timeout: float = 10.0,
    timings: LinkTimings = LinkTimings(),
    count: Count = _ignore,
) -> LinkConnection:
    """Connect over TCP and run the initiator handshake; `handshake_timeout` bounds the whole
    exchange, connecting included. `LinkClosed` (counted) on any failure."""
    LinkCore.initiator(local_private, remote_public, frame_body_size)  # check before dialling
    deadline = trio.current_time() + handshake_timeout
    stream: trio.SocketStream | None = None
    with trio.move_on_at(deadline):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            pass
    if stream is None:
        count("connect_failed")
        raise LinkClosed("connect_failed")
    return await initiate_link(
        stream,
        local_private,
        remote_public,
        frame_body_size,
        handshake_timeout=deadline - trio.current_time(),
        timings=timings,
        count=count,
    )


Handler = Callable[[LinkConnection], Awaitable[None]]


def _log_handler_error(exc: Exception, count: Count) -> None:
    """Count and log a bug in a callback: the type at ERROR, the traceback only at DEBUG
    (its text could hold payload bytes)."""
    count("handler_error")
    log.error("link callback raised %s", type(exc).__name__)
    log.debug("link callback traceback", exc_info=exc)


class LinkServer:
    """Accepts links: caps, responder handshake under one deadline, `authorize`, `handler`.

    The handler owns the connection until it returns (or `LinkClosed` ends it); the server
    then closes it. An exception from the handler or `authorize` is a bug: it is counted
    (`handler_error`) and logged without details at ERROR, and the server goes on.
    """

    def __init__(
        self,
        local_private: bytes,
        frame_body_size: int,
        handler: Handler,
        *,
        authorize: Callable[[bytes], bool],
        count: Count = _ignore,
        handshake_timeout: float = 10.0,
        timings: LinkTimings = LinkTimings(),
        max_connections: int = 1024,
        max_connections_per_address: int = 16,
        new_connections_per_address: AddressBudgets | None = None,
    ) -> None:
        """`new_connections_per_address`: how many connections one address may open (each
        costs a responder handshake); the default admits 64 at once and 8 a second after."""
        if max_connections < 1 or max_connections_per_address < 1:
            raise ValueError("connection caps must be at least 1")
        LinkCore.responder(local_private, frame_body_size)  # validate the arguments now
        self._local_private = local_private
        self._frame_body_size = frame_body_size
        self._handler = handler
        self._authorize = authorize
        self._count = count
        self._handshake_timeout = handshake_timeout
        self._timings = timings
        self._max_connections = max_connections
        self._max_per_address = max_connections_per_address
        self._active = 0
        self._per_address: dict[str, int] = {}
        self._new_connections = new_connections_per_address or AddressBudgets(8.0, 64)

    def __repr__(self) -> str:
        return f"LinkServer(active={self._active}, max_connections={self._max_connections})"

    @property
    def active_connections(self) -> int:
        """Connections being served right now, handshakes included."""
        return self._active

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on host:port (0 = any free port) until cancelled; reports the bound port."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._serve_socket_stream, listeners)

    async def _serve_socket_stream(self, stream: trio.SocketStream) -> None:
        try:
            source = str(stream.socket.getpeername()[0])
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        await self.handle_stream(stream, source)

    async def handle_stream(self, stream: trio.abc.Stream, source: str) -> None:
        """Serve one accepted stream; `source` (the peer's address) keys the per-address cap
        and is never logged or counted."""
        if (
            self._active >= self._max_connections
            or self._per_address.get(source, 0) >= self._max_per_address
        ):
            self._count("refused_capacity")
            await trio.aclose_forcefully(stream)
            return
        if not self._new_connections.admit(source, trio.current_time()):
            self._count("refused_rate")
            await trio.aclose_forcefully(stream)
            return
        self._active += 1
        self._per_address[source] = self._per_address.get(source, 0) + 1
        try:
            await self._serve_link(stream, source)
        finally:
            self._active -= 1
            left = self._per_address[source] - 1
            if left:
                self._per_address[source] = left
            else:
                del self._per_address[source]
            await trio.aclose_forcefully(stream)

    async def _serve_link(self, stream: trio.abc.Stream, source: str) -> None:
        core = LinkCore.responder(self._local_private, self._frame_body_size)
        deadline = trio.current_time() + self._handshake_timeout
        try:
            await _handshake_under_deadline(stream, core, deadline, self._count)
        except LinkClosed:
            return
        connection = LinkConnection(
            stream, core, timings=self._timings, count=self._count, source=source
        )
        try:
            if not self._authorize(connection.peer_static_key):
                self._count("refused_unauthorized")
                return
            await self._handler(connection)
        except LinkClosed:
            pass
        except Exception as exc:  # noqa: BLE001 (a bug in the handler must not stop the server)
            _log_handler_error(exc, self._count)
        finally:
            await connection.aclose()


def backoff_delay(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Jittered exponential backoff: uniform in [d/2, d], d = min(maximum, initial * 2^(attempt-1))."""
    if attempt < 1:
        return 0.0
    base = min(maximum, initial * math.pow(2.0, min(attempt - 1, 62)))
    return rng.uniform(base / 2, base)


Resolve = Callable[[bytes], tuple[str, int] | None]


class _Peer:
    """The outgoing state of one peer: its bounded queue and the task's wake-up event."""

    __slots__ = ("connected", "in_flight", "key", "queue", "wakeup")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.queue: deque[Frame] = deque()
        self.wakeup = trio.Event()
        self.in_flight = 0
        self.connected = False


class PeerLinks:
    """A node's outgoing links: one long-lived connection per peer, made on the first frame.

    `try_send(peer_key, frame)` never blocks: it queues the frame in the peer's bounded queue or
    returns False (queue full, peer unknown, table full, shutting down; counted). Each peer has
    one task that dials `resolve(peer_key)`, writes queued frames in batches of up to
    `max_batch` per socket write, reconnects with jittered exponential backoff, and closes the
    link (and forgets the peer) after `unused_timeout` with nothing to send. Frames that the
    peer sends back on the link go to `on_frame(peer_key, frame)`, or are counted and dropped.
    Run `run()` in a nursery (`await nursery.start(links.run)`); stop with `aclose()`.
    """

    def __init__(
        self,
        local_private: bytes,
        frame_body_size: int,
        resolve: Resolve,
        *,
        rng: random.Random,
        count: Count = _ignore,
        on_frame: Callable[[bytes, Frame], None] | None = None,
        queue_size: int = 1024,
        max_batch: int = 64,
        max_peers: int = 1024,
        handshake_timeout: float = 10.0,
        timings: LinkTimings = LinkTimings(),
        unused_timeout: float = 300.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        backoff_reset_after: float = 30.0,
    ) -> None:
        if queue_size < 1 or max_batch < 1 or max_peers < 1:
            raise ValueError("queue_size, max_batch and max_peers must be at least 1")
        LinkCore.responder(local_private, frame_body_size)  # validate the arguments now
        self._local_private = local_private
        self._frame_body_size = frame_body_size
        self._resolve = resolve
        self._rng = rng
        self._count = count
        self._on_frame = on_frame
        self._queue_size = queue_size
        self._max_batch = max_batch
        self._max_peers = max_peers
        self._handshake_timeout = handshake_timeout
        self._timings = timings
        self._unused_timeout = unused_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._backoff_reset_after = backoff_reset_after
        self._peers: dict[bytes, _Peer] = {}
        self._nursery: trio.Nursery | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"PeerLinks(peers={len(self._peers)}, queued={self.queued_frames})"

    @property
    def peer_count(self) -> int:
        """Peers with a link or a queue right now."""
        return len(self._peers)

    @property
    def open_links(self) -> int:
        """Peers with an established link right now."""
        return sum(peer.connected for peer in self._peers.values())

    @property
    def queued_frames(self) -> int:
        """Frames waiting in all queues (for a queue-depth gauge)."""
        return sum(len(peer.queue) for peer in self._peers.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the peer tasks until `aclose()` (or cancellation)."""
        if self._nursery is not None or self._closing:
            raise RuntimeError("PeerLinks.run() runs once")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._closing = True

    def try_send(self, peer_key: bytes, frame: Frame) -> bool:
        """Queue `frame` for `peer_key` without waiting; False (and counted) if it cannot."""
        peer = self._peers.get(peer_key)
        if peer is None:
            if self._closing:
                self._count("shutting_down")
                return False
            if self._nursery is None:
                raise RuntimeError("PeerLinks.run() is not running")
            if len(self._peers) >= self._max_peers:
                self._count("peer_table_full")
                return False
            if self._resolve(peer_key) is None:
                self._count("peer_unknown")
                return False
            peer = _Peer(peer_key)
            self._peers[peer_key] = peer
            self._nursery.start_soon(self._run_peer, peer)
        elif self._closing:
            self._count("shutting_down")
            return False
        if len(peer.queue) >= self._queue_size:
            self._count("send_queue_full")
            return False
        peer.queue.append(frame)
        peer.wakeup.set()
        return True

    async def aclose(self, *, grace: float = 0.0) -> None:
        """Stop taking frames, give queued ones up to `grace` seconds to be written, then close
        every link and end `run()`. Frames still queued are counted as frames_lost."""
        self._closing = True
        with trio.move_on_after(grace):
            while any(peer.queue or peer.in_flight for peer in self._peers.values()):
                await trio.sleep(0.01)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _run_peer(self, peer: _Peer) -> None:
        attempt = 0
        try:
            while await self._wait_for_frames(peer):
                if attempt:
                    await trio.sleep(
                        backoff_delay(
                            attempt,
                            initial=self._backoff_initial,
                            maximum=self._backoff_max,
                            rng=self._rng,
                        )
                    )
                address = self._resolve(peer.key)
                if address is None:
                    self._count("peer_unknown")
                    return
                try:
                    connection = await open_link(
                        address[0],
                        address[1],
                        self._local_private,
                        peer.key,
                        self._frame_body_size,
                        handshake_timeout=self._handshake_timeout,
                        timings=self._timings,
                        count=self._count,
                    )
                except LinkClosed:
                    attempt += 1
                    continue
                opened = trio.current_time()
                if await self._pump(peer, connection):
                    if not peer.queue:
                        return  # unused: close; a later frame starts a new link
                    attempt = 0
                    continue
                stable = trio.current_time() - opened >= self._backoff_reset_after
                attempt = 1 if stable else attempt + 1
        finally:
            if self._peers.get(peer.key) is peer:
                del self._peers[peer.key]
            for _ in range(len(peer.queue)):
                self._count("frames_lost")
            peer.queue.clear()

    async def _wait_for_frames(self, peer: _Peer) -> bool:
        """Wait until the peer has queued frames (True) or has been unused too long (False)."""
        with trio.move_on_after(self._unused_timeout):
            while not peer.queue:
                peer.wakeup = trio.Event()
                await peer.wakeup.wait()
        return bool(peer.queue)

    async def _pump(self, peer: _Peer, connection: LinkConnection) -> bool:
        """Write the peer's queue to `connection` until it breaks (False) or the peer is
        unused for `unused_timeout` (True)."""
        unused = False
        peer.connected = True
        try:
            async with connection, trio.open_nursery() as nursery:
                nursery.start_soon(self._read_back, peer, connection, nursery.cancel_scope)
                try:
                    while True:
                        if not await self._wait_for_frames(peer):
                            unused = True
                            break
                        await self._send_batch(peer, connection)
                except LinkClosed:
                    pass
                nursery.cancel_scope.cancel()
        finally:
            peer.connected = False
        return unused

    async def _send_batch(self, peer: _Peer, connection: LinkConnection) -> None:
        """Write up to max_batch queued frames in one write; lost frames are counted."""
        queue = peer.queue
        batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
        peer.in_flight = len(batch)
        sent = False
        try:
            await connection.send_many(batch)
            sent = True
        finally:
            peer.in_flight = 0
            if not sent:
                for _ in batch:
                    self._count("frames_lost")

    async def _read_back(
        self, peer: _Peer, connection: LinkConnection, scope: trio.CancelScope
    ) -> None:
        """Read the link (this services keep-alives and idle timeouts); end the pump when it
        closes."""
        try:
            async for frame in connection:
                if self._on_frame is None:
                    self._count("frame_unexpected")
                    continue
                try:
                    self._on_frame(peer.key, frame)
                except Exception as exc:  # noqa: BLE001 (a bug in on_frame must not stop the links)
                    _log_handler_error(exc, self._count)
        finally:
            scope.cancel()
