"""Emulation: the real node and client code, measured by the simulator's own metrics.

    >>> from simulations import SimConfig
    >>> from simulations.emulate import emulate
    >>> result = emulate(SimConfig(clients=20, duration=5.0, mu=20.0))
    >>> result.produced_by, result.summary.entropy_mean

`emulate(config)` builds the network `config` describes (`emulated_network`: real keys,
descriptors and consensus), runs every node (`emulated_node`: the `mixnode` cores) and every
client (`emulated_client`: the `mixclient` cores) in one process under Trio's virtual clock
(`trio.testing.MockClock` with autojump: time stands still while Python computes and jumps to
the next deadline when every task waits), with in-memory links (`emulated_links`), and
records what the links carry in a `Wiretap`. Clients send over [0, duration]; the network
then drains. The log goes through the same `choose_targets` and `measure` as the model's, and
the result has the model's schema plus ``produced_by`` and `EmulationStats`.

Randomness: the topology (which nodes are corrupt, clients' gateways) and the target sample
are drawn exactly as `simulations.run` draws them for the same seed; keys, routes, delays and
streams come from per-client and per-node `random.Random` instances seeded from it, so the
log does not depend on the order Trio runs tasks in: the same config gives the same log.

SURB-ACKs run for real by default (the exit gateway answers, the ACK crosses the mixes back to
the sender's mailbox, the sender's `AckTracker` clears it), but the log leaves them out, as it
leaves out everything the model does not have: the adversary is credited with recognising them
(the model's view of node loops with ``node_loops = "recognised"``). Since pools are
infinite-server queues, packets not in the log change nothing of what is in it.
``surb_acks=False`` sends the same packets with an all-zero SURB-ACK field (the layout is
unchanged) and saves the crypto of the ACKs.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import trio
import trio.testing

from mixnode.packet_pipeline import PacketPipeline
from simulations.broken_variants import (
    VARIANTS,
    NoDelayPipeline,
    RealOnTopClient,
    Variant,
)
from simulations.config import SimConfig
from simulations.emulated_client import ClientDriver
from simulations.emulated_links import EmulatedLinks
from simulations.emulated_network import EmulatedNetwork, build_network, check_emulable
from simulations.emulated_node import NodeDriver
from simulations.emulation_result import EmulationResult, EmulationStats
from simulations.errors import ConfigError
from simulations.resources import available_memory, check_size
from simulations.runner import measure_log
from simulations.topology import build_topology
from simulations.traffic import poisson_streams, stationary_backlog
from simulations.wiretap import Wiretap

logger = logging.getLogger(__name__)

DRAIN_POLL = 0.05
"""Virtual seconds between checks that every traced packet has arrived, after the horizon."""


def emulate(
    config: SimConfig,
    *,
    variant: Variant = "faithful",
    surb_acks: bool = True,
    memory_limit: float | None = None,
) -> EmulationResult:
    """Run the real cores on the network of `config` and measure the run like the model's.

    `memory_limit` (bytes; default the memory available) refuses a run whose event log and
    traces would not fit, as `simulations.run` does (`TooLargeError`): the log is the model's.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown emulation variant {variant!r}; one of {', '.join(VARIANTS)}")
    check_emulable(config)
    check_size(config, available_memory() if memory_limit is None else memory_limit)
    model_rng, target_rng = np.random.default_rng(config.seed).spawn(2)
    topo_rng, traffic_rng, _, _ = model_rng.spawn(4)
    topology = build_topology(config, topo_rng)
    # A third child of the seed, independent of the model's two (runs of both share a seed).
    seeded = random.Random(int(np.random.default_rng(config.seed).spawn(3)[2].integers(1 << 62)))
    network = build_network(config, topology, seeded)
    horizon = config.effective_duration
    times = _message_times(config, horizon, traffic_rng)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trimix-emulation-") as scratch:
        run = _Run(config, network, variant, surb_acks, horizon, times, seeded, Path(scratch))
        trio.run(run.main, clock=trio.testing.MockClock(autojump_threshold=0))
    wall = time.perf_counter() - started
    log = run.tap.event_log()
    log.validate()
    metrics = measure_log(config, log, target_rng)
    return EmulationResult.from_metrics(config, metrics, emulation=run.stats(wall))


def _message_times(config: SimConfig, horizon: float, rng: np.random.Generator) -> list[list[float]]:
    """Creation times of every client's real messages (poisson workload), a stationary backlog
    at time 0 included, drawn as the model draws them; empty lists when saturated."""
    times: list[list[float]] = [[] for _ in range(config.clients)]
    if config.workload == "saturated":
        return times
    n = config.clients
    active = np.sort(rng.choice(n, size=max(1, round(config.active_fraction * n)), replace=False))
    owner, when = poisson_streams(active.shape[0], config.message_rate, horizon, rng)
    backlog_owner, backlog_time = stationary_backlog(active, config.utilisation, config.lambda_p, rng)
    for client, at in zip(np.concatenate([backlog_owner, active[owner]]), np.concatenate([backlog_time, when])):
        times[int(client)].append(float(at))
    return times


