"""Anonymity simulator for researchers.

    >>> from simulations import SimConfig, run
    >>> result = run(SimConfig(layers=3, width=3, clients=100, mu=10.0))
    >>> result.summary.entropy_mean      # bits, mean over target messages

`run` generates an event log with the discrete-event model (`simulations.model`) and measures
it (`simulations.metrics.measure`), which reads nothing but the log; see docs/SIMULATIONS.md.
Sweeps run in local processes (`sweep`) or on a Dask cluster (`simulations.dask_sweep`,
imported on demand); `aggregate_over_seeds` gives intervals over a seed axis.
"""

from simulations.aggregate import SeedAggregate, aggregate_over_seeds
from simulations.config import SimConfig
from simulations.errors import (
    ConfigError,
    EventLogError,
    NoTargetsError,
    SimulationError,
)
from simulations.eventlog import EventLog, NodeRole, PacketKind
from simulations.metrics import Metrics, Summary, Window, measure
from simulations.model import generate
from simulations.resources import MemoryEstimate, TooLargeError, estimate_memory
from simulations.result import Result
from simulations.runner import run
from simulations.sweep import grid_points, parse_grid, sweep

__all__ = [
    "ConfigError",
    "EventLog",
    "EventLogError",
    "MemoryEstimate",
    "Metrics",
    "NoTargetsError",
    "NodeRole",
    "PacketKind",
    "Result",
    "SeedAggregate",
    "SimConfig",
    "SimulationError",
    "Summary",
    "TooLargeError",
    "Window",
    "aggregate_over_seeds",
    "estimate_memory",
    "generate",
    "grid_points",
    "measure",
    "parse_grid",
    "run",
    "sweep",
]
