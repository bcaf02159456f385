"""Merge a staged Arrow table of samples into the catalog in one transaction, keeping sample ids.

A sample that was ingested before under the same dataset name and orig_id keeps its sample_id;
new orig_ids get fresh ordinals (never reused, even after samples were removed), so decisions
and run snapshots that name a sample_id stay valid across re-ingests.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from store.catalog import Catalog
from store.ingest.finish import Finished
from store.sql import literal

# DuckDB's memory for the catalog write: beyond it the rows being written spill to disk, so the
# ingest's peak does not grow with the dataset (~0.8 KB a sample without it, measured).
MERGE_MEMORY = "128MB"
ID_STRIDE = 2**32  # sample_id = dataset_id * 2**32 + ordinal (docs/CONTRACTS.md)
_COLUMNS = (
    "orig_id, position, images, images_raw, conversation, question, answer, "
    "n_image_tokens, n_turns, task, flags, extra"
)
# Content columns compared to tell "updated" from "unchanged" on a re-ingest.
_CONTENT = (
    "position",
    "images",
    "images_raw",
    "conversation",
    "task",
    "flags",
    "extra",
)


def _one(con, sql: str, params: list | None = None) -> tuple | None:
    # DuckDB 2 keeps a result "unfinished" after fetchone(); fetchall() completes it.
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def _aggregate(con, sql: str, params: list | None = None) -> tuple:
    """The row of an aggregate query without GROUP BY (or a nextval), which always has one."""
    row = _one(con, sql, params)
    assert row is not None, f"one-row query returned no row: {sql}"
    return row


def _rematch(con, dataset_id: int, next_ordinal: int) -> tuple[int, int, int]:
    """Replace a dataset's samples with `_staged`, keeping the sample_id of every known orig_id."""
    changed = " OR ".join(f"e.{c} IS DISTINCT FROM s.{c}" for c in _CONTENT)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ingest AS
        SELECT s.*, e.sample_id AS old_id, ({changed}) AS changed
        FROM _staged s
        LEFT JOIN (SELECT * FROM samples WHERE dataset_id = ?) e ON e.orig_id = s.orig_id
        """,
        [dataset_id],
    )
    n_new, n_updated, n_total = _aggregate(
        con,
        "SELECT count(*) FILTER (old_id IS NULL), "
        "count(*) FILTER (old_id IS NOT NULL AND changed), count(*) FROM _ingest",
    )
    # Rewrite only what moved: removed and changed rows go, new and changed rows come in, so
    # re-ingesting an unchanged file writes nothing.
    con.execute(
        "DELETE FROM samples WHERE dataset_id = ? AND sample_id NOT IN "
        "(SELECT old_id FROM _ingest WHERE old_id IS NOT NULL AND NOT changed)",
        [dataset_id],
    )
    con.execute(
        f"""
        INSERT INTO samples (sample_id, dataset_id, {_COLUMNS})
        SELECT coalesce(old_id, ?::BIGINT * {ID_STRIDE} + ? - 1
                        + row_number() OVER (PARTITION BY old_id IS NULL ORDER BY position)),
               ?, {_COLUMNS}
        FROM _ingest
        WHERE old_id IS NULL OR changed
        """,
        [dataset_id, next_ordinal, dataset_id],
    )
    con.execute("DROP TABLE _ingest")
    return int(n_new), int(n_updated), int(n_total)


@dataclass(frozen=True)
class MergeResult:
    dataset_id: int
    n_new: int
    n_updated: int
    n_unchanged: int
    n_removed: int


@dataclass(frozen=True)
class Source:
    """What the catalog's datasets row records about where a dataset came from."""

    name: str
    fmt: str
    path: str
    image_root: str
    options: dict


