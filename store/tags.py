"""Tags and notes on samples: an append-only log like decisions, filterable, carried into exports.

A tag is on when the latest `add`/`remove` row of its (sample, tag) is `add`; notes accumulate
(each one is kept, oldest first). Tags belong to samples, not runs, so a tag set while reviewing
one run shows in every run of that dataset and in every export of those samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from store.decisions import default_author
from store.errors import NotFound, ThresherError
from store.ids import id_line_sql

if TYPE_CHECKING:
    import duckdb

    from store.catalog import Catalog

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,63}$")

# The tags that are on, one row per (sample_id, tag).
CURRENT_SQL = """
    SELECT sample_id, tag FROM (
        SELECT sample_id, tag, action,
               row_number() OVER (PARTITION BY sample_id, tag ORDER BY seq DESC) AS rn
        FROM tags WHERE action <> 'note')
    WHERE rn = 1 AND action = 'add'
"""


@dataclass(frozen=True)
class Note:
    seq: int
    sample_id: int
    note: str
    author: str
    tagged_at: datetime
    run_id: str | None


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag or ""):
        raise ThresherError(
            f"tag {tag!r}: use 1-64 letters, digits or _ . : / + - (starting with a letter or "
            "digit), e.g. blurry, ocr:bad, review/2"
        )
    return tag


def _ids(sample_ids: Iterable[int] | pa.Array | pa.ChunkedArray) -> pa.Array:
    ids = (
        sample_ids
        if isinstance(sample_ids, pa.Array | pa.ChunkedArray)
        else pa.array(list(sample_ids), pa.int64())
    )
    ids = pc.unique(ids.cast(pa.int64()))
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def _append(
    catalog: Catalog,
    ids: pa.Array,
    action: str,
    tag: str | None,
    note: str | None,
    run_id: str | None,
    author: str | None,
) -> int:
    if len(ids) == 0:
        return 0
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with catalog.transaction() as con:
        con.register("_tag_batch", pa.table({"sample_id": ids}))
        try:
            unknown = con.execute(
                "SELECT sample_id FROM _tag_batch ANTI JOIN samples USING (sample_id) LIMIT 5"
            ).fetchall()
            if unknown:
                raise NotFound(
                    f"sample ids {[r[0] for r in unknown]} are not in the catalog; nothing was tagged."
                )
            con.execute(
                "INSERT INTO tags SELECT nextval('tag_seq'), sample_id, ?, ?, ?, ?, ?, ? "
                "FROM _tag_batch",
                [tag, action, note, run_id, author or default_author(), now],
            )
        finally:
            con.unregister("_tag_batch")
    return len(ids)


def tag(
    catalog: Catalog,
    sample_ids: Iterable[int] | pa.Array | pa.ChunkedArray,
    name: str,
    *,
    remove: bool = False,
    run_id: str | None = None,
    author: str | None = None,
) -> int:
    """Add (or remove) `name` on every sample as one batch; return how many rows were appended."""
    action = "remove" if remove else "add"
    return _append(catalog, _ids(sample_ids), action, check_tag(name), None, run_id, author)


def add_note(
    catalog: Catalog,
    sample_ids: Iterable[int] | pa.Array | pa.ChunkedArray,
    text: str,
    *,
    run_id: str | None = None,
    author: str | None = None,
) -> int:
    if not text.strip():
        raise ThresherError("a note needs some text")
    return _append(catalog, _ids(sample_ids), "note", None, text.strip(), run_id, author)


def current_tags(
    con: duckdb.DuckDBPyConnection, sample_ids: Iterable[int] | None = None
) -> dict[int, list[str]]:
    """Sample -> its tags that are on (sorted); only tagged samples appear."""
    sql = f"SELECT sample_id, list(tag ORDER BY tag) FROM ({CURRENT_SQL}) c"
    if sample_ids is None:
        rows = con.execute(sql + " GROUP BY 1").fetchall()
    else:
        con.register("_tag_ids", pa.table({"sample_id": _ids(sample_ids)}))
        try:
            rows = con.execute(sql + " SEMI JOIN _tag_ids USING (sample_id) GROUP BY 1").fetchall()
        finally:
            con.unregister("_tag_ids")
    return {int(s): list(t) for s, t in rows}


def notes(con: duckdb.DuckDBPyConnection, sample_id: int) -> list[Note]:
    rows = con.execute(
        "SELECT seq, sample_id, note, author, tagged_at, run_id FROM tags "
        "WHERE action = 'note' AND sample_id = ? ORDER BY seq",
        [sample_id],
    ).fetchall()
    return [Note(*r) for r in rows]


def tag_counts(con: duckdb.DuckDBPyConnection, dataset_id: int | None = None) -> dict[str, int]:
    """Tag -> samples that carry it now (of one dataset, or all), most used first."""
    where = "" if dataset_id is None else f"WHERE sample_id >> 32 = {int(dataset_id)}"
    rows = con.execute(
        f"SELECT tag, count(*) FROM ({CURRENT_SQL}) c {where} GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    return {t: int(n) for t, n in rows}


def tagged_samples(
    con: duckdb.DuckDBPyConnection, name: str, dataset_id: int | None = None
) -> pa.Table:
    """(sample_id, orig_id, id_line) of the samples that carry `name` now (of one dataset, or
    all), by id; id_line is the orig_id as an id-list line (store.ids)."""
    where = "" if dataset_id is None else "AND s.dataset_id = $d"
    sql = (
        f"SELECT c.sample_id, s.orig_id, {id_line_sql('s.orig_id')} AS id_line FROM ({CURRENT_SQL}) c JOIN samples s USING (sample_id) "
        f"WHERE c.tag = $tag {where} ORDER BY 1"
    )
    params: dict[str, Any] = {"tag": check_tag(name)}
    if dataset_id is not None:
        params["d"] = dataset_id
    return con.sql(sql, params=params).to_arrow_table()


def tagged_ids(con: duckdb.DuckDBPyConnection, name: str) -> pa.Array:
    """Sample ids that carry `name` now, ascending."""
    return tagged_samples(con, name).column("sample_id").combine_chunks()


def sidecar_tags(con: duckdb.DuckDBPyConnection, samples_sql: str) -> dict[str, Any] | None:
    """The tags and notes of the exported samples (`samples_sql` yields sample_id, orig_id), for
    the export sidecar keyed by the source's ids; None when the catalog holds no tag yet."""
    last = con.execute("SELECT max(seq) FROM tags").fetchone()
    if last is None or last[0] is None:
        return None
    rows = con.execute(
        f"""WITH s AS ({samples_sql}),
        t AS (SELECT sample_id, list(tag ORDER BY tag) AS tags FROM ({CURRENT_SQL}) c GROUP BY 1),
        n AS (SELECT sample_id, list(note ORDER BY seq) AS notes FROM tags
              WHERE action = 'note' GROUP BY 1)
        SELECT s.orig_id, t.tags, n.notes FROM s LEFT JOIN t USING (sample_id)
        LEFT JOIN n USING (sample_id) WHERE t.tags IS NOT NULL OR n.notes IS NOT NULL
        ORDER BY s.sample_id"""
    ).fetchall()
    counts: dict[str, int] = {}
    samples: dict[str, dict[str, list[str]]] = {}
    for orig_id, tags, texts in rows:
        entry = samples.setdefault(str(orig_id), {})
        if tags:
            entry["tags"] = list(tags)
            for t in tags:
                counts[t] = counts.get(t, 0) + 1
        if texts:
            entry["notes"] = list(texts)
    return {
        "last_seq": int(last[0]),
        "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "samples": samples,
    }


