"""The append-only decision log and the effective selection of a run (algorithm overridden by people).

A decision is one row per (run, sample) in `decisions`; the latest `seq` wins and `clear` means
"back to the algorithm". Nothing is ever deleted or updated. The effective selection is plain SQL
over the run's `result` shards joined with the log, so it stays fast at a million samples.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from store import runs
from store.errors import NotFound, ThresherError
from store.sql import ident, literal

if TYPE_CHECKING:
    import duckdb

    from store.catalog import Catalog

ACTIONS = ("keep", "drop", "clear")


def default_author() -> str:
    try:
        return os.environ.get("THRESHER_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


# ---------------------------------------------------------------- reading a run folder


def _run(run_dir: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> runs.Run:
    path = Path(run_dir)
    meta = meta if meta is not None else runs.read_run_json(path)
    return runs.Run(meta.get("run_id") or path.name, path, meta, {})


def run_dir_for(catalog: Catalog, con: duckdb.DuckDBPyConnection, run_id: str) -> Path:
    """The folder of a run: the `runs` row when registered, else `<workspace>/runs/<run_id>`."""
    rows = con.execute("SELECT path FROM runs WHERE run_id = ?", [run_id]).fetchall()
    if rows:
        path = Path(rows[0][0])
        return path if path.is_absolute() else catalog.workspace.root / path
    path = catalog.workspace.run_dir(run_id)
    if (path / "run.json").exists():
        return path
    raise NotFound(f"no run {run_id!r} in {catalog.workspace.root}; `thresher runs` lists them.")


def result_glob(run_dir: str | os.PathLike[str], run: dict[str, Any] | None = None) -> str:
    """The Parquet glob of a run's selection table; raises when the run has none (yet)."""
    outputs, _ = _run(run_dir, run).require_result()
    return str(Path(run_dir) / outputs.table / "part-*.parquet")


def selection_column(run: dict[str, Any], selection: str | None) -> tuple[str, str]:
    """(selection name, BOOL column of `result`) for a selection name; None = the run's default."""
    outputs = runs.Outputs.from_json(run.get("outputs")) or runs.Outputs()
    return outputs.selection_column(selection, str(run.get("run_id")))


# ---------------------------------------------------------------- writing decisions


def _run_dataset_id(catalog: Catalog, con: duckdb.DuckDBPyConnection, run_id: str) -> int | None:
    rows = con.execute("SELECT dataset_id FROM runs WHERE run_id = ?", [run_id]).fetchall()
    if rows:
        return rows[0][0]
    run = runs.read_run_json(
        run_dir_for(catalog, con, run_id)
    )  # raises NotFound for an unknown run
    return run.get("dataset_id")


def record(
    catalog: Catalog,
    run_id: str,
    sample_ids: Iterable[int] | pa.Array | pa.ChunkedArray,
    action: str,
    *,
    scope: str = "sample",
    author: str | None = None,
    note: str | None = None,
) -> int:
    """Append one decision per sample as ONE Arrow batch; return how many rows were written.

    Undo is `record(..., "clear")`: the sample goes back to the algorithm's choice.
    """
    if action not in ACTIONS:
        raise ThresherError(f"unknown decision {action!r}; use one of {', '.join(ACTIONS)}.")
    ids = (
        sample_ids
        if isinstance(sample_ids, pa.Array | pa.ChunkedArray)
        else pa.array(list(sample_ids), pa.int64())
    )
    ids = pc.unique(ids.cast(pa.int64()))
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(ids) == 0:
        return 0
    if scope == "sample" and len(ids) > 1:
        scope = "list"
    batch = pa.table({"sample_id": ids})
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with catalog.transaction() as con:
        dataset_id = _run_dataset_id(catalog, con, run_id)
        con.register("_decision_batch", batch)
        try:
            if dataset_id is not None:
                unknown = con.execute(
                    "SELECT b.sample_id FROM _decision_batch b ANTI JOIN "
                    "(SELECT sample_id FROM samples WHERE dataset_id = ?) s USING (sample_id) LIMIT 5",
                    [dataset_id],
                ).fetchall()
                if unknown:
                    raise NotFound(
                        f"sample ids {[r[0] for r in unknown]} are not in the dataset of run "
                        f"{run_id}; nothing was recorded."
                    )
            con.execute(
                "INSERT INTO decisions SELECT nextval('decision_seq'), ?, sample_id, ?, ?, ?, ?, ? "
                "FROM _decision_batch",
                [run_id, action, scope, author or default_author(), now, note],
            )
        finally:
            con.unregister("_decision_batch")
    return len(ids)


