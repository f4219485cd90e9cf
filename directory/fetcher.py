"""`ConsensusFetcher`: how nodes and clients get the consensus (a thin Trio driver).

`fetch(epoch)` tries the configured authorities in random order, moves on when one is down,
slow, has nothing or serves something that does not verify, and returns the first consensus
that `verify_consensus` accepts. Each request has one deadline for the whole exchange
(`request_timeout`) and its answer is read as a stream of at most the largest consensus
allowed (`directory.http_client`), so a slow or hostile authority costs one timeout.
Verified documents are cached on disk (one file per epoch, written atomically), so a
restart does not need the network for the current epoch.

`run()` keeps `current` up to date: it gets the current epoch's consensus, then fetches the
next one from shortly after its publication deadline, retrying with backoff, well before
the current one expires; `on_consensus` hears of each new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx
import trio

from directory.clock_skew import NOTICE_SECONDS, ClockSkew
from directory.consensus import MAX_CONSENSUS_SIZE, Consensus
from directory.counters import Counters
from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from directory.errors import ConsensusUnavailableError, DirectoryError
from directory.http_client import PeerError, bounded_request
from directory.signatures import authority_threshold
from directory.verify import verify_consensus
from sphinx_packets import Geometry

log = logging.getLogger(__name__)

CACHE_PREFIX = "consensus-"
CACHE_SUFFIX = ".bin"
CACHE_EPOCHS_KEPT = 3


class ConsensusFetcher:
    """Fetches, verifies and caches consensus documents."""

    def __init__(
        self,
        authorities: Sequence[AuthorityEndpoint],
        geometry: Geometry,
        clock: EpochClock,
        *,
        cache_dir: Path | None = None,
        rng: random.Random,
        now: Callable[[], float] = time.time,
        request_timeout: float = 5.0,
        threshold: int | None = None,
        counters: Counters | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`http_client`: one long-lived client to use for every request. Without it each
        fetch makes its own, and making an `httpx.AsyncClient` (it loads the CA bundle)
        blocks the event loop for about 40 ms: a daemon with other work to do passes one."""
        if not authorities:
            raise ValueError("a fetcher needs at least one authority")
        self.authorities = tuple(authorities)
        self.pinned_keys = frozenset(a.public_key for a in authorities)
        self.threshold = authority_threshold(len(self.pinned_keys), threshold)
        """Signatures required of a consensus (the authorities' configured t)."""
        self.geometry = geometry
        self.clock = clock
        self.cache_dir = cache_dir
        self.rng = rng
        self.now = now
        self.request_timeout = request_timeout
        self.counters = counters or Counters(
            "trimix_fetcher_events", "Consensus fetches by outcome."
        )
        """Fetch outcomes: fetched, from_cache, unreachable, timed_out, too_large,
        unavailable, rejected."""
        self.current: Consensus | None = None
        """The consensus of the current epoch, once `run` has it."""
        self.clock_skew = ClockSkew(len(self.authorities))
        """How far this machine's clock is from the authorities' (`directory.clock_skew`)."""
        self.last_failure: str | None = None
        """What the last `fetch` that found nothing was told, for an error made of it."""
        self._skew_warned_at = -math.inf
        self._documents: dict[int, Consensus] = {}
        self._http_client = http_client

    def verify(self, document: bytes, epoch: int) -> Consensus:
        return verify_consensus(
            document,
            self.pinned_keys,
            epoch,
            self.geometry,
            now=self.now(),
            threshold=self.threshold,
        )

    async def fetch(self, epoch: int) -> Consensus:
        """The verified consensus of `epoch`: from memory, the disk cache, or an authority.
        Raises `ConsensusUnavailableError` listing what each authority answered."""
        known = self._documents.get(epoch)
        if known is not None and self.now() * 1000 < known.valid_until_ms:
            return known
        cached = self._read_cache(epoch)
        if cached is not None:
            self.counters.increment("consensus.from_cache")
            return self._remember(cached)
        order = list(range(len(self.authorities)))
        self.rng.shuffle(order)
        failures = []
        async with contextlib.AsyncExitStack() as stack:
            client = self._http_client or await stack.enter_async_context(
                httpx.AsyncClient(timeout=self.request_timeout)
            )
            for position, source in enumerate(order):
                authority = self.authorities[source]
                try:
                    document = await self._get(client, source, epoch)
                    consensus = self.verify(document, epoch)
                except DirectoryError as error:
                    self.counters.increment(f"consensus.{_outcome(error)}")
                    failures.append(f"{authority.url}: {_describe(error)}")
                    log.debug(
                        "consensus %d: authority %d of %d failed", epoch, position + 1, len(order)
                    )
                    continue
                self.counters.increment("consensus.fetched")
                self._write_cache(epoch, document)
                self.last_failure = None
                self._warn_of_skew()
                return self._remember(consensus)
        skew = self.clock_skew.describe()
        self.last_failure = (
            f"no valid consensus for epoch {epoch} from {len(order)} authorities: "
            + "; ".join(failures)
            + ("" if skew is None else f"; {skew}")
        )
        self._warn_of_skew()
        raise ConsensusUnavailableError(self.last_failure)

    def _warn_of_skew(self) -> None:
        """Warn (at most once an epoch) while the clock is off by a tenth of an epoch or more:
        enough to ask for the wrong epoch's consensus near every boundary."""
        length = self.clock.length_ms / 1000
        skew = self.clock_skew.describe(max(NOTICE_SECONDS, length / 10))
        now = self.now()
        if skew is not None and now - self._skew_warned_at >= max(length, 60.0):
            self._skew_warned_at = now
            log.warning("%s", skew)

    async def run(
        self,
        *,
        on_consensus: Callable[[Consensus], Awaitable[None]] | None = None,
        task_status: trio.TaskStatus[Consensus] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep `current` up to date forever; `task_status.started(consensus)` once the
        current epoch's consensus is in hand (this waits as long as that takes)."""
        consensus = await self._fetch_current()
        self.current = consensus
        if on_consensus is not None:
            await on_consensus(consensus)
        task_status.started(consensus)
        while True:
            following = consensus.epoch + 1
            schedule = self.clock.schedule(following)
            # Authorities publish at publish_at; leave them a moment, spread the clients.
            spread = (schedule.valid_after - schedule.publish_at) / 4
            await self._sleep_until(schedule.publish_at + self.rng.uniform(0.1, 1.0) * spread)
            upcoming = await self._fetch_until(following, consensus.valid_until_ms)
            if upcoming is None:
                log.warning("consensus %d: not available before the current one expired", following)
                upcoming = await self._fetch_current()
            else:
                await self._sleep_until(upcoming.valid_after_ms)
            consensus = upcoming
            self.current = consensus
            self._forget_before(consensus.epoch - 1)
            if on_consensus is not None:
                await on_consensus(consensus)

    async def _fetch_current(self) -> Consensus:
        """The consensus of whatever epoch is current, trying for as long as it takes."""
        while True:
            epoch = max(1, self.clock.epoch_at(self.now()))  # epoch 0 has no consensus
            consensus = await self._fetch_until(epoch, self.clock.schedule(epoch).fresh_until)
            if consensus is not None:
                return consensus

    async def _fetch_until(self, epoch: int, deadline_ms: int) -> Consensus | None:
        """Fetch with exponential backoff until `deadline_ms`; None if it never worked."""
        delay = min(1.0, self.clock.length_ms / 1000 / 64)
        while self.now() * 1000 < deadline_ms:
            try:
                return await self.fetch(epoch)
            except ConsensusUnavailableError as error:
                log.info(
                    "consensus %d: not yet available (%d authorities tried)",
                    epoch,
                    len(self.authorities),
                )
                log.debug("%s", error)
            await trio.sleep(self.rng.uniform(0.5, 1.0) * delay)
            delay = min(delay * 2, max(1.0, self.clock.length_ms / 1000 / 8))
        return None

    async def _get(self, client: httpx.AsyncClient, source: int, epoch: int) -> bytes:
        sent = self.now()
        reply = await bounded_request(
            client,
            "GET",
            self.authorities[source].route(f"/v1/consensus/{epoch}"),
            max_body=MAX_CONSENSUS_SIZE,
            timeout=self.request_timeout,
        )
        if reply.server_time is not None:
            received = self.now() - reply.body_seconds
            self.clock_skew.observe(source, reply.server_time, sent, max(sent, received))
        if reply.status != 200:
            raise ConsensusUnavailableError(f"HTTP {reply.status}: {_reason(reply.body)}")
        return reply.body

    def _remember(self, consensus: Consensus) -> Consensus:
        self._documents[consensus.epoch] = consensus
        return consensus

    def _forget_before(self, epoch: int) -> None:
        for old in [e for e in self._documents if e < epoch]:
            del self._documents[old]
        if self.cache_dir is None:
            return
        for path in self.cache_dir.glob(f"{CACHE_PREFIX}*{CACHE_SUFFIX}"):
            number = path.name[len(CACHE_PREFIX) : -len(CACHE_SUFFIX)]
            if number.isdigit() and int(number) < epoch - CACHE_EPOCHS_KEPT:
                path.unlink(missing_ok=True)

    def _cache_path(self, epoch: int) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{CACHE_PREFIX}{epoch}{CACHE_SUFFIX}"

    def _read_cache(self, epoch: int) -> Consensus | None:
        path = self._cache_path(epoch)
        if path is None:
            return None
        try:
            document = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self.verify(document, epoch)
        except DirectoryError:
            path.unlink(missing_ok=True)  # expired or damaged: fetch afresh
            return None

    def _write_cache(self, epoch: int, document: bytes) -> None:
        path = self._cache_path(epoch)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(document)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def _sleep_until(self, deadline_ms: float) -> None:
        delay = deadline_ms / 1000 - self.now()
        if delay > 0:
            await trio.sleep(delay)


def _outcome(error: Exception) -> str:
    if isinstance(error, PeerError):
        return error.outcome
    if isinstance(error, ConsensusUnavailableError):
        return "unavailable"
    return "rejected"


def _describe(error: Exception) -> str:
    if isinstance(error, PeerError) and error.outcome == "timed_out":
        return "timed out"
    return str(error)


def _reason(body: bytes) -> str:
    try:
        payload = json.loads(body)
        return str(payload.get("reason", "no reason given"))[:200]
    except (ValueError, AttributeError):
        return "no reason given"