def resolve_samples(
    con: duckdb.DuckDBPyConnection, values: Iterable[str], dataset_id: int | None = None
) -> pa.Array:
    """Sample ids for what a user typed: the source file's id within `dataset_id` when given
    (then a sample_id), else a sample_id; NotFound names the first values that match nothing."""
    wanted = pa.table({"v": pa.array([str(v) for v in values], pa.string())})
    con.register("_tag_wanted", wanted)
    try:
        by_orig = (
            "(SELECT sample_id FROM samples WHERE dataset_id = $d AND orig_id = w.v LIMIT 1)"
            if dataset_id is not None
            else "NULL"
        )
        found = con.sql(
            f"SELECT w.v, coalesce({by_orig}, (SELECT sample_id FROM samples "
            "WHERE sample_id = TRY_CAST(w.v AS BIGINT))) AS sample_id FROM _tag_wanted w",
            params={"d": dataset_id} if dataset_id is not None else None,
        ).to_arrow_table()
    finally:
        con.unregister("_tag_wanted")
    missing = found.filter(pc.is_null(found["sample_id"]))["v"].to_pylist()
    if missing:
        where = (
            "in that dataset" if dataset_id is not None else "(pass --dataset to use source ids)"
        )
        raise NotFound(f"no sample {missing[:5]} {where}; nothing was tagged.")
    return _ids(found["sample_id"])
