"""Sweeps run their points in parallel and return them in grid order, same as one by one."""

from __future__ import annotations

import numpy as np

from simulations.config import SimConfig
from simulations.sweep import grid_points, parse_grid, sweep

BASE = SimConfig(clients=40, layers=2, width=2, gateways=2, targets=150, seed=9)


def test_parallel_sweep_equals_serial_and_keeps_order() -> None:
    points = grid_points(BASE, parse_grid(["mu=5,10", "layers=1,3"]))
    seen: list[int] = []
    parallel = sweep(points, workers=2, progress=lambda done, total: seen.append(done))
    serial = sweep(points, workers=1)
    assert seen[-1] == len(points) == 4
    assert [r.config for r in parallel] == points
    for a, b in zip(parallel, serial, strict=True):
        assert a.summary == b.summary
        assert np.array_equal(a.entropy, b.entropy)
