"""What Home lists, and how the app notices other processes: datasets, runs with effective counts, a stamp.

Run folders are read by `store.runs` (the typed `Run`); the count shown for a run is the
effective one (`store.decisions.effective_totals`: the algorithm's choice with every override),
the same number an export writes. `workspace_stamp` is a handful of `stat` calls, so the app
can poll it every second and re-read only when a file changed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from store import runs as run_files
from store.errors import ThresherError
from store.workspace import Workspace

if TYPE_CHECKING:  # DuckDB and pyarrow load in the first worker, not before the first paint
    import duckdb


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
    selected: int | None  # effective keeps of the default selection; None while there is no result
    created_at: str
    has_result: bool
    overrides: int = 0
    searchable: bool = False  # has embeddings/ (search by meaning); read with the rest, off the UI


@dataclass(frozen=True)
class WorkspaceState:
    """One consistent look at the workspace, posted to the screens after something changed."""

    datasets: list[DatasetRow]
    runs: list[RunRow]
    decision_seq: dict[str, int]  # run id -> highest seq of its decisions (0: none)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def catalog_stamp(workspace: Workspace) -> tuple:
    """Changes whenever the catalog (datasets, decisions, tags, exports) is written."""
    cat = workspace.catalog_path
    return _stat(cat), _stat(cat.with_name(cat.name + ".wal"))


def workspace_stamp(workspace: Workspace) -> tuple:
    """Changes whenever a decision, dataset, run, run status, progress event or shard is written."""
    parts: list[object] = list(catalog_stamp(workspace))
    try:
        run_dirs = sorted(os.scandir(workspace.runs_dir), key=lambda e: e.name)
    except OSError:
        run_dirs = []
    for entry in run_dirs:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        path = Path(entry.path)
        parts.append(entry.name)
        for name in (run_files.RUN_JSON, run_files.STATUS, run_files.PROGRESS, "result"):
            parts.append(_stat(path / name))  # a directory's mtime moves when a shard lands
    return tuple(parts)


def list_datasets(workspace: Workspace) -> list[DatasetRow]:
    """Datasets with their flag counts; opens the catalog for one short read."""
    from store.catalog import Catalog

    if not workspace.exists():
        return []
    with Catalog(workspace).connect() as con:
        return _datasets(con)


def _datasets(con: duckdb.DuckDBPyConnection) -> list[DatasetRow]:
    from tui.data.sql import rows

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


def _progress(run: run_files.Run) -> str:
    stage = run.current_stage
    if stage is None:
        return ""
    total = f"/{stage.total}" if stage.total else ""
    return f"{stage.stage} {stage.done}{total}"


class WorkspaceReader:
    """Reads the workspace for Home and the palette; effective counts are cached per run and
    recomputed only when the run's shards or its decisions changed."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._counts: dict[str, tuple[tuple, tuple[int, int, int] | None]] = {}
        self._catalog: tuple[tuple, list[DatasetRow], dict[str, int]] | None = None

    def read(self, counts: bool = True) -> WorkspaceState:
        """`counts=False` reuses the last counts instead of scanning results (while nobody looks
        at them: a browser on a 1M-row run should not share the CPU with a recount). Datasets and
        decision seqs are read again only when the catalog file changed (a running job's progress
        events change the workspace stamp every second, not the catalog)."""
        from store.catalog import Catalog
        from tui.data.sql import rows

        found = run_files.list_runs(self.workspace.runs_dir)
        if not self.workspace.exists():
            return WorkspaceState([], [self._row(r, None) for r in found], {})
        stamp = catalog_stamp(self.workspace)  # before reading: a write meanwhile reads again
        with contextlib.ExitStack() as opened:
            cons: list[duckdb.DuckDBPyConnection] = []

            def connect() -> duckdb.DuckDBPyConnection:
                if not cons:
                    cons.append(opened.enter_context(Catalog(self.workspace).connect()))
                return cons[0]

            if self._catalog is None or self._catalog[0] != stamp:
                con = connect()
                seqs = {
                    r[0]: int(r[1])
                    for r in rows(con, "SELECT run_id, max(seq) FROM decisions GROUP BY run_id")
                }
                self._catalog = (stamp, _datasets(con), seqs)
            _, datasets, seqs = self._catalog
            out = [
                self._row(
                    r, self._totals(connect, r, seqs.get(r.run_id, 0)) if counts else self._last(r)
                )
                for r in found
            ]
        return WorkspaceState(datasets, out, seqs)

    def _totals(
        self, connect: Callable[[], duckdb.DuckDBPyConnection], run: run_files.Run, seq: int
    ) -> tuple[int, int, int] | None:
        import duckdb

        from store import decisions as decision_log

        files = run.result_files
        if not files:
            return None
        key = (seq, tuple(_stat(p) for p in files))
        cached = self._counts.get(run.run_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            totals: tuple[int, int, int] | None = decision_log.effective_totals(connect(), run.path)
        except (duckdb.Error, ThresherError):
            totals = (
                None  # a shard being replaced right now, or no selection: the next look shows it
            )
        self._counts[run.run_id] = (key, totals)
        return totals

    def _last(self, run: run_files.Run) -> tuple[int, int, int] | None:
        cached = self._counts.get(run.run_id)
        return cached[1] if cached else None

    def _row(self, run: run_files.Run, totals: tuple[int, int, int] | None) -> RunRow:
        return RunRow(
            run_id=run.run_id,
            method=run.method,
            dataset=run.dataset,
            status=run.state,
            progress=_progress(run),
            selected=None if totals is None else totals[1],
            created_at=run.created_at,
            has_result=run.has_result,
            overrides=0 if totals is None else totals[2],
            searchable=(run.path / "embeddings").is_dir(),
        )
