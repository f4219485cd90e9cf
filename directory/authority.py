"""`AuthorityDaemon`: the Trio driver of one directory authority.

It serves the HTTP API (hypercorn's Trio server around `AuthorityHttpApp`) and, for each
epoch, builds the consensus of the next one at the deadlines of `EpochClock.schedule`:

1. vote (`vote_at`): sign its vote from the descriptors uploaded so far; push it to the
   other authorities.
2. compute (`compute_at`): fetch the votes still missing from their authorities, compute the
   consensus, sign it, push the signature message to the others.
3. publish (`publish_at`): fetch the signatures still missing; publish once a majority of
   the pinned authorities signed this authority's document. If it cannot (it computed from
   other votes than the majority, or came back late), it adopts a consensus another
   authority published, if that one verifies.

Each request to a peer has a timeout and runs concurrently with the others, so an authority
that is down or slow costs a timeout, never the epoch. Logs at INFO hold epochs and counts
only: no addresses, keys or node ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, cast

import httpx
import hypercorn.config
import hypercorn.trio
import trio

from directory.authority_core import AuthorityCore, Rejection
from directory.counters import Counters
from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochSchedule
from directory.errors import DirectoryError
from directory.http_app import AuthorityHttpApp

log = logging.getLogger(__name__)

OCTET_STREAM = {"content-type": "application/octet-stream"}


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
    ) -> None:
        self.core = core
        self.peers = tuple(p for p in peers if p.public_key != core.key)
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.now = now
        length = core.clock.length_ms / 1000
        self.request_timeout = request_timeout or min(10.0, max(0.5, length / 8))
        self.counters = Counters()
        self.app = AuthorityHttpApp(core, self.counters, now)
        self.port: int | None = None
        """The bound port, once serving."""
        self._stop = trio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve and run the phases; `task_status.started(port)` once listening."""
        config = hypercorn.config.Config()
        config.bind = [f"{self.listen_host}:{self.listen_port}"]
        config.accesslog = None  # access logs would hold peer addresses
        config.errorlog = None
        config.graceful_timeout = 1.0
        config.read_timeout = 30
        config.keep_alive_timeout = 5.0
        async with (
            httpx.AsyncClient(timeout=self.request_timeout) as client,
            trio.open_nursery() as nursery,
        ):
            binds = await nursery.start(
                partial(
                    hypercorn.trio.serve,
                    cast(Any, self.app),  # a raw ASGI callable, which hypercorn's types lack
                    config,
                    shutdown_trigger=self._stop.wait,
                )
            )
            self.port = int(binds[0].rsplit(":", 1)[1])
            log.info("authority listening on port %d", self.port)
            phases = trio.CancelScope()
            nursery.start_soon(self._phases_forever, client, phases)
            task_status.started(self.port)
            await self._stop.wait()
            phases.cancel()
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
                await self._sleep_until(self.core.clock.schedule(epoch).valid_after)

    async def build(self, epoch: int, client: httpx.AsyncClient) -> None:
        """Run the phases for `epoch`'s consensus that are not yet past their deadline."""
        schedule = self.core.clock.schedule(epoch)
        await self._sleep_until(schedule.vote_at)
        if self._before(schedule.compute_at):
            await self._vote_phase(epoch, client)
        await self._sleep_until(schedule.compute_at)
        if self._before(schedule.publish_at):
            await self._compute_phase(epoch, client)
        await self._sleep_until(schedule.publish_at)
        if self._before(schedule.valid_until):
            await self._publish_phase(schedule, client)

    async def _vote_phase(self, epoch: int, client: httpx.AsyncClient) -> None:
        vote = self.core.make_vote(epoch)
        log.info("epoch %d: voted", epoch)
        await self._each_peer(self.peers, partial(self._push, client, "/v1/vote", vote, "vote"))

    async def _compute_phase(self, epoch: int, client: httpx.AsyncClient) -> None:
        missing = set(self.core.missing_votes(epoch))
        await self._each_peer(
            [p for p in self.peers if p.public_key in missing],
            partial(self._pull, client, f"/v1/vote/{epoch}", self.core.accept_vote, "vote"),
        )
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
        while True:
            if self.core.published(epoch) is not None:
                return
            missing = set(self.core.missing_signatures(epoch))
            if self.core.has_computed(epoch):
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
            try:
                self.core.publish(epoch)
            except DirectoryError as error:
                if not self._before(schedule.valid_after):
                    log.warning("epoch %d: %s", epoch, error)
                    break
                await trio.sleep(retry)
                continue
            log.info("epoch %d: consensus published", epoch)
            return
        await self._adopt(epoch, client)

    async def _adopt(self, epoch: int, client: httpx.AsyncClient) -> None:
        """Serve a consensus that another authority published, if it verifies."""
        for peer in self.peers:
            try:
                response = await client.get(peer.route(f"/v1/consensus/{epoch}"))
            except httpx.HTTPError:
                continue
            if response.status_code != 200:
                continue
            try:
                self.core.adopt(epoch, response.content, self.now())
            except DirectoryError:
                self.counters.increment("adopt.rejected")
                continue
            self.counters.increment("adopt.accepted")
            log.info("epoch %d: adopted the consensus another authority published", epoch)
            return

    async def _push(
        self,
        client: httpx.AsyncClient,
        path: str,
        document: bytes,
        kind: str,
        peer: AuthorityEndpoint,
    ) -> None:
        try:
            response = await client.post(peer.route(path), content=document, headers=OCTET_STREAM)
        except httpx.HTTPError:
            self.counters.increment(f"push.{kind}.unreachable")
            return
        outcome = "ok" if response.status_code < 300 else f"refused_{response.status_code}"
        self.counters.increment(f"push.{kind}.{outcome}")

    async def _pull(
        self,
        client: httpx.AsyncClient,
        path: str,
        accept: Callable[[bytes, float], str],
        kind: str,
        peer: AuthorityEndpoint,
    ) -> None:
        try:
            response = await client.get(peer.route(path))
        except httpx.HTTPError:
            self.counters.increment(f"pull.{kind}.unreachable")
            return
        if response.status_code != 200:
            self.counters.increment(f"pull.{kind}.not_available")
            return
        try:
            accept(response.content, self.now())
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

    def _before(self, deadline_ms: int) -> bool:
        return self.now() * 1000 < deadline_ms

    async def _sleep_until(self, deadline_ms: int) -> None:
        delay = deadline_ms / 1000 - self.now()
        if delay > 0:
            await trio.sleep(delay)