class _Run:
    """One emulation inside `trio.run`: the drivers, and their counts afterwards."""

    def __init__(
        self,
        config: SimConfig,
        network: EmulatedNetwork,
        variant: Variant,
        surb_acks: bool,
        horizon: float,
        message_times: list[list[float]],
        rng: random.Random,
        scratch: Path,
    ) -> None:
        self.config = config
        self.horizon = horizon
        self.surb_acks = surb_acks
        self.variant = variant
        self.tap = Wiretap(config.clients, network.topology, horizon)
        self.links = EmulatedLinks(config.link_latency)
        mailboxes = {client.mailbox_id: client.index for client in network.clients}
        rate = config.clients * (config.lambda_p + config.lambda_l + config.lambda_d) + config.lambda_m
        expected = int(2 * rate * horizon * config.path_hops * (2 if surb_acks else 1) / max(1, config.mixes))
        pipeline = NoDelayPipeline if variant == "no_delay" else PacketPipeline
        self.nodes = [
            NodeDriver(
                node,
                network,
                self.links,
                self.tap,
                mailboxes=mailboxes,
                replay_directory=scratch / f"node-{index}",
                expected_packets=expected,
                horizon=horizon,
                rng=random.Random(rng.randbytes(16)),
                surb_acks=surb_acks,
                pipeline_factory=pipeline,
            )
            for index, node in enumerate(network.nodes)
        ]
        client_class = RealOnTopClient if variant == "real_on_top" else ClientDriver
        self.clients = [
            client_class(
                identity,
                network,
                self.links,
                self.tap,
                rng=random.Random(rng.randbytes(16)),
                horizon=horizon,
                saturated=config.workload == "saturated",
                message_times=message_times[identity.index],
                surb_acks=surb_acks,
            )
            for identity in network.clients
        ]
        self.drain_limit = horizon + 4 * (config.path_hops + 1) * (20.0 / config.mu + config.link_latency) + 10.0
        self.finished_at = horizon

    async def main(self) -> None:
        if trio.current_time() != 0.0:
            raise RuntimeError("the emulation needs a virtual clock that starts at 0")
        try:
            async with trio.open_nursery() as network:
                await network.start(self.links.run)
                for node in self.nodes:
                    await network.start(node.run)
                async with trio.open_nursery() as senders:
                    for client in self.clients:
                        await senders.start(client.run)
                    await trio.sleep_until(self.horizon)
                    # Clients stop sending at the horizon; let what they sent (and its ACKs) arrive.
                    while self._busy() and trio.current_time() < self.drain_limit:
                        await trio.sleep(DRAIN_POLL)
                    self.finished_at = trio.current_time()
                    senders.cancel_scope.cancel()
                network.cancel_scope.cancel()
        finally:
            for node in self.nodes:
                node.close()
        if self.tap.in_flight:
            logger.warning("%d packets were still in flight when the emulation stopped", self.tap.in_flight)

    def _busy(self) -> bool:
        """Whether a packet is still on its way: traced, in transit, waiting in an inbox or held."""
        return bool(
            self.tap.in_flight
            or self.links.in_transit
            or any(len(node.scheduler.scheduler) or node.backlog for node in self.nodes)
            or any(client.backlog for client in self.clients)
        )

    def stats(self, wall: float) -> EmulationStats:
        dropped: Counter[str] = Counter()
        for node in self.nodes:
            dropped.update(node.dropped)
            dropped.update({k: v for k, v in node.scheduler.scheduler.drops.items() if v})
        dropped.update(self.links.refused)
        for client in self.clients:
            dropped.update(client.counts.refused)
        acks_sent = sum(node.acks_sent for node in self.nodes)
        built = self.tap.emitted_count + acks_sent
        unwraps = sum(node.unwrapped for node in self.nodes)
        return EmulationStats(
            variant=self.variant,
            surb_acks=self.surb_acks,
            wall_seconds=wall,
            virtual_seconds=self.finished_at,
            packets_emitted=self.tap.emitted_count,
            packets_built=built,
            unwraps=unwraps,
            packets_per_second=built / wall if wall > 0 else float("nan"),
            unwraps_per_second=unwraps / wall if wall > 0 else float("nan"),
            lost=self.tap.lost,
            dropped=dict(sorted(dropped.items())),
            real_sent=sum(c.counts.real_sent for c in self.clients),
            delivered_messages=sum(c.counts.delivered for c in self.clients),
            acks_sent=acks_sent,
            acks_received=sum(c.counts.acks_received for c in self.clients),
            retransmissions=sum(c.counts.retransmissions for c in self.clients),
            failed_messages=sum(c.counts.failed for c in self.clients),
            drops_discarded=sum(node.discarded for node in self.nodes),
        )
