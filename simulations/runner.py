"""One simulation run, end to end: generate the event log, pick targets, measure."""

from __future__ import annotations

import logging

import numpy as np

from simulations.config import SimConfig
from simulations.eventlog import EventLog
from simulations.metrics import Metrics, StageProgress, Window, measure, real_messages
from simulations.model import generate
from simulations.resources import available_memory, check_size
from simulations.result import Result

logger = logging.getLogger(__name__)


def measurement_window(config: SimConfig) -> Window:
    return Window(config.effective_warmup, config.effective_duration)


def choose_targets(log: EventLog, count: int, window: Window, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` real messages delivered within the window, uniformly at random, in packet order."""
    candidates = real_messages(log, window)
    if candidates.shape[0] <= count:
        if candidates.shape[0] < count:
            logger.warning(
                "only %d real messages delivered in the window; measuring all", candidates.shape[0]
            )
        return candidates
    return np.sort(rng.choice(candidates, size=count, replace=False))


def measure_log(
    config: SimConfig,
    log: EventLog,
    target_rng: np.random.Generator,
    *,
    progress: StageProgress | None = None,
) -> Metrics:
    """Every metric of ``config``'s run from its event log, whatever produced the log."""
    window = measurement_window(config)
    targets = choose_targets(log, config.targets, window, target_rng)
    return measure(
        log,
        targets,
        window,
        epsilon=config.epsilon,
        mass_floor=config.mass_floor,
        recognise_node_loops=config.node_loops == "recognised",
        progress=progress,
    )


HIGH_UTILISATION = 0.95


def run(
    config: SimConfig,
    *,
    progress: StageProgress | None = None,
    memory_limit: float | None = None,
) -> Result:
    """Simulate ``config`` and measure it. Deterministic for a given ``config.seed``.

    Before anything runs, the memory the run needs is estimated and the run refused
    (`TooLargeError`) if it exceeds ``memory_limit`` bytes: by default (None) the physical
    memory available now; ``math.inf`` turns the check off.
    """
    check_size(config, available_memory() if memory_limit is None else memory_limit)
    if config.utilisation >= HIGH_UTILISATION and config.workload == "poisson":
        logger.warning(
            "client queues run at utilisation %.3f: latency samples are strongly correlated and "
            "its mean converges slowly; read latency_mean with latency_mean_se",
            config.utilisation,
        )
    model_rng, target_rng = np.random.default_rng(config.seed).spawn(2)
    if progress is not None:
        progress("generating traffic", 0, 1)
    log = generate(config, model_rng)
    if progress is not None:
        progress("generating traffic", 1, 1)
    metrics = measure_log(config, log, target_rng, progress=progress)
    return Result.from_metrics(config, metrics)
