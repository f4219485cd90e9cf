"""Speed of the anonymity simulator. Prints one JSON line.

small: a stratified network of 3 layers × 3 mixes (and 3 gateways), 100 clients each sending one
       message per second, mean delay 0.1 s per hop, no cover, 1,000 target messages; the whole
       run (traffic, adversary's view, traces, metrics) on one core. Limit: 5 s (the reference
       SimPy simulator of the Loopix authors takes 87 s on the same machine).
large: 1,000 mixes (4 layers × 250) and 20 gateways, 5,000 clients with loop and drop cover and
       mix loops, about 10 million packet-hops, 1,000 target messages. It runs in a child process
       whose address space is capped at 4 GiB, so that the figure of its peak resident memory
       is its own. Limits: 60 s and 4 GiB.

emulation: the 3 × 3 network (3 gateways) with 100 clients at the consensus defaults (1/μ = 50 ms,
       λ_P = 2, λ_L = λ_D = 0.5, λ_M = 1 per second), saturated, for 600 virtual seconds, run by
       the real node and client code (`simulations.emulate`, SURB-ACKs on) and measured like the
       model; "emulation_packets_per_second" is Sphinx packets built per wall-clock second (the
       run is bounded by the Sphinx crypto), with its wall time and the model's figures beside it.
       No limit: the figure is reported. `--emulation-seconds N` shortens the run;
       `--emulation-only` skips the two model benchmarks.

The model runs with every metric on, the forward per-packet entropy included; "stage_seconds" splits
the time by stage and "forward_seconds" is what the forward metric adds.

Usage: .venv/bin/python benchmarks/simulations.py
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file is named like
# the package it measures: take the folder out so that `simulations` is the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from simulations import SimConfig, run
from simulations.comparison import compare
from simulations.emulate import emulate

GIB = 1 << 30


def small_config() -> SimConfig:
    return SimConfig(
        clients=100,
        layers=3,
        width=3,
        gateways=3,
        mu=10.0,
        lambda_p=1.0,
        workload="saturated",
        targets=1000,
        seed=1,
    )


def large_config() -> SimConfig:
    clients, layers, width, mu = 5000, 4, 250, 10.0
    lambda_p, lambda_l, lambda_d, lambda_m = 1.0, 0.5, 0.5, 1.0
    hops_per_second = clients * (lambda_p + lambda_l + lambda_d) * (
        layers + 2
    ) + layers * width * lambda_m * (layers - 1)
    return SimConfig(
        clients=clients,
        layers=layers,
        width=width,
        gateways=20,
        mu=mu,
        lambda_p=lambda_p,
        lambda_l=lambda_l,
        lambda_d=lambda_d,
        lambda_m=lambda_m,
        # 1% above the expected count, so that the Poisson draws reach 10 million hops.
        duration=round(1.01 * 10_000_000 / hops_per_second, 1),
        warmup=10.0,
        targets=1000,
        seed=1,
    )


class StageClock:
    """Seconds spent in each stage of a run, from the simulator's progress reports."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage = ""
        self._since = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.stop()
            self._stage = stage

    def stop(self) -> None:
        now = time.perf_counter()
        if self._stage:
            self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + now - self._since
        self._since = now


def measure(config: SimConfig) -> dict[str, object]:
    clock = StageClock()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run(config, progress=clock, memory_limit=math.inf)
    clock.stop()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    s = result.summary
    return {
        "seconds": round(seconds, 3),
        # CPU time of this process: on the shared machine, wall time also counts waiting for a core.
        "cpu_seconds": round(cpu_seconds, 3),
        "forward_seconds": round(clock.seconds.get("tracing forward", 0.0), 3),
        "stage_seconds": {stage: round(t, 3) for stage, t in clock.seconds.items()},
        "mixes": config.mixes,
        "clients": config.clients,
        "packet_hops": s.packet_hops,
        "targets": s.measured_targets,
        "entropy_mean_bits": round(s.entropy_mean, 4),
        "forward_entropy_mean_bits": round(s.forward_entropy_mean, 4),
        "delta": round(s.delta, 4),
        "log_ratio_mean": round(s.log_ratio_mean, 4),
        "latency_mean_s": round(s.latency_mean, 4),
        "cover_per_real": round(s.cover_per_real, 4),
    }


def emulation_config(seconds: float) -> SimConfig:
    return SimConfig(
        clients=100,
        layers=3,
        width=3,
        gateways=3,
        mu=20.0,
        lambda_p=2.0,
        lambda_l=0.5,
        lambda_d=0.5,
        lambda_m=1.0,
        workload="saturated",
        duration=seconds,
        targets=1000,
        seed=1,
    )


def measure_emulation(seconds: float) -> dict[str, object]:
    config = emulation_config(seconds)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = emulate(config)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    stats = result.emulation
    assert stats is not None
    model = run(config, memory_limit=math.inf)
    figures = {f.name: f for f in compare(model, result).figures}

    def pair(name: str) -> dict[str, float]:
        f = figures[name]
        return {
            "model": round(f.model, 4),
            "model_se": round(f.model_se, 4),
            "emulation": round(f.emulation, 4),
            "emulation_se": round(f.emulation_se, 4),
        }

    return {
        "virtual_seconds": round(stats.virtual_seconds, 2),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "packets_built": stats.packets_built,
        "unwraps": stats.unwraps,
        "packets_per_second": round(stats.packets_per_second, 1),
        "unwraps_per_second": round(stats.unwraps_per_second, 1),
        "acks_sent": stats.acks_sent,
        "acks_received": stats.acks_received,
        "lost": stats.lost,
        "entropy_mean_bits": pair("entropy_mean"),
        "latency_mean_s": pair("latency_mean"),
        "cover_per_real": pair("cover_per_real"),
    }


def large_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * GIB, 4 * GIB))
    figures = measure(large_config())
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))


def main() -> None:
    # One core: no BLAS threads (the simulator barely uses BLAS, but be explicit).
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    seconds = float(sys.argv[sys.argv.index("--emulation-seconds") + 1]) if "--emulation-seconds" in sys.argv else 600.0
    emulated = measure_emulation(seconds)
    if "--emulation-only" in sys.argv:
        print(
            json.dumps(
                {
                    "benchmark": "simulations",
                    "emulation_3x3": emulated,
                    "emulation_packets_per_second": emulated["packets_per_second"],
                }
            )
        )
        return
    small = measure(small_config())
    child = subprocess.run(
        [sys.executable, __file__, "--large-child"], capture_output=True, text=True, env=env, check=False
    )
    if child.returncode != 0:
        large: dict[str, object] = {
            "error": child.stderr.strip().splitlines()[-1] if child.stderr else "failed"
        }
    else:
        large = json.loads(child.stdout.strip().splitlines()[-1])
    ok = (
        "error" not in large
        and float(small["seconds"]) <= 5.0  # type: ignore[arg-type]
        and float(large["seconds"]) <= 60.0  # type: ignore[arg-type]
        and int(large["packet_hops"]) >= 10_000_000  # type: ignore[call-overload]
        and float(large["peak_rss_mib"]) <= 4096.0  # type: ignore[arg-type]
    )
    print(
        json.dumps(
            {
                "benchmark": "simulations",
                "small_3x3": small,
                "large_1000_mixes": large,
                "emulation_3x3": emulated,
                "emulation_packets_per_second": emulated["packets_per_second"],
                "limits": {"small_seconds": 5.0, "large_seconds": 60.0, "large_memory_mib": 4096},
                "within_limits": ok,
            }
        )
    )


if __name__ == "__main__":
    if "--large-child" in sys.argv:
        large_child()
    else:
        main()