def _stage_view(con, staged: object) -> None:
    """`_staged`: the finished rows, an Arrow table in memory or a staged Parquet file."""
    if isinstance(staged, Path):
        source = f"read_parquet({literal(str(staged))})"
        con.execute(f"CREATE OR REPLACE TEMP VIEW _staged AS SELECT * FROM {source}")
    else:
        con.register("_staged", staged)


def _drop_stage_view(con, staged: object) -> None:
    if isinstance(staged, Path):
        con.execute("DROP VIEW _staged")
    else:
        con.unregister("_staged")


def merge(catalog: Catalog, source: Source, done: Finished) -> MergeResult:
    """Write the finished rows into the catalog in one transaction, DuckDB's memory capped."""
    try:
        return _merge(catalog, source, done, MERGE_MEMORY)
    except duckdb.OutOfMemoryException:
        # What cannot spill (a big catalog's indexes) needs more than the cap: write without it.
        _reset_memory(catalog)
        return _merge(catalog, source, done, None)
    except BaseException:
        _reset_memory(catalog)
        raise


def _reset_memory(catalog: Catalog) -> None:
    """The cap is DuckDB's instance setting; other connections of this process share it."""
    with contextlib.suppress(duckdb.Error), catalog.connect() as con:
        con.execute("RESET memory_limit")


def _merge(catalog: Catalog, source: Source, done: Finished, limit: str | None) -> MergeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    name = source.name
    with catalog.transaction() as con:
        if limit:
            con.execute(f"SET memory_limit = '{limit}'")
        row = _one(con, "SELECT dataset_id, options FROM datasets WHERE name = ?", [name])
        if row is None:
            dataset_id = int(_aggregate(con, "SELECT nextval('dataset_ids')")[0])
            next_ordinal = 0
        else:
            dataset_id = int(row[0])
            old_options = json.loads(row[1] or "{}")
            max_row = _aggregate(
                con, "SELECT max(sample_id) FROM samples WHERE dataset_id = ?", [dataset_id]
            )
            from_rows = (int(max_row[0]) - dataset_id * ID_STRIDE + 1) if max_row[0] else 0
            next_ordinal = max(int(old_options.get("next_ordinal", 0)), from_rows)

        n_before = _aggregate(
            con, "SELECT count(*) FROM samples WHERE dataset_id = ?", [dataset_id]
        )[0]
        _stage_view(con, done.staged)
        if n_before == 0:
            # A new dataset: nothing to match, so no join and no intermediate copy.
            n_total = n_new = done.n_samples
            n_updated = n_kept = 0
            con.execute(
                f"""
                INSERT INTO samples (sample_id, dataset_id, {_COLUMNS})
                SELECT ?::BIGINT * {ID_STRIDE} + ? + position, ?, {_COLUMNS} FROM _staged
                """,
                [dataset_id, next_ordinal, dataset_id],
            )
        else:
            n_new, n_updated, n_total = _rematch(con, dataset_id, next_ordinal)
            n_kept = n_total - n_new
        _drop_stage_view(con, done.staged)
        options = {**source.options, "next_ordinal": next_ordinal + n_new}
        values = [source.fmt, source.path, source.image_root, now, n_total, done.n_flagged]
        values += [done.fingerprint, json.dumps(options)]
        if limit:
            con.execute("RESET memory_limit")
        if row is None:
            con.execute(
                "INSERT INTO datasets (format, source_path, image_root, updated_at, n_samples, "
                "n_flagged, fingerprint, options, dataset_id, name, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*values, dataset_id, name, now],
            )
        else:
            con.execute(
                "UPDATE datasets SET format = ?, source_path = ?, image_root = ?, updated_at = ?, "
                "n_samples = ?, n_flagged = ?, fingerprint = ?, options = ? WHERE dataset_id = ?",
                [*values, dataset_id],
            )
    return MergeResult(
        dataset_id=dataset_id,
        n_new=int(n_new),
        n_updated=int(n_updated),
        n_unchanged=int(n_kept - n_updated),
        n_removed=int(n_before - n_kept),
    )
