"""`trimix simulate` and `trimix simulate sweep` from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from simulations.config import SimConfig
from simulations.io import read_csv
from trimix.cli import main

SMALL = ["--clients", "30", "--layers", "2", "--width", "2", "--gateways", "2", "--targets", "120"]


def test_simulate_prints_json_from_flags() -> None:
    out = CliRunner().invoke(main, ["simulate", *SMALL, "--seed", "4", "-q"])
    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    assert document["config"]["layers"] == 2 and document["config"]["seed"] == 4
    assert document["summary"]["measured_targets"] == 120
    assert 0 < document["summary"]["entropy_mean"] <= 5


def test_config_file_flags_override_and_files_are_written(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text(SimConfig(clients=30, layers=2, width=2, gateways=2, targets=100, mu=4.0).to_toml())
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "simulate",
            "--config",
            str(config),
            "--mu",
            "8",
            "--duration",
            "auto",
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--save-config",
            str(tmp_path / "used.toml"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "entropy" in out.stderr
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["config"]["mu"] == 8.0 and document["config"]["clients"] == 30
    ((used, summary),) = read_csv((tmp_path / "r.csv").read_text())
    assert (
        used
        == SimConfig.load(tmp_path / "used.toml")
        == SimConfig(clients=30, layers=2, width=2, gateways=2, targets=100, mu=8.0)
    )
    assert summary.entropy_mean == document["summary"]["entropy_mean"]


def test_bad_parameters_are_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["simulate", "--layers", "0"])
    assert out.exit_code == 2 and "layers" in out.output
    bad = tmp_path / "bad.toml"
    bad.write_text("speed = 3\n")
    out = runner.invoke(main, ["simulate", "--config", str(bad)])
    assert out.exit_code == 2 and "unknown parameter" in out.output
    out = runner.invoke(main, ["simulate", "sweep", "--grid", "mu=1,1"])
    assert out.exit_code == 2 and "repeats" in out.output


def test_sweep_writes_one_row_per_point_and_plots(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        main,
        [
            "simulate",
            "--clients",
            "30",
            "sweep",
            *SMALL[2:],
            "--grid",
            "mu=5,10,20",
            "--grid",
            "corrupt_fraction=0,0.5",
            "--workers",
            "2",
            "--plot",
            str(tmp_path / "figs"),
            "-q",
        ],
    )
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 6
    assert [(r["mu"], r["corrupt_fraction"]) for r in rows] == [
        (mu, f) for mu in ("5.0", "10.0", "20.0") for f in ("0.0", "0.5")
    ]
    assert {r["clients"] for r in rows} == {"30"}
    pngs = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert pngs == ["entropy_vs_corrupt_fraction.png", "entropy_vs_mu.png"]
    assert all((tmp_path / "figs" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_plot_writes_the_three_figures(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        main,
        [
            "simulate",
            *SMALL,
            "--targets",
            "80",
            "--plot",
            str(tmp_path),
            "--workers",
            "2",
            "--json",
            str(tmp_path / "r.json"),
            "-q",
        ],
    )
    assert out.exit_code == 0, out.output
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["entropy_vs_cover.png", "entropy_vs_delay.png", "latency_histogram.png"]
    assert all(p.stat().st_size > 5000 for p in tmp_path.glob("*.png"))
