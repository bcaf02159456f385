"""What the Home screen lists: datasets from the catalog and runs from the run folders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from store import runs as run_files
from store.catalog import Catalog
from store.workspace import Workspace
from tui.data.sql import one, rows


@dataclass(frozen=True)
class DatasetRow:
    dataset_id: int
    name: str
    format: str
    n_samples: int
    n_flagged: int
    flags: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    method: str
    dataset: str
    status: str
    progress: str  # "stage done/total" of the latest stage, or "" before any event
    selected: int | None  # rows of the default selection; None while the result is not there
    created_at: str
    has_result: bool


def list_datasets(workspace: Workspace) -> list[DatasetRow]:
    """Datasets with their flag counts; opens the catalog for one short read."""
    if not workspace.exists():
        return []
    with Catalog(workspace).connect() as con:
        datasets = rows(
            con,
            "SELECT dataset_id, name, format, n_samples, n_flagged FROM datasets ORDER BY dataset_id",
        )
        flag_rows = rows(
            con,
            "SELECT dataset_id, f, count(*) FROM (SELECT dataset_id, unnest(flags) AS f FROM samples)"
            " GROUP BY ALL ORDER BY ALL",
        )
    flags: dict[int, dict[str, int]] = {}
    for ds, flag, n in flag_rows:
        flags.setdefault(ds, {})[flag] = n
    return [DatasetRow(r[0], r[1], r[2], r[3], r[4], flags.get(r[0], {})) for r in datasets]


def result_files(run_dir: Path, outputs: dict[str, Any] | None) -> list[Path]:
    """The run's result shards in row order (part-00000, part-00001, ...)."""
    if not outputs:
        return []
    return sorted((run_dir / outputs.get("table", "result")).glob("part-*.parquet"))


def count_selected(run_dir: Path, meta: dict[str, Any]) -> int | None:
    outputs = meta.get("outputs")
    files = result_files(run_dir, outputs)
    if not files:
        return None
    selections = outputs.get("selections") or {}
    column = selections.get(outputs.get("default_selection") or "default")
    if not column:
        return None
    paths = [str(p) for p in files]
    con = duckdb.connect()
    try:
        row = one(con, f'SELECT count(*) FILTER (WHERE "{column}") FROM read_parquet(?)', [paths])
    finally:
        con.close()
    return int(row[0]) if row else None


def run_row(run_dir: Path) -> RunRow:
    meta = run_files.read_run_json(run_dir)
    status = run_files.read_status(run_dir).get("status", "queued")
    stages: dict[str, run_files.StageProgress] = {}
    events, _ = run_files.read_events(run_dir)
    run_files.fold_events(events, stages)
    progress = ""
    if stages:
        last = list(stages.values())[-1]
        total = f"/{last.total}" if last.total else ""
        progress = f"{last.stage} {last.done}{total}"
    try:
        selected = count_selected(run_dir, meta)
    except duckdb.Error:
        selected = None  # a shard being replaced right now; the next refresh shows it
    return RunRow(
        run_id=meta.get("run_id", run_dir.name),
        method=str(meta.get("method", "?")),
        dataset=str(meta.get("dataset", meta.get("dataset_id", ""))),
        status=status,
        progress=progress,
        selected=selected,
        created_at=str(meta.get("created_at", "")),
        has_result=bool(result_files(run_dir, meta.get("outputs"))),
    )


def list_runs(workspace: Workspace) -> list[RunRow]:
    """Every run folder, newest first; a folder with a broken run.json is skipped, not fatal."""
    rows = []
    if not workspace.runs_dir.exists():
        return rows
    for run_dir in workspace.runs_dir.iterdir():
        if not (run_dir / run_files.RUN_JSON).exists():
            continue
        try:
            rows.append(run_row(run_dir))
        except (OSError, json.JSONDecodeError, run_files.ThresherError):
            continue
    return sorted(rows, key=lambda r: (r.created_at, r.run_id), reverse=True)
