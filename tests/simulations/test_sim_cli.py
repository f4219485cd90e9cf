"""`trimix simulate` and `trimix simulate sweep` from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner
from distributed import LocalCluster

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


def test_an_oversized_run_is_refused_with_the_estimate_and_no_traceback() -> None:
    out = CliRunner().invoke(main, ["simulate", "--mu", "0.001", "--max-memory", "4", "-q"])
    assert out.exit_code == 1
    assert "needs about" in out.output and "GiB" in out.output and "raise mu" in out.output
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit)


def test_automatic_window_and_corrupt_choices_are_recorded(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        main,
        ["simulate", *SMALL, "--corrupt-layers", "2", "--corrupt-mixes", "1", "--json", str(tmp_path / "r.json")],
    )
    assert out.exit_code == 0, out.output
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["config"]["warmup"] is None and document["config"]["corrupt_layers"] == [2]
    config = SimConfig.from_dict(document["config"])
    assert document["run_window"]["warmup"] == config.effective_warmup
    assert document["run_window"]["duration"] == config.effective_duration
    assert document["summary"]["corrupt_mix_count"] == 3  # layer 2's two mixes and one more
    assert "± " in out.stderr and "corrupt 3 mixes" in out.stderr


def test_sweep_on_a_dask_cluster_matches_a_local_sweep(tmp_path: Path) -> None:
    args = [*SMALL[2:], "--targets", "60", "--grid", "mu=5,10", "--grid", "seed=1,2", "-q"]
    local = CliRunner().invoke(main, ["simulate", "--clients", "30", "sweep", *args, "--workers", "1"])
    assert local.exit_code == 0, local.output
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        remote = CliRunner().invoke(
            main,
            [
                "simulate",
                "--clients",
                "30",
                "sweep",
                *args,
                "--dask-scheduler",
                cluster.scheduler_address,
                "--seed-csv",
                str(tmp_path / "seeds.csv"),
            ],
        )
    assert remote.exit_code == 0, remote.output
    assert remote.stdout == local.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "seeds.csv").read_text())))
    assert [(r["mu"], r["seeds"]) for r in rows] == [("5.0", "2"), ("10.0", "2")]
    assert all(float(r["entropy_mean_ci95"]) > 0 for r in rows)
