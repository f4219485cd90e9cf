"""Results on disk: JSON documents and CSV tables with one row per run."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simulations.aggregate import HEADLINES, SeedAggregate
from simulations.config import OPTIONAL_PARAMETERS, PARAMETERS, SimConfig
from simulations.errors import SimulationError
from simulations.metrics import Summary
from simulations.result import SUMMARY_FIELDS, Result

CSV_COLUMNS: tuple[str, ...] = tuple(PARAMETERS) + SUMMARY_FIELDS
_SUMMARY_TYPES = {f.name: f.type for f in dataclasses.fields(Summary)}


def write_json(results: Result | Sequence[Result], path: str | Path, *, arrays: bool = False) -> None:
    """One run as a JSON object, several as a JSON list."""
    if isinstance(results, Result):
        document: Any = results.to_json(arrays=arrays)
    else:
        document = [r.to_json(arrays=arrays) for r in results]
    Path(path).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "+".join(str(v) for v in value)
    return str(value)


def csv_text(results: Iterable[Result]) -> str:
    """The CSV table of the runs: a header, then one row per run (parameters, then figures)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in results:
        row = result.row()
        writer.writerow([format_cell(row[name]) for name in CSV_COLUMNS])
    return buffer.getvalue()


def write_csv(results: Iterable[Result], path: str | Path) -> None:
    Path(path).write_text(csv_text(results), encoding="utf-8")


def read_csv(text: str) -> list[tuple[SimConfig, Summary]]:
    """Parse a table written by `csv_text` back into configs and summaries."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or tuple(reader.fieldnames) != CSV_COLUMNS:
        raise SimulationError("not a trimix simulation table: unexpected columns")
    rows: list[tuple[SimConfig, Summary]] = []
    for record in reader:
        params = {
            name: (None if record[name] == "" and name in OPTIONAL_PARAMETERS else record[name])
            for name in PARAMETERS
        }
        figures: dict[str, Any] = {name: _parse_figure(name, record[name]) for name in SUMMARY_FIELDS}
        rows.append((SimConfig.from_dict(params), Summary(**figures)))
    return rows


def _parse_figure(name: str, text: str) -> int | float:
    kind = _SUMMARY_TYPES[name]
    if kind in (int, "int"):
        return int(text)
    return float(text) if text != "" else math.nan


SEED_COLUMNS: tuple[str, ...] = (
    tuple(name for name in PARAMETERS if name != "seed")
    + ("seeds",)
    + tuple(column for name in HEADLINES for column in (name, f"{name}_ci95"))
)


def seed_csv_text(aggregates: Sequence[SeedAggregate]) -> str:
    """One row per grid point: its parameters, the number of seeds, and each headline's mean and
    the half-width of its 95 % interval over seeds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SEED_COLUMNS)
    for aggregate in aggregates:
        params = aggregate.config.to_dict()
        row = [format_cell(params[name]) for name in PARAMETERS if name != "seed"]
        row.append(str(len(aggregate.seeds)))
        for name in HEADLINES:
            estimate = aggregate.figure(name)
            row += [format_cell(estimate.mean), format_cell(estimate.half_width)]
        writer.writerow(row)
    return buffer.getvalue()


def write_seed_csv(aggregates: Sequence[SeedAggregate], path: str | Path) -> None:
    Path(path).write_text(seed_csv_text(aggregates), encoding="utf-8")
