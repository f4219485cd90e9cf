"""`trimix simulate ...`: the anonymity simulator from the command line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm

from simulations.aggregate import aggregate_over_seeds
from simulations.broken_variants import VARIANTS
from simulations.comparison import compare
from simulations.config import (
    INTEGER_PARAMETERS,
    LAYER_LIST_PARAMETERS,
    OPTIONAL_PARAMETERS,
    PARAMETERS,
    STRING_PARAMETERS,
    SimConfig,
    coerce,
)
from simulations.emulate import emulate
from simulations.emulation_result import produced_by, result_document
from simulations.errors import ConfigError, SimulationError
from simulations.figures import standard_figures
from simulations.io import csv_text, write_csv, write_json, write_seed_csv
from simulations.plots import sweep_plots
from simulations.resources import GIB
from simulations.result import Result
from simulations.runner import run
from simulations.stats import format_estimate
from simulations.sweep import grid_points, parse_grid, sweep

F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    """One --flag per simulation parameter; a flag that is given overrides the config file."""
    for name, spec in reversed(PARAMETERS.items()):
        flag = "--" + name.replace("_", "-")
        default = spec.default if spec.default is not None else "auto"
        kind: Any
        metavar: str | None = None
        if name in STRING_PARAMETERS:
            kind = click.Choice(STRING_PARAMETERS[name])
        elif name in LAYER_LIST_PARAMETERS:
            kind, metavar, default = str, "L1,L2,…", "none"
        elif name in OPTIONAL_PARAMETERS:
            kind, metavar = str, "auto|COUNT" if name in INTEGER_PARAMETERS else "auto|SECONDS"
        elif name in INTEGER_PARAMETERS:
            kind = int
        else:
            kind = float
        func = click.option(
            flag,
            f"param_{name}",
            type=kind,
            default=None,
            metavar=metavar,
            help=f"{spec.metadata['help']} [default: {default}]",
        )(func)
    return func


def emulation_options(func: F) -> F:
    """--surb-acks/--no-surb-acks and --variant, for the commands that run the emulation."""
    func = click.option(
        "--variant",
        type=click.Choice(VARIANTS),
        default="faithful",
        help="Emulate a deliberately broken variant, to see the comparison fail. [default: faithful]",
    )(func)
    return click.option(
        "--surb-acks/--no-surb-acks",
        default=True,
        help="Send real SURB-ACKs in the emulation (left out of the log either way). [default: on]",
    )(func)


def _overrides(params: dict[str, Any]) -> dict[str, Any]:
    return {
        key.removeprefix("param_"): value
        for key, value in params.items()
        if key.startswith("param_") and value is not None
    }


def build_config(config_path: str | None, overrides: dict[str, Any]) -> SimConfig:
    """The config file (or the defaults), with the flags that were given applied on top."""
    try:
        base = SimConfig.load(config_path) if config_path else SimConfig()
        return SimConfig.from_dict(base.to_dict() | {k: coerce(k, v) for k, v in overrides.items()})
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        raise click.UsageError(f"cannot read {config_path}: {exc}") from exc


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


class _StageBar:
    """A tqdm bar per stage of a run, fed by the simulator's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm | None = None
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        if self._bar is None or stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, file=sys.stderr, leave=False, dynamic_ncols=True)
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _point_bar(enabled: bool, total: int, desc: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, dynamic_ncols=True)

    def update(done: int, _total: int) -> None:
        bar.n = done
        bar.refresh()

    return update, bar.close


def _headline(result: Result) -> str:
    """The main figures with their standard errors, each printed to the precision of its error."""
    s = result.summary
    return (
        f"{produced_by(result)}: sender entropy {format_estimate(s.entropy_mean, s.entropy_mean_se, 'bits')} "
        f"(anonymity set {s.anonymity_set:.3g}) over {s.measured_targets} messages; "
        f"forward per-packet entropy {format_estimate(s.forward_entropy_mean, s.forward_entropy_mean_se, 'bits')}; "
        f"δ(ε={result.config.epsilon:g}) = {format_estimate(s.delta, s.delta_se)}; "
        f"log-ratio {format_estimate(s.log_ratio_mean, s.log_ratio_mean_se)} "
        f"(p(B) = 0 for {s.log_ratio_zero_share:.3g} of pairs); "
        f"latency mean {format_estimate(s.latency_mean, s.latency_mean_se, 's')}, p95 {s.latency_p95:.3g} s; "
        f"cover {s.cover_per_real:.3g} packets per real packet; "
        f"corrupt {s.corrupt_mix_count} mixes, {s.corrupt_gateway_count} gateways; "
        f"window {s.window_start:.4g}–{s.window_end:.4g} s (± are standard errors over targets)"
    )