def resolve_orig_ids(catalog: Catalog, run_id: str, orig_ids: Iterable[str]) -> pa.Array:
    """Sample ids of the run's dataset for the original ids a user knows (as in an `ids` export)."""
    wanted = pa.table({"orig_id": pa.array([str(o) for o in orig_ids], pa.string())})
    with catalog.connect() as con:
        dataset_id = _run_dataset_id(catalog, con, run_id)
        if dataset_id is None:
            raise ThresherError(f"run {run_id} names no dataset_id; decide by --group instead.")
        con.register("_wanted_ids", wanted)
        try:
            found = con.sql(
                "SELECT w.orig_id, s.sample_id FROM _wanted_ids w LEFT JOIN "
                "(SELECT orig_id, sample_id FROM samples WHERE dataset_id = $d) s USING (orig_id)",
                params={"d": dataset_id},
            ).to_arrow_table()
        finally:
            con.unregister("_wanted_ids")
    missing = found.filter(pc.is_null(found["sample_id"]))["orig_id"].to_pylist()
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(
            f"ids {missing[:5]}{more} are not in the dataset of run {run_id}; nothing was recorded."
        )
    return found["sample_id"].combine_chunks()


def group_sample_ids(run_dir: str | os.PathLike[str], column: str, value: Any) -> pa.Array:
    """Sample ids of one group (cluster, subset) of a run, read from its result shards."""
    import duckdb

    run = runs.read_run_json(Path(run_dir))
    glob = result_glob(run_dir, run)
    con = duckdb.connect()  # in-memory: reading Parquet needs no catalog
    try:
        cols = [
            r[0]
            for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(glob)})").fetchall()
        ]
        if column not in cols:
            raise NotFound(
                f"run {run.get('run_id')} has no column {column!r}; it has: {', '.join(cols)}."
            )
        ids = con.sql(
            f"SELECT sample_id FROM read_parquet({literal(glob)}) WHERE CAST({ident(column)} AS VARCHAR) = ?",
            params=[str(value)],
        ).to_arrow_table()["sample_id"]
        if len(ids) == 0:
            values = con.execute(
                f"SELECT DISTINCT CAST({ident(column)} AS VARCHAR) v FROM read_parquet({literal(glob)}) "
                "ORDER BY v LIMIT 12"
            ).fetchall()
            raise NotFound(
                f"run {run.get('run_id')} has no {column} = {value}; values include: "
                f"{', '.join(str(v[0]) for v in values)}."
            )
    finally:
        con.close()
    return ids.combine_chunks()


def record_group(
    catalog: Catalog,
    run_id: str,
    column: str,
    value: Any,
    action: str,
    *,
    author: str | None = None,
    note: str | None = None,
) -> int:
    """Decide a whole group (`cluster = 7`, `subset_t1 = P_tau`) of a run in one batch."""
    with catalog.connect() as con:
        run_dir = run_dir_for(catalog, con, run_id)
    ids = group_sample_ids(run_dir, column, value)
    return record(
        catalog, run_id, ids, action, scope=f"group:{column}={value}", author=author, note=note
    )


# ---------------------------------------------------------------- reading the effective selection


def override_sql(action: str) -> str:
    """A decision's action as an override: TRUE (keep), FALSE (drop), NULL (clear or none)."""
    return f"CASE {action} WHEN 'keep' THEN TRUE WHEN 'drop' THEN FALSE END"


def effective_rule(algorithmic: str, action: str) -> str:
    """THE keep/drop rule, as one SQL expression every reader uses: the latest decision's keep or
    drop overrides the algorithm's choice; `clear`, or no decision, leaves the algorithm's."""
    return f"coalesce({override_sql(action)}, CAST({algorithmic} AS BOOLEAN), FALSE)"


def latest_decisions_sql(upto_seq: int | None = None) -> str:
    """(sample_id, action, seq) of the latest decision per sample of the run `$run_id`."""
    limit = "" if upto_seq is None else f" AND seq <= {int(upto_seq)}"
    return (
        "SELECT sample_id, arg_max(action, seq) AS action, max(seq) AS seq "
        f"FROM decisions WHERE run_id = $run_id{limit} GROUP BY sample_id"
    )


