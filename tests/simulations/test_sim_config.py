"""SimConfig: validation, TOML text, and round trips."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.config import PARAMETERS, SimConfig
from simulations.errors import ConfigError

rates = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def configs(draw: st.DrawFn) -> SimConfig:
    lambda_p = draw(positive)
    workload = draw(st.sampled_from(["saturated", "poisson"]))
    message_rate = draw(st.floats(min_value=1e-6, max_value=1.0).map(lambda f: f * lambda_p * 0.999))
    if message_rate <= 0:
        message_rate = lambda_p / 2
    duration = draw(st.none() | st.floats(min_value=1.0, max_value=1e6))
    # An explicit duration needs a warm-up shorter than it; an automatic one fits any warm-up.
    warmup = draw(st.floats(min_value=0.0, max_value=0.99)) * duration if duration is not None else None
    if duration is None:
        warmup = draw(st.none() | st.floats(min_value=0.0, max_value=1e4))
    layers = draw(st.integers(1, 10))
    width = draw(st.integers(1, 1000))
    gateways = draw(st.integers(0, 100))
    corrupt_layers = tuple(sorted(draw(st.sets(st.integers(1, layers), max_size=layers - 1))))
    exact = draw(st.booleans())
    spare = (layers - len(corrupt_layers)) * width
    return SimConfig(
        clients=draw(st.integers(2, 10**7)),
        layers=layers,
        width=width,
        gateways=gateways,
        mu=draw(positive),
        link_latency=draw(st.floats(min_value=0.0, max_value=10.0)),
        lambda_p=lambda_p,
        lambda_l=draw(rates),
        lambda_d=draw(rates),
        lambda_m=draw(rates) if layers > 1 or gateways > 0 else 0.0,
        workload=workload,
        message_rate=message_rate,
        active_fraction=draw(st.floats(min_value=1e-3, max_value=1.0)),
        corrupt_fraction=0.0 if exact else draw(fractions) * spare / (layers * width),
        corrupt_mixes=draw(st.integers(0, spare)) if exact else None,
        corrupt_layers=corrupt_layers,
        corrupt_gateways=draw(fractions),
        node_loops=draw(st.sampled_from(["indistinguishable", "recognised"])),
        duration=duration,
        warmup=warmup,
        targets=draw(st.integers(1, 10**6)),
        seed=draw(st.integers(0, 2**63 - 1)),
        epsilon=draw(positive),
        mass_floor=draw(st.floats(min_value=1e-300, max_value=1e-4)),
    )


@settings(max_examples=200, deadline=None)
@given(configs())
def test_toml_round_trip(config: SimConfig) -> None:
    assert SimConfig.from_toml(config.to_toml()) == config


@settings(max_examples=100, deadline=None)
@given(configs())
def test_dict_round_trip_and_string_values(config: SimConfig) -> None:
    assert SimConfig.from_dict(config.to_dict()) == config
    as_text = {
        k: (
            "auto"
            if v is None
            else "+".join(map(str, v))
            if isinstance(v, tuple)
            else repr(v)
            if isinstance(v, float)
            else str(v)
        )
        for k, v in config.to_dict().items()
    }
    assert SimConfig.from_dict(as_text) == config


def test_flat_toml_and_sections_both_read() -> None:
    flat = SimConfig.from_toml("layers = 2\nmu = 4\nworkload = 'poisson'\nmessage_rate = 0.2\n")
    nested = SimConfig.from_toml(
        "[network]\nlayers = 2\nmu = 4.0\n[traffic]\nworkload = 'poisson'\nmessage_rate = 0.2\n"
    )
    assert flat == nested == SimConfig(layers=2, mu=4.0, workload="poisson", message_rate=0.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("layers = 0", "layers"),
        ("colour = 3", "unknown parameter"),
        ("[network]\nseed = 1", "belongs in [run]"),
        ("[nonsense]\nlayers = 1", "unknown section"),
        ("layers = 1.5", "integer"),
        ("mu = 'fast'", "number"),
        ("mu = 0", "mu"),
        ("corrupt_fraction = 1.5", "between 0 and 1"),
        ("workload = 'bursty'", "workload"),
        ("workload = 'poisson'\nmessage_rate = 2.0", "below lambda_p"),
        ("lambda_m = 1.0\nlayers = 1\ngateways = 0", "layers ≥ 2 or gateways ≥ 1"),
        ("corrupt_layers = [4]", "layers 1 to 3"),
        ("corrupt_layers = [1, 1]", "repeats"),
        ("corrupt_layers = 'one'", "list of layer numbers"),
        ("corrupt_mixes = 2\ncorrupt_fraction = 0.5", "not both"),
        ("corrupt_mixes = 7\ncorrupt_layers = [1]", "only 6 mixes"),
        ("node_loops = 'invisible'", "node_loops"),
        ("duration = 10.0\nwarmup = 20.0", "shorter than duration"),
        ("layers = true", "boolean"),
        ("mu = nan", "finite"),
        ("layers = ", "invalid TOML"),
        ("layers = 2\n[network]\nlayers = 3", "twice"),
    ],
)
def test_bad_configs_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SimConfig.from_toml(text)


def test_automatic_duration_leaves_room_for_twice_the_targets() -> None:
    config = SimConfig(clients=50, lambda_p=2.0, targets=1000, mu=5.0)
    assert config.effective_warmup == pytest.approx(10 * 5 / 5.0)
    assert (config.effective_duration - config.effective_warmup) * config.real_rate == pytest.approx(2000)


def test_automatic_window_counts_every_link_and_the_client_queues() -> None:
    # Five holds and six links (client, four between nodes, recipient) on the forward path.
    linked = SimConfig(mu=10.0, link_latency=0.02)
    assert linked.path_delay == pytest.approx(5 * 0.1 + 6 * 0.02)
    assert linked.effective_warmup == pytest.approx(10 * linked.path_delay)
    # Near saturation the window spans ten relaxation times of the M/M/1 queue, 1/(λ_P (1 − √ρ)²).
    busy = SimConfig(workload="poisson", lambda_p=1.0, message_rate=0.9, gateways=0, targets=500)
    assert busy.utilisation == pytest.approx(0.9)
    assert busy.queue_sojourn == pytest.approx(10.0)
    relaxation = 1.0 / (1.0 - math.sqrt(0.9)) ** 2
    assert busy.effective_duration - busy.effective_warmup == pytest.approx(10 * relaxation)


def test_corrupt_layers_are_written_as_a_toml_array() -> None:
    config = SimConfig(corrupt_layers=(1, 3), corrupt_mixes=2)
    assert "corrupt_layers = [1, 3]" in config.to_toml()
    assert SimConfig.from_toml(config.to_toml()) == config
    assert SimConfig.from_dict({"corrupt_layers": "3+1"}).corrupt_layers == (1, 3)


def test_every_parameter_has_a_section_and_help() -> None:
    for field in dataclasses.fields(SimConfig):
        assert field.metadata["section"] in {"network", "traffic", "adversary", "run", "metrics"}
        assert field.metadata["help"]
    assert set(PARAMETERS) == {f.name for f in dataclasses.fields(SimConfig)}
