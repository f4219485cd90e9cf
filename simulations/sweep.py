"""Parameter sweeps: a grid of configs, run in parallel across processes."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from typing import Any

from simulations.config import INTEGER_PARAMETERS, PARAMETERS, SimConfig, coerce
from simulations.errors import ConfigError
from simulations.resources import available_memory, check_size
from simulations.result import Result
from simulations.runner import run

Grid = Mapping[str, Sequence[Any]]


def parse_grid_spec(spec: str) -> tuple[str, tuple[Any, ...]]:
    """Parse ``name=v1,v2,…``, or ``name=start:stop:count`` for evenly spaced numbers."""
    name, sep, text = spec.partition("=")
    name = name.strip().replace("-", "_")
    text = text.strip()
    if not sep or not text:
        raise ConfigError(f"grid axis {spec!r} is not of the form name=v1,v2,…")
    if name not in PARAMETERS:
        raise ConfigError(f"unknown parameter in grid: {name}")
    if "," not in text and text.count(":") == 2 and name != "workload":
        start, stop, count = text.split(":")
        try:
            a, b, n = float(start), float(stop), int(count)
        except ValueError as exc:
            raise ConfigError(f"grid axis {spec!r}: expected start:stop:count") from exc
        if n < 1:
            raise ConfigError(f"grid axis {spec!r}: count must be ≥ 1")
        points = [a + (b - a) * i / (n - 1) for i in range(n)] if n > 1 else [a]
        parsed = tuple(coerce(name, round(p) if name in INTEGER_PARAMETERS else p) for p in points)
    else:
        parsed = tuple(coerce(name, value.strip()) for value in text.split(","))
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"grid axis {name} repeats a value")
    return name, parsed


def parse_grid(specs: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    grid: dict[str, tuple[Any, ...]] = {}
    for spec in specs:
        name, values = parse_grid_spec(spec)
        if name in grid:
            raise ConfigError(f"grid axis {name} is given twice")
        grid[name] = values
    return grid


def grid_points(base: SimConfig, grid: Grid) -> list[SimConfig]:
    """Every combination of the grid's values, applied to ``base``, the last axis varying fastest."""
    names = list(grid)
    return [
        base.replace(**dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*(grid[n] for n in names))
    ]


def sweep(
    configs: Sequence[SimConfig],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    memory_limit: float | None = None,
) -> list[Result]:
    """Run every config, each in a worker process; results in the order of ``configs``.

    Every point is checked against ``memory_limit`` bytes per worker (default: the memory
    available now, shared by the workers) before any starts.
    """
    if not configs:
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(configs)))
    if memory_limit is None:
        available = available_memory()
        memory_limit = available / workers if available is not None else math.inf
    for config in configs:
        check_size(config, memory_limit)
    task = partial(run, memory_limit=math.inf)
    results: list[Result | None] = [None] * len(configs)
    if workers == 1:
        for i, config in enumerate(configs):
            results[i] = task(config)
            if progress is not None:
                progress(i + 1, len(configs))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(task, config): i for i, config in enumerate(configs)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(done, len(configs))
    return [r for r in results if r is not None]
