"""PNG figures with matplotlib (object API and the Agg canvas: no pyplot, no global state)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulations.config import SimConfig
from simulations.result import Result
from simulations.stats import t_interval

_SIZE = (6.0, 4.0)
_DPI = 100
_Z95 = 1.959963984540054  # two-sided 95 % quantile of the normal distribution


def _save(figure: Figure, path: str | Path) -> Path:
    if figure.canvas is None or not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    if figure.get_layout_engine() is None:
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


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One x value of a curve: the mean and the half-width of its 95 % interval."""

    x: float
    mean: float
    half_width: float


def curve_points(results: Sequence[Result], x: Callable[[SimConfig], float], figure: str) -> list[CurvePoint]:
    """The points of ``figure`` against ``x``: over seeds (runs sharing an x) the mean and its
    95 % Student-t interval; for a single run its value ± 1.96 standard errors over targets."""
    groups: dict[float, list[Result]] = {}
    for result in results:
        groups.setdefault(x(result.config), []).append(result)
    points = []
    for value in sorted(groups):
        runs = groups[value]
        if len(runs) > 1:
            mean, half = t_interval([getattr(r.summary, figure) for r in runs])
        else:
            mean = getattr(runs[0].summary, figure)
            half = _Z95 * getattr(runs[0].summary, f"{figure}_se")
        points.append(CurvePoint(value, mean, half))
    return points


def _interval(ax: Any, points: list[CurvePoint], colour: str, label: str, style: str) -> None:
    xs = np.array([p.x for p in points])
    mean = np.array([p.mean for p in points])
    half = np.nan_to_num(np.array([p.half_width for p in points]))
    ax.fill_between(xs, mean - half, mean + half, color=colour, alpha=0.25, linewidth=0)
    ax.errorbar(xs, mean, yerr=half, fmt=style, color=colour, capsize=3, label=label)


def entropy_curve(
    results: Sequence[Result],
    x: Callable[[SimConfig], float],
    xlabel: str,
    title: str,
    path: str | Path,
    *,
    theory: Callable[[float], float] | None = None,
    log_x: bool = False,
    note: str = "",
    forward: bool = True,
) -> Path:
    """Write `entropy_figure` as a PNG."""
    figure = entropy_figure(results, x, xlabel, title, theory=theory, log_x=log_x, note=note, forward=forward)
    return _save(figure, path)


def entropy_figure(
    results: Sequence[Result],
    x: Callable[[SimConfig], float],
    xlabel: str,
    title: str,
    *,
    theory: Callable[[float], float] | None = None,
    log_x: bool = False,
    note: str = "",
    forward: bool = True,
) -> Figure:
    """Mean sender entropy with its 95 % interval against one parameter (over seeds when several
    runs share an x value, else ± 1.96 standard errors over targets), the 5th–95th percentile of
    single messages as a light band, and, with ``forward``, the forward per-packet entropy.
    ``note`` says what was held fixed; the legend sits below the axes, clear of the bands."""
    points = curve_points(results, x, "entropy_mean")
    xs = np.array([p.x for p in points])
    by_x: dict[float, list[np.ndarray]] = {}
    for r in results:
        by_x.setdefault(x(r.config), []).append(r.entropy)
    lo = np.array([np.percentile(np.concatenate(by_x[v]), 5) for v in xs])
    hi = np.array([np.percentile(np.concatenate(by_x[v]), 95) for v in xs])
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = figure.add_subplot()
    ax.fill_between(xs, lo, hi, color="#4c72b0", alpha=0.08, label="sender entropy of single messages, 5th–95th percentile")
    _interval(ax, points, "#4c72b0", "sender entropy over clients, mean ± 95% interval", "o-")
    if forward:
        _interval(
            ax,
            curve_points(results, x, "forward_entropy_mean"),
            "#55a868",
            "forward per-packet entropy (Loopix simulator's metric), mean ± 95% interval",
            "s--",
        )
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
    ax.set_title(f"{title}\n{note}" if note else title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("entropy H (bits)")
    figure.legend(loc="outside lower center", fontsize=8, frameon=False)
    FigureCanvasAgg(figure)
    return figure


def mean_delay(config: SimConfig) -> float:
    return 1.0 / config.mu


def cover_rate(config: SimConfig) -> float:
    return config.lambda_l + config.lambda_d


def entropy_vs_delay(results: Sequence[Result], path: str | Path) -> Path:
    note = fixed_values(results[0].config, [], ("mu",))
    return entropy_curve(results, mean_delay, "mean delay per hop 1/μ (s)", "Entropy vs delay", path, note=note)


def entropy_vs_cover(results: Sequence[Result], path: str | Path) -> Path:
    note = fixed_values(results[0].config, [], ("lambda_l", "lambda_d"))
    return entropy_curve(
        results, cover_rate, "cover rate per client λ_L + λ_D (1/s)", "Entropy vs cover traffic", path, note=note
    )


def _parameter(name: str, config: SimConfig) -> float:
    return float(getattr(config, name))


FIXED_SHOWN: tuple[str, ...] = ("clients", "layers", "width", "gateways", "mu", "lambda_p", "lambda_l", "lambda_d", "lambda_m")


def fixed_values(config: SimConfig, held: Sequence[str], swept: Sequence[str]) -> str:
    """What a curve holds fixed: the other grid axes at their values, then the network's main
    parameters (skipping the swept ones)."""
    main = list(FIXED_SHOWN)
    if config.workload == "poisson":
        main += ["workload", "message_rate"]
    main += [n for n in ("corrupt_fraction", "corrupt_mixes", "corrupt_layers", "corrupt_gateways") if getattr(config, n)]
    if config.node_loops != "indistinguishable":
        main.append("node_loops")
    shown = list(held) + [n for n in main if n not in held and n not in swept]
    parts = [f"{name}={_short(getattr(config, name))}" for name in shown]
    lines, line = [], "fixed: "
    for part in parts:
        if len(line) + len(part) > 70:
            lines.append(line.rstrip(", "))
            line = ""
        line += part + ", "
    lines.append(line.rstrip(", "))
    return "\n".join(lines)


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "+".join(map(str, value)) or "none"
    return str(value)


def sweep_plots(results: Sequence[Result], axes: Sequence[str], directory: str | Path) -> list[Path]:
    """One entropy curve per swept numeric parameter; the other axes are held at their first
    value (named on the plot), and a seed axis gives each point its mean ± 95 % interval."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    seeds = len({r.config.seed for r in results}) if "seed" in axes else 1
    for axis in axes:
        if axis == "seed":
            continue
        others = [a for a in axes if a not in (axis, "seed")]
        first = results[0].config
        chosen = [r for r in results if all(getattr(r.config, o) == getattr(first, o) for o in others)]
        values = {getattr(r.config, axis) for r in chosen}
        if len(values) < 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            continue
        over = f"; mean ± 95% interval over {seeds} seeds" if seeds > 1 else "; ± 1.96 s.e. over targets"
        written.append(
            entropy_curve(
                chosen,
                partial(_parameter, axis),
                axis,
                f"Entropy vs {axis}{over}",
                directory / f"entropy_vs_{axis}.png",
                note=fixed_values(first, others, (axis,)),
            )
        )
    return written
