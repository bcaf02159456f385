"""Merge a staged Arrow table of samples into the catalog in one transaction, keeping sample ids.

A sample that was ingested before under the same dataset name and orig_id keeps its sample_id;
new orig_ids get fresh ordinals (never reused, even after samples were removed), so decisions
and run snapshots that name a sample_id stay valid across re-ingests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa

from store.catalog import Catalog

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


def merge(
    catalog: Catalog,
    *,
    name: str,
    fmt: str,
    source_path: str,
    image_root: str,
    options: dict,
    staged: pa.Table,
    n_flagged: int,
    fingerprint: str,
) -> MergeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with catalog.transaction() as con:
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
        con.register("_staged", staged)
        if n_before == 0:
            # A new dataset: nothing to match, so no join and no intermediate copy.
            n_total = n_new = staged.num_rows
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
        con.unregister("_staged")
        options = {**options, "next_ordinal": next_ordinal + n_new}
        values = [
            fmt,
            source_path,
            image_root,
            now,
            n_total,
            n_flagged,
            fingerprint,
            json.dumps(options),
        ]
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
