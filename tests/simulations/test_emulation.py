"""The emulation (real node and client cores under a virtual clock) against the model.

The two headline tests run the 3 × 3 network of 100 clients at the consensus defaults
(1/μ = 50 ms, λ_P = 2/s; with cover λ_L = λ_D = 0.5/s and λ_M = 1/s), saturated. The
emulation is bounded by the Sphinx crypto (about 1.2 s of wall time per virtual second with
cover on the shared machine), so it runs a shorter horizon than the benchmark's 600 s:

* with cover, 40 virtual seconds: about 8,000 real and 4,500 cover packets, so the cover
  overhead has a standard error of about 1.9 % (Poisson counts), the tolerance of 5 % is
  2.7 of them; latency (about 6,000 messages in the window) about 1 %, entropy about 0.01 bits
  against a tolerance of 0.3;
* without cover, 15 virtual seconds: latency about 1.2 %, entropy about 0.01 bits; no cover
  packets at all in either.

The model runs the same configuration over 400 s (the same network and workload, only a
longer run), so that its own error is small beside the emulation's. SURB-ACKs are off in
these two runs (same packets, all-zero SURB-ACK field): the log leaves ACKs out either way,
and `test_surb_acks_all_come_back` runs them for real.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simulations import SimConfig, run
from simulations.comparison import RELATIVE_TOLERANCE, compare
from simulations.emulate import emulate
from simulations.emulated_network import consensus_parameters
from simulations.errors import ConfigError
from trimix.cli import main

NETWORK = {"clients": 100, "layers": 3, "width": 3, "gateways": 3, "mu": 20.0, "lambda_p": 2.0}
COVER = {"lambda_l": 0.5, "lambda_d": 0.5, "lambda_m": 1.0}
NO_COVER = {"lambda_l": 0.0, "lambda_d": 0.0, "lambda_m": 0.0}
MODEL_DURATION = 400.0


def config(duration: float, seed: int, **traffic: float) -> SimConfig:
    return SimConfig(**NETWORK, **traffic, duration=duration, targets=500, seed=seed)


def test_with_cover_the_emulation_matches_the_model() -> None:
    emulated = emulate(config(40.0, 3, **COVER), surb_acks=False)
    model = run(config(MODEL_DURATION, 3, **COVER))
    comparison = compare(model, emulated)
    assert comparison.agrees, comparison.table()
    cover = comparison.figure("cover_per_real")
    # The run is long enough for the tolerance to mean something.
    assert cover.tolerance is not None and cover.tolerance > 2.5 * cover.combined_se
    assert cover.model == pytest.approx((0.5 + 0.5) / 2.0 + 12 * 1.0 / 200.0, rel=0.05)
    stats = emulated.emulation
    assert stats is not None
    assert stats.lost == 0 and stats.dropped == {}
    assert stats.delivered_messages == stats.real_sent  # every real message opened by its recipient
    assert emulated.produced_by == "emulation"


def test_without_cover_the_emulation_matches_the_model() -> None:
    emulated = emulate(config(15.0, 4, **NO_COVER), surb_acks=False)
    model = run(config(MODEL_DURATION, 4, **NO_COVER))
    comparison = compare(model, emulated)
    assert comparison.agrees, comparison.table()
    assert emulated.summary.cover_per_real == 0.0
    assert emulated.summary.latency_mean == pytest.approx(5 * 0.05, rel=RELATIVE_TOLERANCE)


def test_a_client_sending_real_packets_on_top_of_its_payload_stream_is_caught() -> None:
    emulated = emulate(config(4.0, 5, **NO_COVER), variant="real_on_top", surb_acks=False)
    model = run(config(MODEL_DURATION, 5, **NO_COVER))
    comparison = compare(model, emulated)
    assert not comparison.agrees
    assert "cover_per_real" in comparison.failures()
    # The payload stream sends only drops now: one per real packet, on average (about 800 of
    # each in 4 s: a standard error of 0.05).
    assert emulated.summary.cover_per_real == pytest.approx(1.0, abs=0.2)


def test_nodes_that_ignore_the_delays_are_caught() -> None:
    emulated = emulate(config(5.0, 6, **NO_COVER), variant="no_delay", surb_acks=False)
    model = run(config(MODEL_DURATION, 6, **NO_COVER))
    comparison = compare(model, emulated)
    assert set(comparison.failures()) >= {"entropy_mean", "latency_mean"}
    assert emulated.summary.latency_mean == 0.0


SMALL = {
    "clients": 12,
    "mu": 20.0,
    "lambda_p": 2.0,
    "lambda_l": 0.5,
    "lambda_d": 0.5,
    "lambda_m": 1.0,
    "warmup": 0.5,
}


def test_surb_acks_all_come_back() -> None:
    emulated = emulate(SimConfig(**SMALL, duration=3.0, targets=50, seed=7), surb_acks=True)
    stats = emulated.emulation
    assert stats is not None
    assert stats.real_sent > 50
    assert stats.acks_sent == stats.real_sent  # the exit gateway answered every stored packet
    assert stats.acks_received == stats.acks_sent  # each crossed the mixes back to its sender
    assert stats.retransmissions == 0 and stats.failed_messages == 0
    assert stats.delivered_messages == stats.real_sent
    # The ACKs ran through the nodes but are not in the log.
    assert stats.packets_built == stats.packets_emitted + stats.acks_sent
    assert emulated.summary.packets == stats.packets_emitted


def test_the_same_seed_gives_the_same_run() -> None:
    small = SimConfig(**SMALL, duration=2.0, targets=40, seed=8)
    first, second = emulate(small, surb_acks=False), emulate(small, surb_acks=False)
    assert np.array_equal(first.latency, second.latency)
    assert np.array_equal(first.entropy, second.entropy)
    other = emulate(small.replace(seed=9), surb_acks=False)
    assert not np.array_equal(first.latency, other.latency)


def test_link_latency_is_added_on_every_link() -> None:
    # Saturated, no queueing: the network latency is five holds and six links.
    emulated = emulate(
        SimConfig(**SMALL, link_latency=0.02, duration=3.0, targets=50, seed=10), surb_acks=False
    )
    assert emulated.summary.network_latency_mean == pytest.approx(5 * 0.05 + 6 * 0.02, rel=0.15)
    stats = emulated.emulation
    assert stats is not None and stats.lost == 0


def test_poisson_workload_queues_real_messages_in_payload_slots() -> None:
    small = SimConfig(**SMALL, workload="poisson", message_rate=0.5, duration=4.0, targets=20, seed=11)
    emulated = emulate(small, surb_acks=False)
    stats = emulated.emulation
    assert stats is not None and stats.real_sent > 0
    # Payload slots without a queued message send drops: (λ_P − rate + λ_L + λ_D + …)/rate.
    assert emulated.summary.cover_per_real > 2.0
    assert emulated.summary.latency_mean > emulated.summary.network_latency_mean


def test_configs_the_emulation_cannot_run_exactly_are_refused() -> None:
    with pytest.raises(ConfigError, match="gateways"):
        emulate(SimConfig(gateways=0, duration=10.0))
    with pytest.raises(ConfigError, match="whole number"):
        consensus_parameters(SimConfig(mu=3.0))
    with pytest.raises(ConfigError, match="whole number"):
        consensus_parameters(SimConfig(lambda_p=0.0005))
    with pytest.raises(ConfigError, match="variant"):
        emulate(SimConfig(duration=10.0), variant="sloppy")  # type: ignore[arg-type]


def test_cli_emulate_and_compare(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(SimConfig(**SMALL, duration=2.0, targets=30, seed=12).to_toml(), encoding="utf-8")
    runner = CliRunner()
    model = runner.invoke(main, ["simulate", "--config", str(path), "--quiet"])
    emulated = runner.invoke(main, ["simulate", "--config", str(path), "--emulate", "--no-surb-acks", "--quiet"])
    assert model.exit_code == 0 and emulated.exit_code == 0, emulated.output
    model_doc, emulated_doc = json.loads(model.stdout), json.loads(emulated.stdout)
    assert model_doc["produced_by"] == "model" and emulated_doc["produced_by"] == "emulation"
    assert set(emulated_doc) - {"emulation"} == set(model_doc)
    assert set(emulated_doc["summary"]) == set(model_doc["summary"])

    out = tmp_path / "both.json"
    compared = runner.invoke(main, ["simulate", "compare", str(path), "--no-surb-acks", "--json", str(out)])
    assert compared.exit_code == 0, compared.output
    lines = compared.stdout.splitlines()
    assert lines[0].split()[:3] == ["figure", "model", "emulation"]
    entropy_row = next(line for line in lines if line.startswith("entropy_mean"))
    assert entropy_row.count("±") >= 3  # model, emulation and difference with their errors
    documents = json.loads(out.read_text())
    assert [d["produced_by"] for d in documents] == ["model", "emulation"]
    assert not math.isnan(documents[1]["summary"]["entropy_mean"])

    broken = runner.invoke(
        main, ["simulate", "compare", str(path), "--no-surb-acks", "--variant", "no_delay", "--check"]
    )
    assert broken.exit_code == 1
    assert "differs" in broken.output


def test_the_wiretap_writes_the_models_log_columns() -> None:
    from simulations.eventlog import PacketKind
    from simulations.topology import build_topology
    from simulations.wiretap import Wiretap

    small = SimConfig(clients=4, layers=1, width=1, gateways=1, duration=10.0)
    topology = build_topology(small, np.random.default_rng(0))
    ingress, mix, egress = 0, 1, 2
    tap = Wiretap(4, topology, 10.0)
    real = tap.emitted(PacketKind.REAL, 0, 1, 0.5, 1.0)
    drop = tap.emitted(PacketKind.DROP, 2, -1, 1.0, 1.0)
    lost = tap.emitted(PacketKind.LOOP, 3, 3, 2.0, 2.0)
    for trace in (real, drop):
        for node, t_in, t_out in ((ingress, 1.0, 1.2), (mix, 1.2, 1.5), (egress, 1.5, 1.9)):
            tap.entered(trace, node, t_in)
            tap.left(trace, t_out)
    tap.received(real, 1.95)
    tap.received(drop, 5.0)  # a drop ends where its last node discards it
    tap.entered(lost, ingress, 2.0)
    assert tap.in_flight == 1 and tap.lost == 1
    log = tap.event_log()
    log.validate()
    assert log.packets == 2 and log.rows == 6
    assert log.kind.tolist() == [PacketKind.REAL, PacketKind.DROP]
    assert log.received.tolist() == [1.95, 1.9]
    assert log.created.tolist() == [0.5, 1.0]
    assert log.node.tolist() == [ingress, mix, egress] * 2
    assert log.first_row.tolist() == [0, 3, 6]
