"""Authorities on loopback for the directory tests: real daemons, real sockets."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
from dir_helpers import GEOMETRY, free_port, signing_key

from directory.authority import AuthorityDaemon
from directory.authority_core import AuthorityCore, AuthorityPolicy
from directory.descriptor import Role
from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from directory.parameters import Parameters
from directory.signatures import SigningKey
from directory.storage import AuthorityStore


@dataclass
class RunningAuthority:
    key: SigningKey
    endpoint: AuthorityEndpoint
    store: AuthorityStore
    daemon: AuthorityDaemon
    stopped: trio.Event = field(default_factory=trio.Event)

    async def stop(self) -> None:
        self.daemon.stop()
        with trio.fail_after(10):
            await self.stopped.wait()
        self.store.close()

    async def health(self) -> dict:  # type: ignore[type-arg]
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.endpoint.route("/v1/health"))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def clock_starting_now(length_ms: int, *, into_epoch_ms: int = 100) -> EpochClock:
    """A clock whose epoch 1 began `into_epoch_ms` ago, so epoch 2 is being built."""
    now_ms = int(time.time() * 1000)
    return EpochClock(origin_ms=now_ms - length_ms - into_epoch_ms, length_ms=length_ms)


def plan_authorities(rng: random.Random, count: int) -> list[tuple[SigningKey, AuthorityEndpoint]]:
    plan = []
    for _ in range(count):
        key = signing_key(rng)
        plan.append((key, AuthorityEndpoint(key.public_key, f"http://127.0.0.1:{free_port()}")))
    return plan


async def start_authority(
    nursery: trio.Nursery,
    key: SigningKey,
    endpoint: AuthorityEndpoint,
    everyone: list[AuthorityEndpoint],
    clock: EpochClock,
    data_dir: Path,
    *,
    parameters: Parameters | None = None,
    allowed_nodes: Mapping[bytes, Role] | None = None,
    daemon_options: Mapping[str, Any] | None = None,
    **policy_options: Any,
) -> RunningAuthority:
    """A daemon on `endpoint`. With `allowed_nodes`, registration is closed to them (with
    loopback addresses allowed, as a local testnet runs); without, it is open."""
    policy = AuthorityPolicy(
        authorities=frozenset(e.public_key for e in everyone),
        clock=clock,
        parameters=parameters or Parameters.default(),
        geometry=GEOMETRY,
        allowed_nodes=allowed_nodes or {},
        open_registration=allowed_nodes is None,
        allow_loopback_addresses=True,
        **policy_options,
    )
    store = AuthorityStore(data_dir / "authority.sqlite3")
    core = AuthorityCore(key, policy, store)
    port = int(endpoint.url.rsplit(":", 1)[1])
    daemon = AuthorityDaemon(
        core, everyone, listen_host="127.0.0.1", listen_port=port, **(daemon_options or {})
    )
    running = RunningAuthority(key, endpoint, store, daemon)

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await daemon.run(task_status=task_status)
        finally:
            running.stopped.set()

    await nursery.start(run)
    return running


async def upload_all(documents: Sequence[bytes], endpoints: Sequence[AuthorityEndpoint]) -> None:
    """Upload every document to every authority, all at once; each must be accepted."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(endpoint: AuthorityEndpoint, document: bytes) -> None:
            response = await client.post(endpoint.route("/v1/descriptor"), content=document)
            assert response.status_code == 200, response.text

        async with trio.open_nursery() as nursery:
            for endpoint in endpoints:
                for document in documents:
                    nursery.start_soon(one, endpoint, document)


async def upload(endpoint: AuthorityEndpoint, document: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(
            endpoint.route("/v1/descriptor"),
            content=document,
            headers={"content-type": "application/octet-stream"},
        )
