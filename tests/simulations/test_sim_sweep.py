"""Sweeps run their points in parallel and return them in grid order, same as one by one."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import Client, LocalCluster

from simulations.config import SimConfig
from simulations.dask_sweep import SchedulerError, dask_sweep
from simulations.plots import curve_points, entropy_figure, fixed_values, mean_delay
from simulations.resources import TooLargeError
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


def test_a_dask_cluster_gives_the_same_results_as_local_processes() -> None:
    points = grid_points(BASE.replace(targets=80), parse_grid(["mu=5,10", "seed=1,2"]))
    local = sweep(points, workers=1)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        seen: list[int] = []
        remote = dask_sweep(points, client, progress=lambda done, total: seen.append(done))
    assert seen[-1] == len(points)
    assert [r.config for r in remote] == points
    for a, b in zip(remote, local, strict=True):
        assert a.summary == b.summary
        assert np.array_equal(a.entropy, b.entropy) and np.array_equal(a.forward_entropy, b.forward_entropy)


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler"):
        dask_sweep([BASE], "tcp://127.0.0.1:9", connect_timeout=1.0)


def test_a_sweep_refuses_an_oversized_point_before_running_any() -> None:
    points = [BASE, BASE.replace(mu=0.001)]
    with pytest.raises(TooLargeError):
        sweep(points, workers=1, memory_limit=2 << 30)


def test_sweep_figures_name_what_was_held_fixed_and_keep_the_legend_off_the_bands() -> None:
    points = grid_points(BASE.replace(targets=60), parse_grid(["mu=5,10", "layers=2,3", "seed=1,2"]))
    results = sweep(points, workers=1)
    held = fixed_values(points[0], ["layers"], ("mu",))
    assert held.startswith("fixed: layers=2") and "clients=40" in held and "mu=" not in held
    chosen = [r for r in results if r.config.layers == 2]
    figure = entropy_figure(chosen, mean_delay, "1/μ", "Entropy vs mu", note=held)
    (ax,) = [a for a in figure.axes if a.get_ylabel().startswith("entropy")]
    assert "fixed: layers=2" in ax.get_title()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    figure.draw(renderer)
    legend = figure.legends[0].get_window_extent(renderer)
    assert legend.y1 <= ax.get_window_extent(renderer).y0, "the legend sits below the axes"
    # Two seeds per point: the error bar is the 95 % t interval over them.
    (point, _) = curve_points(chosen, mean_delay, "entropy_mean")
    seeds = [r.summary.entropy_mean for r in chosen if r.config.mu == 10.0]
    assert point.mean == pytest.approx(np.mean(seeds))
    assert point.half_width == pytest.approx(12.706 * np.std(seeds, ddof=1) / np.sqrt(2), rel=1e-3)
