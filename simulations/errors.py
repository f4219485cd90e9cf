"""Exceptions of the simulator."""

from __future__ import annotations


class SimulationError(Exception):
    """Base class of the simulator's errors."""


class EventLogError(SimulationError, ValueError):
    """An event log's columns are inconsistent."""


class NoTargetsError(SimulationError):
    """No real message was delivered in the measurement window."""


class ConfigError(SimulationError, ValueError):
    """A simulation parameter is missing, unknown, of the wrong type or out of range."""
