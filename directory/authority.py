"""`AuthorityDaemon`: the Trio driver of one directory authority.

It serves the HTTP API (`directory.http_app` behind `directory.http_server`'s capped
listener) and, for each epoch, builds the consensus of the next one at the deadlines of
`EpochClock.schedule`:

1. vote (`vote_at`): sign its vote from the descriptors uploaded so far, with its commitment;
   push it to the other authorities, then pull the votes it still lacks from their authors.
2. relay (`relay_at`, votes closed): fetch each peer's relay index and the votes in it that
   it lacks or holds in another version (two versions are evidence: that authority is left
   out); push its reveal, then pull the reveals it lacks from their authors.
3. reveal relay (`reveal_relay_at`, reveals closed): fetch each peer's reveal set.
4. compute (`compute_at`): compute the consensus from what it holds, sign it (if the
   parameters are within its acceptable ranges), push the signature message to the others.
5. publish (`publish_at`): pull the signatures it lacks; publish once t authorities signed
   its document, retrying until the epoch begins; failing that, adopt a consensus another
   authority published, if it verifies.

Every request has a deadline for the whole exchange and a cap on the answer's size
(`directory.http_client`); requests to peers run concurrently under the phase's deadline,
so a peer that is down, slow or hostile costs a phase at most, never the epoch. Logs at
INFO hold epochs and counts only: no addresses, keys or node ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import httpx
import hypercorn.config
import trio

from directory import http_server
from directory.authority_core import AuthorityCore
from directory.consensus import MAX_CONSENSUS_SIZE
from directory.counters import Counters
from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochSchedule
from directory.errors import DirectoryError
from directory.http_app import DEFAULT_REQUEST_SECONDS, AuthorityHttpApp
from directory.http_client import HttpReply, PeerError, bounded_request
from directory.http_server import ConnectionLimits
from directory.rejection import Rejection
from directory.relay import MAX_RELAY_INDEX_SIZE, decode_relay_index
from directory.shared_random import MAX_REVEAL_SET_SIZE, MAX_REVEAL_SIZE
from directory.signature_message import MAX_SIGNATURE_MESSAGE_SIZE
from directory.vote import MAX_VOTE_SIZE

log = logging.getLogger(__name__)

MAX_ANSWER_SIZE = 4096
"""The largest JSON answer to an upload that is read."""
PHASE_MARGIN = 0.005
"""Seconds before a phase deadline at which its requests give up."""
HEADER_SECONDS = 5.0
"""How long a connection may take to send a request's head (hypercorn's idle timeout)."""


@contextmanager
def timed_out_if_cut_short(counters: Counters, outcome: str) -> Iterator[None]:
    """Count `outcome` when the deadline around a request (its phase's) cancels it. A
    request's own timeout ends PHASE_MARGIN before that deadline and is counted where it is
    caught; but a task that wakes later than that (a busy machine) meets the phase's deadline
    first, and the peer that did not answer in time would go uncounted. A cancellation
    before the deadline (the daemon stopping) counts nothing."""
    deadline = trio.current_effective_deadline()
    try:
        yield
    except trio.Cancelled:
        if trio.current_time() >= deadline - PHASE_MARGIN:
            counters.increment(outcome)
        raise


class AuthorityDaemon:
    """Serves and runs the phases until `stop()` is called or the task is cancelled."""

    def __init__(
        self,
        core: AuthorityCore,
        peers: Sequence[AuthorityEndpoint],
        *,
        listen_host: str,
        listen_port: int,
        now: Callable[[], float] = time.time,
        request_timeout: float | None = None,
        request_seconds: float = DEFAULT_REQUEST_SECONDS,
        connection_limits: ConnectionLimits | None = None,
    ) -> None:
        self.core = core
        self.peers = tuple(p for p in peers if p.public_key != core.key)
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.now = now
        length = core.clock.length_ms / 1000
        self.request_timeout = request_timeout or min(10.0, max(0.5, length / 8))
        self.connection_limits = connection_limits or ConnectionLimits()
        self.counters = Counters("trimix_authority_events", "Authority events by outcome.")
        self._listener: http_server.CappedListener | None = None
        self.app = AuthorityHttpApp(
            core,
            self.counters,
            now,
            request_seconds=request_seconds,
            status_extra=self._status_extra,
        )
        self.port: int | None = None
        """The bound port, once serving."""
        self._stop = trio.Event()

    def stop(self) -> None:
        self._stop.set()

    def _status_extra(self) -> dict[str, Any]:
        listener = self._listener
        if listener is None:
            return {}
        return {
            "connections": listener.open,
            "max_connections": listener.limits.max_connections,
        }

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve and run the phases; `task_status.started(port)` once listening."""
        policy = self.core.policy
        if policy.open_registration:
            log.warning("open registration: any node key may upload descriptors (testnets only)")
        else:
            log.info("closed registration: %d node keys admitted", len(policy.allowed_nodes))
        if policy.allow_loopback_addresses:
            log.info("loopback descriptor addresses are admitted (a local testnet)")
        config = hypercorn.config.Config()
        config.accesslog = None  # access logs would hold peer addresses
        config.errorlog = None
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = HEADER_SECONDS
        config.read_timeout = max(1, round(self.app.request_seconds))
        listener = await http_server.open_capped_listener(
            self.listen_host,
            self.listen_port,
            self.connection_limits,
            lambda reason: self.counters.increment(f"http.refused.{reason}"),
        )
        self._listener = listener
        try:
            async with (
                httpx.AsyncClient(timeout=self.request_timeout) as client,
                trio.open_nursery() as nursery,
            ):
                await nursery.start(
                    partial(
                        http_server.serve,
                        self.app.asgi,
                        config,
                        listener,
                        shutdown_trigger=self._stop.wait,
                    )
                )
                self.port = listener.port
                log.info(
                    "authority listening on port %d (at most %d connections, %d per source)",
                    self.port,
                    listener.limits.max_connections,
                    listener.limits.max_per_source,
                )
                phases = trio.CancelScope()
                nursery.start_soon(self._phases_forever, client, phases)
                task_status.started(self.port)
                await self._stop.wait()
                phases.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
        log.info("authority stopped")

    async def _phases_forever(self, client: httpx.AsyncClient, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                epoch = self.core.building_epoch(self.now())
                try:
                    await self.build(epoch, client)
                    self.core.prune(self.now())
                except Exception:  # a defect: log it, keep serving, try the next epoch
                    log.exception("epoch %d: the phases failed", epoch)
                    self.counters.increment("phases.internal_error")
                    self.core.note(epoch, f"the phases of epoch {epoch} failed (internal error)")
                await self._sleep_until(self.core.clock.schedule(epoch).valid_after)

    async def build(self, epoch: int, client: httpx.AsyncClient) -> None:
        """Run the phases for `epoch`'s consensus that are not yet past their deadline,
        each within its deadline."""
        schedule = self.core.clock.schedule(epoch)
        phases: list[tuple[int, int, Callable[[], Awaitable[None]]]] = [
            (schedule.vote_at, schedule.relay_at, partial(self._vote_phase, schedule, client)),
            (
                schedule.relay_at,
                schedule.reveal_relay_at,
                partial(self._relay_phase, schedule, client),
            ),
            (
                schedule.reveal_relay_at,
                schedule.compute_at,
                partial(self._reveal_relay_phase, epoch, client),
            ),
            (schedule.compute_at, schedule.publish_at, partial(self._compute_phase, epoch, client)),
            (
                schedule.publish_at,
                schedule.valid_until,
                partial(self._publish_phase, schedule, client),
            ),
        ]
        for start, deadline, phase in phases:
            await self._sleep_until(start)
            if self._before(deadline):
                with trio.move_on_at(self._trio_time(deadline)):
                    await phase()

    async def _vote_phase(self, schedule: EpochSchedule, client: httpx.AsyncClient) -> None:
        epoch = schedule.epoch
        vote = self.core.make_vote(epoch)
        log.info("epoch %d: voted", epoch)
        halfway = (schedule.vote_at + schedule.relay_at) // 2
        with trio.move_on_at(self._trio_time(halfway)):
            await self._each_peer(
                self.peers, partial(self._push, client, "/v1/vote", vote, "vote")
            )
        missing = set(self.core.missing_votes(epoch))
        await self._each_peer(
            [p for p in self.peers if p.public_key in missing],
            partial(self._pull, client, f"/v1/vote/{epoch}", self.core.accept_vote, "vote"),
        )

    async def _relay_phase(self, schedule: EpochSchedule, client: httpx.AsyncClient) -> None:
        epoch = schedule.epoch
        three_quarters = (schedule.relay_at + 3 * schedule.reveal_relay_at) // 4
        reveal = self.core.reveal_bytes(epoch, self.now())
        with trio.move_on_at(self._trio_time(three_quarters)):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._each_peer, self.peers, partial(self._relay, client, epoch))
                if reveal is not None:
                    nursery.start_soon(
                        self._each_peer,
                        self.peers,
                        partial(self._push, client, "/v1/reveal", reveal, "reveal"),
                    )
        evidence = self.core.evidence_keys(epoch)
        if evidence:
            log.warning(
                "epoch %d: %d authorities equivocated and are left out", epoch, len(evidence)
            )
        missing = set(self.core.missing_reveals(epoch))
        await self._each_peer(
            [p for p in self.peers if p.public_key in missing],
            partial(self._pull, client, f"/v1/reveal/{epoch}", self.core.accept_reveal, "reveal"),
        )

    async def _relay(self, client: httpx.AsyncClient, epoch: int, peer: AuthorityEndpoint) -> None:
        """Fetch the votes in `peer`'s relay index that this authority lacks."""
        reply = await self._get(client, peer, f"/v1/relay/{epoch}", MAX_RELAY_INDEX_SIZE, "relay")
        if reply is None:
            return
        try:
            index = decode_relay_index(reply.body, epoch)
        except DirectoryError:
            self.counters.increment("relay.index.rejected")
            return
        for wanted in self.core.wanted_votes(epoch, index, peer.public_key):
            vote = await self._get(
                client, peer, f"/v1/vote/{epoch}/{wanted.hex()}", MAX_VOTE_SIZE, "relay"
            )
            if vote is None:
                continue
            try:
                outcome = self.core.accept_relayed_vote(vote.body, peer.public_key, self.now())
            except Rejection as rejection:
                self.counters.increment(f"relay.vote.rejected.{rejection.code}")
                continue
            self.counters.increment(f"relay.vote.{outcome}")

    async def _reveal_relay_phase(self, epoch: int, client: httpx.AsyncClient) -> None:
        async def relay(peer: AuthorityEndpoint) -> None:
            reply = await self._get(
                client, peer, f"/v1/reveals/{epoch}", MAX_REVEAL_SET_SIZE, "reveal_relay"
            )
            if reply is None:
                return
            try:
                new = self.core.accept_relayed_reveals(reply.body, peer.public_key, self.now())
            except Rejection as rejection:
                self.counters.increment(f"reveal_relay.rejected.{rejection.code}")
                return
            self.counters.increment("reveal_relay.ok")
            self.counters.increment("reveal_relay.new", new)

        await self._each_peer(self.peers, relay)

    async def _compute_phase(self, epoch: int, client: httpx.AsyncClient) -> None:
        try:
            signature = self.core.compute(epoch)
        except DirectoryError as error:
            log.warning("epoch %d: %s", epoch, error)
            return
        log.info("epoch %d: consensus computed and signed", epoch)
        await self._each_peer(
            self.peers, partial(self._push, client, "/v1/signature", signature, "signature")
        )

    async def _publish_phase(self, schedule: EpochSchedule, client: httpx.AsyncClient) -> None:
        """Publish, retrying the missing signatures until the epoch begins; failing that,
        adopt another authority's published consensus."""
        epoch = schedule.epoch
        retry = max(0.05, self.core.clock.length_ms / 1000 / 32)
        while self.core.published(epoch) is None:
            try:
                self.core.publish(epoch)
            except DirectoryError as error:
                if not self._before(schedule.valid_after):
                    log.warning("epoch %d: %s", epoch, error)
                    break
            else:
                log.info("epoch %d: consensus published", epoch)
                return
            if self.core.has_computed(epoch):
                missing = set(self.core.missing_signatures(epoch))
                round_end = min(schedule.valid_after, round((self.now() + 2 * retry) * 1000))
                with trio.move_on_at(self._trio_time(round_end) + PHASE_MARGIN):
                    await self._each_peer(
                        [p for p in self.peers if p.public_key in missing],
                        partial(
                            self._pull,
                            client,
                            f"/v1/signature/{epoch}",
                            self.core.accept_signature,
                            "signature",
                        ),
                    )
            if self.core.published(epoch) is None and self._before(schedule.valid_after):
                await trio.sleep(retry)
        if self.core.published(epoch) is not None:
            return
        await self._adopt(epoch, client)

    async def _adopt(self, epoch: int, client: httpx.AsyncClient) -> None:
        """Serve a consensus that another authority published, if it verifies."""
        for peer in self.peers:
            reply = await self._get(
                client, peer, f"/v1/consensus/{epoch}", MAX_CONSENSUS_SIZE, "adopt"
            )
            if reply is None:
                continue
            try:
                self.core.adopt(epoch, reply.body, self.now())
            except DirectoryError:
                self.counters.increment("adopt.rejected")
                continue
            self.counters.increment("adopt.accepted")
            log.info("epoch %d: adopted the consensus another authority published", epoch)
            return

    # requests

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        peer: AuthorityEndpoint,
        path: str,
        max_body: int,
        content: bytes | None = None,
    ) -> HttpReply:
        """One bounded request: within the request timeout and what is left of the phase
        (so that a request cut short by the phase deadline is counted as timed out)."""
        left = trio.current_effective_deadline() - trio.current_time() - PHASE_MARGIN
        return await bounded_request(
            client,
            method,
            peer.route(path),
            max_body=max_body,
            timeout=min(self.request_timeout, left),
            content=content,
        )

    async def _get(
        self,
        client: httpx.AsyncClient,
        peer: AuthorityEndpoint,
        path: str,
        max_body: int,
        kind: str,
    ) -> HttpReply | None:
        """A 200 answer to a GET, or None (counted as `pull.<kind>.<outcome>`)."""
        try:
            with timed_out_if_cut_short(self.counters, f"pull.{kind}.timed_out"):
                reply = await self._request(client, "GET", peer, path, max_body)
        except PeerError as error:
            self.counters.increment(f"pull.{kind}.{error.outcome}")
            return None
        if reply.status != 200:
            self.counters.increment(f"pull.{kind}.not_available")
            return None
        return reply

    async def _push(
        self,
        client: httpx.AsyncClient,
        path: str,
        document: bytes,
        kind: str,
        peer: AuthorityEndpoint,
    ) -> None:
        try:
            with timed_out_if_cut_short(self.counters, f"push.{kind}.timed_out"):
                reply = await self._request(client, "POST", peer, path, MAX_ANSWER_SIZE, document)
        except PeerError as error:
            self.counters.increment(f"push.{kind}.{error.outcome}")
            return
        outcome = "ok" if reply.status < 300 else f"refused_{reply.status}"
        self.counters.increment(f"push.{kind}.{outcome}")

    async def _pull(
        self,
        client: httpx.AsyncClient,
        path: str,
        accept: Callable[[bytes, float], str],
        kind: str,
        peer: AuthorityEndpoint,
    ) -> None:
        limits = {
            "vote": MAX_VOTE_SIZE,
            "reveal": MAX_REVEAL_SIZE,
            "signature": MAX_SIGNATURE_MESSAGE_SIZE,
        }
        reply = await self._get(client, peer, path, limits[kind], kind)
        if reply is None:
            return
        try:
            accept(reply.body, self.now())
        except Rejection as rejection:
            self.counters.increment(f"pull.{kind}.rejected.{rejection.code}")
            return
        self.counters.increment(f"pull.{kind}.ok")

    async def _each_peer(
        self,
        peers: Sequence[AuthorityEndpoint],
        action: Callable[[AuthorityEndpoint], Awaitable[None]],
    ) -> None:
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(action, peer)

    # time

    def _before(self, deadline_ms: int) -> bool:
        return self.now() * 1000 < deadline_ms

    def _trio_time(self, deadline_ms: int) -> float:
        """The Trio clock's reading at the wall-clock instant `deadline_ms`."""
        return trio.current_time() + (deadline_ms / 1000 - self.now())

    async def _sleep_until(self, deadline_ms: int) -> None:
        delay = deadline_ms / 1000 - self.now()
        if delay > 0:
            await trio.sleep(delay)
