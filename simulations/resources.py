"""The size guard: how much memory a run will take, estimated before it starts.

A run holds every packet-hop of the event log in numpy columns and, while the adversary's view
is built, the sorted events: about 200 bytes per packet-hop at the peak. The traces then work
on batches of targets with a bounded number of entries, but one target's trace can reach every
packet-hop in its cone: the hops within ln(1/mass_floor)/μ seconds per hop of it, which with
long delays is most of the log. The estimate uses expected counts from the config (Poisson
streams over the whole horizon), so it is known before anything is drawn.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from simulations.config import SimConfig
from simulations.errors import SimulationError

BYTES_PER_HOP = 200
BYTES_PER_PACKET = 48
BYTES_PER_TRACE_ENTRY = 120
TRACE_WORKING_SET = 512 << 20  # what the batches of targets use when cones are small
GIB = float(1 << 30)


class TooLargeError(SimulationError):
    """A run would need more memory than allowed."""


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    packets: float  # expected packets over the horizon
    packet_hops: float  # expected rows of the event log
    bytes: float  # estimated peak memory of the run

    @property
    def gib(self) -> float:
        return self.bytes / GIB


def estimate_memory(config: SimConfig) -> MemoryEstimate:
    """Expected packets, packet-hops and peak bytes of a run of ``config``."""
    horizon = config.effective_duration
    client_packets = config.clients * (config.lambda_p + config.lambda_l + config.lambda_d) * horizon
    if config.workload == "poisson":
        rho = config.utilisation
        client_packets += config.clients * config.active_fraction * rho / (1.0 - rho)  # initial backlog
    mix_loops = config.mixes * config.lambda_m * horizon
    gateway_loops = config.gateways * config.lambda_m * horizon
    mix_loop_hops = config.layers + (1 if config.gateways > 0 else 0)
    hops = (
        client_packets * config.path_hops
        + mix_loops * mix_loop_hops
        + gateway_loops * (config.layers + 1)
    )
    packets = client_packets + mix_loops + gateway_loops
    cone_seconds = config.path_hops * (math.log(1.0 / config.mass_floor) / config.mu + config.link_latency)
    cone = min(hops, hops / horizon * cone_seconds)
    trace = max(TRACE_WORKING_SET, BYTES_PER_TRACE_ENTRY * cone)
    total = BYTES_PER_HOP * hops + BYTES_PER_PACKET * packets + trace
    return MemoryEstimate(packets=packets, packet_hops=hops, bytes=total)


def available_memory() -> int | None:
    """Physical memory available now, in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_size(config: SimConfig, limit: float | None) -> MemoryEstimate:
    """Raise TooLargeError, naming the estimate and how to shrink the run, if it exceeds
    ``limit`` bytes (None: no limit known)."""
    estimate = estimate_memory(config)
    if limit is not None and estimate.bytes > limit:
        queues = ""
        if config.duration is None and config.queue_relaxation * 10 >= config.effective_duration / 2:
            queues = (
                f"Client queues at utilisation {config.utilisation:.3g} need a long automatic window "
                f"(ten relaxation times of {config.queue_relaxation:.4g} s): set duration yourself "
                "and read latency_mean with its standard error, or lower message_rate. "
            )
        raise TooLargeError(
            f"this run needs about {estimate.gib:.1f} GiB of memory "
            f"({estimate.packet_hops:.3g} packet-hops over {config.effective_duration:.4g} s of traffic), "
            f"more than the {limit / GIB:.1f} GiB allowed. {queues}Shrink it: shorten duration or warmup "
            "(automatic values scale with the mean delay 1/mu and with targets), raise mu, "
            "or lower clients, cover rates (lambda_l, lambda_d, lambda_m) or targets; "
            "or allow more with --max-memory."
        )
    return estimate