def _memory_limit(max_memory: float | None) -> float | None:
    return None if max_memory is None else max_memory * GIB


_MAX_MEMORY_HELP = "Refuse a run estimated to need more than this many GiB [default: the memory available]."


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="TOML file of parameters."
)
@config_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the result as JSON here.")
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the result as a one-row CSV here."
)
@click.option("--arrays", is_flag=True, help="Include per-message values in the JSON.")
@click.option(
    "--plot", "plot_dir", type=click.Path(file_okay=False), help="Write PNG figures into this directory."
)
@click.option(
    "--save-config", type=click.Path(dir_okay=False), help="Write the effective parameters as TOML here."
)
@click.option("--workers", type=click.IntRange(1), default=None, help="Processes for --plot's extra runs.")
@click.option("--max-memory", type=click.FloatRange(min=0, min_open=True), default=None, help=_MAX_MEMORY_HELP)
@click.option(
    "--emulate",
    "use_emulation",
    is_flag=True,
    help="Run the real mixnode and mixclient code under a virtual clock instead of the model "
    "(slow: bounded by the Sphinx crypto). The result says which produced it.",
)
@emulation_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary line.")
@click.pass_context
def simulate(
    ctx: click.Context,
    /,
    config_path: str | None,
    json_path: str | None,
    csv_path: str | None,
    arrays: bool,
    plot_dir: str | None,
    save_config: str | None,
    workers: int | None,
    max_memory: float | None,
    use_emulation: bool,
    surb_acks: bool,
    variant: str,
    quiet: bool,
    **params: Any,
) -> None:
    """Simulate a trimix network and measure its anonymity, latency and cover overhead.

    Parameters come from --config (TOML, see docs/SIMULATIONS.md) and the flags below, which
    override it. Without --json, the result is printed to standard output as JSON.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"config_path": config_path, "overrides": _overrides(params), "max_memory": max_memory}
        return
    config = build_config(config_path, _overrides(params))
    if use_emulation and plot_dir:
        raise click.UsageError("--plot draws model runs; it does not go with --emulate")
    if save_config:
        Path(save_config).write_text(config.to_toml(), encoding="utf-8")
    bar = _StageBar(_show_progress(quiet))
    started = time.perf_counter()
    try:
        if use_emulation:
            result = emulate(
                config, variant=variant, surb_acks=surb_acks, memory_limit=_memory_limit(max_memory)  # type: ignore[arg-type]
            )
        else:
            result = run(config, progress=bar, memory_limit=_memory_limit(max_memory))
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    document = json.dumps(result_document(result, arrays=arrays), indent=2, allow_nan=False)
    if json_path:
        Path(json_path).write_text(document + "\n", encoding="utf-8")
    if csv_path:
        write_csv([result], csv_path)
    if not json_path:
        click.echo(document)
    if plot_dir:
        update, close = _point_bar(_show_progress(quiet), 10, "figure runs")
        try:
            paths = standard_figures(result, plot_dir, workers=workers, progress=update)
        finally:
            close()
        if not quiet:
            for path in paths:
                click.echo(f"wrote {path}", err=True)
    if not quiet:
        click.echo(f"{_headline(result)}; ran in {elapsed:.2f} s", err=True)


@simulate.command("sweep")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file of base parameters.",
)
@config_options
@click.option(
    "--grid",
    "grid_specs",
    multiple=True,
    required=True,
    metavar="NAME=V1,V2,…",
    help="A swept parameter and its values (or NAME=START:STOP:COUNT); repeat for more axes.",
)
@click.option(
    "--workers", type=click.IntRange(1), default=None, help="Processes to run points in [default: CPU count]."
)
@click.option(
    "--dask-scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run the points on a Dask distributed cluster at this scheduler address (tcp://HOST:8786) "
    "instead of local processes.",
)
@click.option(
    "--seed-csv",
    "seed_csv_path",
    type=click.Path(dir_okay=False),
    help="Write one row per grid point over its seeds: each headline's mean and 95% interval.",
)
@click.option("--max-memory", type=click.FloatRange(min=0, min_open=True), default=None, help=_MAX_MEMORY_HELP)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Write the table here instead of standard output.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write every result as JSON here."
)
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False),
    help="Write entropy curves per swept parameter here.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def sweep_command(
    ctx: click.Context,
    /,
    config_path: str | None,
    grid_specs: tuple[str, ...],
    workers: int | None,
    dask_scheduler: str | None,
    seed_csv_path: str | None,
    max_memory: float | None,
    csv_path: str | None,
    json_path: str | None,
    plot_dir: str | None,
    quiet: bool,
    **params: Any,
) -> None:
    """Run every point of a parameter grid in parallel; one CSV row per point.

    Example: trimix simulate sweep --config sim.toml --grid mu=2,5,10 --grid layers=1,2,3
    --grid seed=1:5:5 (a seed axis gives every figure a 95% interval over seeds).
    """
    outer = ctx.obj or {"config_path": None, "overrides": {}, "max_memory": None}
    limit = _memory_limit(max_memory if max_memory is not None else outer["max_memory"])
    base = build_config(config_path or outer["config_path"], outer["overrides"] | _overrides(params))
    try:
        grid = parse_grid(grid_specs)
        points = grid_points(base, grid)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    update, close = _point_bar(_show_progress(quiet), len(points), "points")
    try:
        if dask_scheduler is not None:
            from simulations.dask_sweep import dask_sweep  # loads dask only when asked for

            results = dask_sweep(points, dask_scheduler, progress=update, memory_limit=limit)
        else:
            results = sweep(points, workers=workers, progress=update, memory_limit=limit)
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        close()
    if csv_path:
        write_csv(results, csv_path)
    else:
        click.echo(csv_text(results), nl=False)
    if json_path:
        write_json(results, json_path)
    aggregates = aggregate_over_seeds(results)
    if seed_csv_path:
        write_seed_csv(aggregates, seed_csv_path)
    if "seed" in grid and not quiet:
        varied = [name for name in grid if name != "seed"]
        for aggregate in aggregates:
            where = ", ".join(f"{n}={getattr(aggregate.config, n)}" for n in varied) or "base"
            click.echo(
                f"{where}: sender entropy {aggregate.figure('entropy_mean')} bits, "
                f"forward {aggregate.figure('forward_entropy_mean')} bits, "
                f"δ {aggregate.figure('delta')}, latency {aggregate.figure('latency_mean')} s "
                f"(mean ± 95% interval over {len(aggregate.seeds)} seeds)",
                err=True,
            )
    if plot_dir:
        for path in sweep_plots(results, list(grid), plot_dir):
            if not quiet:
                click.echo(f"wrote {path}", err=True)


@simulate.command("compare")
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False))
@config_options
@emulation_options
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write both results as a JSON list here."
)
@click.option("--check", is_flag=True, help="Exit with status 1 when a checked figure differs.")
@click.option("--max-memory", type=click.FloatRange(min=0, min_open=True), default=None, help=_MAX_MEMORY_HELP)
@click.pass_context
def compare_command(
    ctx: click.Context,
    /,
    config_path: str,
    surb_acks: bool,
    variant: str,
    json_path: str | None,
    check: bool,
    max_memory: float | None,
    **params: Any,
) -> None:
    """Run the model and the emulation on CONFIG and print their figures side by side.

    Each figure is shown ± its standard error; entropy is checked within 0.3 bits, mean
    latency and cover overhead within 5 % of the model (docs/SIMULATIONS.md, "Emulation").
    """
    outer = ctx.obj or {"overrides": {}, "max_memory": None}
    limit = _memory_limit(max_memory if max_memory is not None else outer["max_memory"])
    config = build_config(config_path, outer["overrides"] | _overrides(params))
    try:
        model = run(config, memory_limit=limit)
        started = time.perf_counter()
        emulation = emulate(config, variant=variant, surb_acks=surb_acks, memory_limit=limit)  # type: ignore[arg-type]
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from exc
    elapsed = time.perf_counter() - started
    comparison = compare(model, emulation)
    click.echo(comparison.table())
    stats = emulation.emulation
    if stats is not None:
        click.echo(
            f"emulation: {stats.packets_built} Sphinx packets built, {stats.unwraps} unwrapped, "
            f"{stats.packets_per_second:.0f} packets/s, {elapsed:.1f} s wall for "
            f"{stats.virtual_seconds:.1f} virtual s; lost {stats.lost}",
            err=True,
        )
    if json_path:
        documents = [result_document(model), result_document(emulation)]
        Path(json_path).write_text(json.dumps(documents, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    if check and not comparison.agrees:
        raise click.ClickException("the emulation differs from the model: " + ", ".join(comparison.failures()))
