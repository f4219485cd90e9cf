"""PNG figures with matplotlib (object API and the Agg canvas: no pyplot, no global state)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulations.config import SimConfig
from simulations.result import Result

_SIZE = (6.0, 4.0)
_DPI = 100


def _save(figure: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return Path(path)


def latency_histogram(result: Result, path: str | Path) -> Path:
    """Histogram of end-to-end latency of real messages, with the mean and 95th percentile."""
    figure = Figure(figsize=_SIZE)
    ax = figure.add_subplot()
    latency = result.latency
    ax.hist(latency, bins=60, color="#4c72b0", edgecolor="white", linewidth=0.3)
    s = result.summary
    ax.axvline(s.latency_mean, color="#c44e52", label=f"mean {s.latency_mean:.3f} s")
    ax.axvline(s.latency_p95, color="#dd8452", linestyle="--", label=f"95th percentile {s.latency_p95:.3f} s")
    c = result.config
    ax.set_title(f"End-to-end latency ({c.layers}×{c.width} mixes, mean hop delay {1 / c.mu:g} s)")
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("real messages")
    ax.legend()
    return _save(figure, path)


def entropy_curve(
    results: Sequence[Result],
    x: Callable[[SimConfig], float],
    xlabel: str,
    title: str,
    path: str | Path,
    *,
    theory: Callable[[float], float] | None = None,
    log_x: bool = False,
) -> Path:
    """Mean sender entropy (with the 5th–95th percentile band) against one parameter."""
    points = sorted(((x(r.config), r) for r in results), key=lambda p: p[0])
    xs = np.array([p[0] for p in points])
    mean = np.array([p[1].summary.entropy_mean for p in points])
    lo = np.array([np.percentile(p[1].entropy, 5) for p in points])
    hi = np.array([np.percentile(p[1].entropy, 95) for p in points])
    figure = Figure(figsize=_SIZE)
    ax = figure.add_subplot()
    ax.fill_between(xs, lo, hi, color="#4c72b0", alpha=0.2, label="5th–95th percentile")
    ax.plot(xs, mean, "o-", color="#4c72b0", label="mean entropy")
    if theory is not None:
        grid = np.geomspace(xs.min(), xs.max(), 200) if log_x else np.linspace(xs.min(), xs.max(), 200)
        ax.plot(grid, [theory(v) for v in grid], "--", color="#c44e52", label="theory")
    clients = {r.config.clients for r in results}
    if len(clients) == 1 and theory is None:
        ceiling = math.log2(clients.pop())
        ax.axhline(ceiling, color="grey", linestyle=":", label=f"log₂ N = {ceiling:.2f} (all clients)")
    right = ax.secondary_yaxis(
        "right", functions=(lambda h: np.exp2(h), lambda a: np.log2(np.maximum(a, 1e-300)))
    )
    right.set_ylabel("anonymity set 2^H")
    if log_x:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sender entropy H (bits)")
    ax.legend(loc="lower right")
    return _save(figure, path)


def mean_delay(config: SimConfig) -> float:
    return 1.0 / config.mu


def cover_rate(config: SimConfig) -> float:
    return config.lambda_l + config.lambda_d


def entropy_vs_delay(results: Sequence[Result], path: str | Path) -> Path:
    return entropy_curve(results, mean_delay, "mean delay per hop 1/μ (s)", "Sender entropy vs delay", path)


def entropy_vs_cover(results: Sequence[Result], path: str | Path) -> Path:
    return entropy_curve(
        results, cover_rate, "cover rate per client λ_L + λ_D (1/s)", "Sender entropy vs cover traffic", path
    )


def _parameter(name: str, config: SimConfig) -> float:
    return float(getattr(config, name))


def sweep_plots(results: Sequence[Result], axes: Sequence[str], directory: str | Path) -> list[Path]:
    """One entropy curve per swept parameter (the other axes held at their first value)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for axis in axes:
        others = [a for a in axes if a != axis]
        first = results[0].config
        chosen = [r for r in results if all(getattr(r.config, o) == getattr(first, o) for o in others)]
        values = {getattr(r.config, axis) for r in chosen}
        if len(values) < 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            continue
        written.append(
            entropy_curve(
                chosen,
                partial(_parameter, axis),
                axis,
                f"Sender entropy vs {axis}",
                directory / f"entropy_vs_{axis}.png",
            )
        )
    return written
