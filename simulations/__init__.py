"""Anonymity simulator for researchers.

    >>> from simulations import SimConfig, run
    >>> result = run(SimConfig(layers=3, width=3, clients=100, mu=10.0))
    >>> result.summary.entropy_mean      # bits, mean over target messages

`run` generates an event log with the discrete-event model (`simulations.model`) and measures
it (`simulations.metrics.measure`), which reads nothing but the log; see docs/SIMULATIONS.md.
"""

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
from simulations.result import Result
from simulations.runner import run
from simulations.sweep import grid_points, parse_grid, sweep

__all__ = [
    "ConfigError",
    "EventLog",
    "EventLogError",
    "Metrics",
    "NoTargetsError",
    "NodeRole",
    "PacketKind",
    "Result",
    "SimConfig",
    "SimulationError",
    "Summary",
    "Window",
    "generate",
    "grid_points",
    "measure",
    "parse_grid",
    "run",
    "sweep",
]
