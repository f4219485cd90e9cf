"""Sweeps on a Dask distributed cluster: every grid point is one task, run where the cluster likes.

A run is a pure function of its config (its seed included), so the results are the same,
bit for bit, as a local sweep of the same grid. The workers need trimix installed (the same
version); they receive configs and send back results, both plain picklable values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from distributed import Client, as_completed

from simulations.config import SimConfig
from simulations.errors import SimulationError
from simulations.resources import check_size
from simulations.result import Result
from simulations.runner import run

CONNECT_TIMEOUT = 20.0  # seconds to reach the scheduler


class SchedulerError(SimulationError):
    """The Dask scheduler could not be reached."""


def smallest_worker_memory(client: Client) -> float | None:
    """The memory limit of the cluster's smallest worker, in bytes (None if none is set)."""
    workers: dict[str, dict[str, Any]] = client.scheduler_info().get("workers", {})
    limits = [float(w["memory_limit"]) for w in workers.values() if w.get("memory_limit")]
    return min(limits) if limits else None


def dask_sweep(
    configs: Sequence[SimConfig],
    scheduler: str | Client,
    *,
    progress: Callable[[int, int], None] | None = None,
    memory_limit: float | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> list[Result]:
    """Run every config as a task on the cluster at ``scheduler`` (an address or a Client).

    Every point is checked against ``memory_limit`` (default: the smallest worker's memory
    limit) before any is submitted. Results come back in the order of ``configs``.
    """
    if isinstance(scheduler, str):
        try:
            client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    else:
        client = scheduler
    try:
        limit = smallest_worker_memory(client) if memory_limit is None else memory_limit
        for config in configs:
            check_size(config, limit)
        task = partial(run, memory_limit=math.inf)
        futures = client.map(task, list(configs), pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[Result | None] = [None] * len(futures)
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            results[index[future.key]] = future.result()
            if progress is not None:
                progress(done, len(futures))
        return [r for r in results if r is not None]
    finally:
        if client is not scheduler:
            client.close()
