"""SimConfig: validation, TOML text, and round trips."""

from __future__ import annotations

import dataclasses

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
    return SimConfig(
        clients=draw(st.integers(2, 10**7)),
        layers=layers,
        width=draw(st.integers(1, 1000)),
        gateways=draw(st.integers(0, 100)),
        mu=draw(positive),
        link_latency=draw(st.floats(min_value=0.0, max_value=10.0)),
        lambda_p=lambda_p,
        lambda_l=draw(rates),
        lambda_d=draw(rates),
        lambda_m=draw(rates) if layers > 1 else 0.0,
        workload=workload,
        message_rate=message_rate,
        active_fraction=draw(st.floats(min_value=1e-3, max_value=1.0)),
        corrupt_fraction=draw(fractions),
        corrupt_gateways=draw(fractions),
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
        k: ("auto" if v is None else str(v) if not isinstance(v, float) else repr(v))
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
        ("lambda_m = 1.0\nlayers = 1", "layers ≥ 2"),
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


def test_every_parameter_has_a_section_and_help() -> None:
    for field in dataclasses.fields(SimConfig):
        assert field.metadata["section"] in {"network", "traffic", "adversary", "run", "metrics"}
        assert field.metadata["help"]
    assert set(PARAMETERS) == {f.name for f in dataclasses.fields(SimConfig)}
