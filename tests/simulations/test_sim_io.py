"""Result files: CSV round trips, JSON documents, and grid specifications."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.config import SimConfig
from simulations.errors import ConfigError, SimulationError
from simulations.io import CSV_COLUMNS, csv_text, read_csv, write_json
from simulations.metrics import Summary
from simulations.result import Result
from simulations.runner import run
from simulations.sweep import grid_points, parse_grid, parse_grid_spec
from tests.simulations.test_sim_config import configs

finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def summaries(draw: st.DrawFn) -> Summary:
    values = {}
    for field in dataclasses.fields(Summary):
        values[field.name] = draw(st.integers(0, 10**12)) if field.type in (int, "int") else draw(finite)
    return Summary(**values)


def _result(config: SimConfig, summary: Summary) -> Result:
    empty = np.zeros(0)
    return Result(config, summary, empty, empty, empty, empty, ())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(configs(), summaries()), min_size=0, max_size=4))
def test_csv_round_trip(rows: list[tuple[SimConfig, Summary]]) -> None:
    text = csv_text(_result(c, s) for c, s in rows)
    assert text.count("\n") == len(rows) + 1
    assert read_csv(text) == rows


def test_csv_keeps_nan_figures() -> None:
    summary = dataclasses.replace(
        Summary(**{f.name: 1 for f in dataclasses.fields(Summary)}), latency_p99=math.nan
    )
    ((_, back),) = read_csv(csv_text([_result(SimConfig(), summary)]))
    assert math.isnan(back.latency_p99)


def test_a_foreign_table_is_refused() -> None:
    with pytest.raises(SimulationError, match="unexpected columns"):
        read_csv("a,b\n1,2\n")


def test_json_document(tmp_path: Path) -> None:
    result = run(SimConfig(clients=20, layers=2, width=2, gateways=1, targets=100, seed=3))
    write_json(result, tmp_path / "one.json", arrays=True)
    document = json.loads((tmp_path / "one.json").read_text())
    assert SimConfig.from_dict(document["config"]) == result.config
    assert document["run_window"] == {
        "warmup": result.config.effective_warmup,
        "duration": result.config.effective_duration,
        "warmup_automatic": True,
        "duration_automatic": True,
    }
    assert document["forward_entropy"] == result.forward_entropy.tolist()
    assert document["summary"]["entropy_mean"] == result.summary.entropy_mean
    assert document["entropy"] == result.entropy.tolist()
    assert sum(document["latency_histogram"]["counts"]) == result.summary.real_messages
    write_json([result, result], tmp_path / "two.json")
    assert len(json.loads((tmp_path / "two.json").read_text())) == 2
    assert set(CSV_COLUMNS) == set(result.row())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1e3), min_size=1, max_size=5, unique=True))
def test_grid_values_round_trip(values: list[float]) -> None:
    name, parsed = parse_grid_spec("mu=" + ",".join(repr(v) for v in values))
    assert name == "mu" and parsed == tuple(values)


def test_grid_specifications() -> None:
    assert parse_grid_spec("layers=1:4:4") == ("layers", (1, 2, 3, 4))
    assert parse_grid_spec("corrupt-fraction=0:1:3") == ("corrupt_fraction", (0.0, 0.5, 1.0))
    assert parse_grid_spec("workload=saturated, poisson") == ("workload", ("saturated", "poisson"))
    assert parse_grid_spec("duration=auto,50") == ("duration", (None, 50.0))
    grid = parse_grid(["mu=5,10", "layers=1,2,3"])
    points = grid_points(SimConfig(), grid)
    assert [(p.mu, p.layers) for p in points] == [
        (5.0, 1),
        (5.0, 2),
        (5.0, 3),
        (10.0, 1),
        (10.0, 2),
        (10.0, 3),
    ]
    for bad in ("mu", "mu=", "speed=1,2", "mu=1,1", "layers=1.5", "mu=a:b:c", "layers=1:3:0"):
        with pytest.raises(ConfigError):
            parse_grid_spec(bad)
    with pytest.raises(ConfigError, match="twice"):
        parse_grid(["mu=1", "mu=2"])
    with pytest.raises(ConfigError):
        grid_points(SimConfig(), parse_grid(["layers=0,1"]))
