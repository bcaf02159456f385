"""Runs as the catalog sees them: listing run folders, result summaries, DuckDB views, the `runs` rows."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from store.errors import ThresherError
from store.runs.events import StageProgress, fold_events, read_events, read_last_events
from store.runs.layout import RUN_JSON, read_run_json
from store.runs.model import Outputs, Run
from store.runs.status import read_status
from store.sql import ident, literal

RunInfo = Run  # the name callers used before the typed Run


def load_run(run_dir: Path, full: bool = False) -> Run:
    """A run's metadata, status and stage progress (from the log's tail unless `full`)."""
    stages: dict[str, StageProgress] = {}
    fold_events(read_events(run_dir)[0] if full else read_last_events(run_dir), stages)
    meta = read_run_json(run_dir)
    return Run(run_dir.name, run_dir, meta, read_status(run_dir), stages)


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run folder, newest first (ties by id); a folder whose run.json is unreadable is skipped."""
    runs: list[Run] = []
    if not runs_dir.is_dir():
        return runs
    for path in runs_dir.glob("*/" + RUN_JSON):
        if path.parent.name.startswith("."):  # a run still being created (or a crashed creation)
            continue
        with contextlib.suppress(ThresherError, OSError):
            runs.append(load_run(path.parent))
    runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return runs


# ---------------------------------------------------------------- results and catalog views


def stage_files(run_dir: Path, stage: str, suffix: str = ".parquet") -> list[Path]:
    """Complete shards of a stage in index order (temp files never match)."""
    return sorted((run_dir / stage).glob(f"part-*{suffix}"))


def view_name(run_id: str, stage: str) -> str:
    return f"run_{run_id}_{stage}"


def result_summary(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Row and selected counts of a finished run, read from its shards with an in-memory DuckDB."""
    import duckdb

    summary: dict[str, Any] = {}
    outputs = Outputs.from_json(meta.get("outputs"))
    if outputs is None or not outputs.result_files(run_dir):
        return summary
    table = outputs.table
    glob = literal(str(run_dir.resolve() / table / "part-*.parquet"))  # as result_files: no temps
    sums = [f"count_if({ident(col)})" for col in outputs.selections.values()]
    con = duckdb.connect()
    try:
        row = con.execute(
            f"SELECT count(*) {''.join(', ' + s for s in sums)} FROM read_parquet({glob})"
        ).fetchone()
    except duckdb.Error as exc:
        # A run whose outputs declaration does not match its files must not break `thresher runs`.
        return {"error": f"{run_dir / table}: {exc}".splitlines()[0]}
    finally:
        con.close()
    assert row is not None, "an aggregate without GROUP BY always returns one row"
    summary["rows"] = row[0]
    summary["selected"] = dict(zip(outputs.selections, row[1:], strict=True))
    return summary


def judge_verdicts(run_dir: Path, meta: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """What decided a CLIPPER run's verdicts, per stage: {stage: {rule: {correct, wrong,
    undecided}}} from its summary.json ({} for other runs, or before the result stage)."""
    outputs = meta.get("outputs") or {}
    name = outputs.get("summary") if isinstance(outputs, dict) else None
    if not name:
        return {}
    try:
        data = json.loads((run_dir / name).read_text())
    except (OSError, ValueError):
        return {}
    verdicts = data.get("verdicts") if isinstance(data, dict) else None
    return verdicts if isinstance(verdicts, dict) else {}


def verdict_line(by_rule: dict[str, dict[str, int]] | None) -> str:
    """A CLIPPER stage's verdicts by what decided them, most first, undecided last:
    "judged yesno 120 · mc 30 · contains 50 · undecided 12"; "" when there are none. The CLI's
    `thresher runs` and the workstation's browser header show this same line."""
    if not by_rule:
        return ""
    decided = {rule: c.get("correct", 0) + c.get("wrong", 0) for rule, c in by_rule.items()}
    undecided = sum(c.get("undecided", 0) for c in by_rule.values())
    parts = [f"{rule} {n:,}" for rule, n in sorted(decided.items(), key=lambda x: -x[1]) if n]
    if undecided:
        parts.append(f"undecided {undecided:,}")
    return "judged " + " · ".join(parts)


def create_views(con: Any, run_dir: Path, meta: dict[str, Any]) -> list[str]:
    """One view per Parquet stage of the run; the catalog stores no copy of the results."""
    names = []
    for stage in meta.get("stages", []):
        if not stage_files(run_dir, stage):
            continue
        name = view_name(run_dir.name, stage)
        glob = literal(str(run_dir.resolve() / stage / "*.parquet"))
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet({glob})')
        names.append(name)
    return names


def insert_run_row(con: Any, run_dir: Path, meta: dict[str, Any], status: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO runs (run_id, method, dataset_id, created_at, status, path, params, summary) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        [
            run_dir.name,
            meta.get("method", "?"),
            meta.get("dataset_id"),
            meta.get("created_at") or _mtime_iso(run_dir),
            status,
            str(run_dir.resolve()),
            json.dumps(meta.get("params", {}), sort_keys=True),
        ],
    )


def _mtime_iso(path: Path) -> str:
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return stamp.replace(tzinfo=None).isoformat("T", "seconds")


def sync_runs(catalog: Any, only: list[str] | None = None) -> list[str]:
    """Bring the catalog's `runs` rows up to date with the run folders; returns the runs registered now.

    Everything slow (reading folders, counting selections) happens before the catalog is opened,
    so the write lock is held for a handful of small statements.
    """
    runs = list_runs(catalog.workspace.runs_dir)
    if only is not None:
        runs = [r for r in runs if r.run_id in only]
    with catalog.connect() as con:
        rows = {
            r[0]: (r[1], r[2])
            for r in con.execute("SELECT run_id, status, summary FROM runs").fetchall()
        }
    pending = []
    for run in runs:
        old_status, old_summary = rows.get(run.run_id, (None, None))
        finished = run.state == "done" and old_summary is None
        if old_status != run.state or finished:
            summary = result_summary(run.path, run.meta) if finished else None
            pending.append((run, summary))
    if not pending:
        return []
    registered = []
    with catalog.transaction() as con:
        for run, summary in pending:
            if run.run_id not in rows:
                insert_run_row(con, run.path, run.meta, run.state)
            con.execute("UPDATE runs SET status = ? WHERE run_id = ?", [run.state, run.run_id])
            if summary is not None:
                summary["views"] = create_views(con, run.path, run.meta)
                summary["finished_at"] = run.status.get("finished_at")
                con.execute(
                    "UPDATE runs SET summary = ? WHERE run_id = ?",
                    [json.dumps(summary, sort_keys=True), run.run_id],
                )
                registered.append(run.run_id)
    return registered