def decision_stats(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[int, int | None]:
    """(number of log entries for the run, highest seq among them or None)."""
    ((n, last),) = con.execute(
        "SELECT count(*), max(seq) FROM decisions WHERE run_id = ?", [run_id]
    ).fetchall()
    return int(n), last


def effective_sql(
    run_dir: str | os.PathLike[str],
    selection: str | None = None,
    *,
    upto_seq: int | None = None,
    columns: Iterable[str] = (),
) -> tuple[str, dict[str, Any]]:
    """SQL (and its named parameter `$run_id`) for a run's effective selection.

    Columns: `sample_id, algorithmic, override, effective, _file, _row` (`ORDER BY _file, _row`
    gives result order = input.parquet order) plus any result `columns` asked for. Decisions with
    `seq > upto_seq` are ignored, so a caller can pin the log at the moment it looked.
    """
    run = runs.read_run_json(Path(run_dir))
    glob = result_glob(run_dir, run)
    _, column = selection_column(run, selection)
    run_id = run.get("run_id") or Path(run_dir).name
    extra = "".join(f", r.{ident(c)}" for c in columns)
    sql = f"""
        WITH r AS (
            SELECT *, CAST({ident(column)} AS BOOLEAN) AS algorithmic,
                   filename AS _file, file_row_number AS _row
            FROM read_parquet({literal(glob)}, filename = true, file_row_number = true)
        ),
        d AS ({latest_decisions_sql(upto_seq)})
        SELECT r.sample_id, r.algorithmic, {override_sql("d.action")} AS override,
               {effective_rule("r.algorithmic", "d.action")} AS effective,
               r._file, r._row{extra}
        FROM r LEFT JOIN d USING (sample_id)
    """
    return sql, {"run_id": run_id}


def effective(
    con: duckdb.DuckDBPyConnection, run_dir: str | os.PathLike[str], selection: str | None = None
) -> pa.Table:
    """Table(sample_id, algorithmic, override, effective) in result order; override NULL = no decision."""
    sql, params = effective_sql(run_dir, selection)
    return con.sql(
        f"SELECT sample_id, algorithmic, override, effective FROM ({sql}) ORDER BY _file, _row",
        params=params,
    ).to_arrow_table()


def effective_totals(
    con: duckdb.DuckDBPyConnection, run_dir: str | os.PathLike[str], selection: str | None = None
) -> tuple[int, int, int]:
    """(rows, effective keeps, samples with an override) of a run's selection: what Home, the
    browser header and `thresher runs` show, and what an export writes."""
    sql, params = effective_sql(run_dir, selection)
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE effective), count(override) FROM ({sql})", params
    ).fetchone()
    assert row is not None, "an aggregate without GROUP BY returns one row"
    return int(row[0]), int(row[1]), int(row[2])


def effective_counts(
    con: duckdb.DuckDBPyConnection,
    run_dir: str | os.PathLike[str],
    selection: str | None,
    group_column: str,
) -> pa.Table:
    """Table(group, n, kept_algo, kept_effective), one row per value of `group_column`, sorted."""
    glob = result_glob(run_dir)
    cols = [
        r[0]
        for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(glob)})").fetchall()
    ]
    if group_column not in cols:
        raise NotFound(f"{run_dir} has no column {group_column!r}; it has: {', '.join(cols)}.")
    sql, params = effective_sql(run_dir, selection, columns=[group_column])
    return con.sql(
        f"""
        SELECT {ident(group_column)} AS "group", count(*) AS n,
               count(*) FILTER (WHERE algorithmic) AS kept_algo,
               count(*) FILTER (WHERE effective) AS kept_effective
        FROM ({sql}) GROUP BY 1 ORDER BY 1
        """,
        params=params,
    ).to_arrow_table()


def history(con: duckdb.DuckDBPyConnection, run_id: str, sample_id: int | None = None) -> pa.Table:
    """The log for a run (or one of its samples), oldest first."""
    where = "run_id = ?"
    params: list[str | int] = [run_id]
    if sample_id is not None:
        where += " AND sample_id = ?"
        params.append(sample_id)
    return con.sql(
        f"SELECT seq, sample_id, action, scope, author, decided_at, note FROM decisions "
        f"WHERE {where} ORDER BY seq",
        params=params,
    ).to_arrow_table()
