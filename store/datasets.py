"""Dataset records and the queries everyone asks of them: list, get by name or id, counts, flags."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime

import duckdb

from store.catalog import Catalog
from store.errors import NotFound

_COLUMNS = (
    "dataset_id, name, format, source_path, image_root, created_at, updated_at, n_samples, "
    "n_flagged, fingerprint, options"
)


@dataclass(frozen=True)
class DatasetRecord:
    dataset_id: int
    name: str
    format: str  # llava | swift | sharegpt | table
    source_path: str
    image_root: str | None
    created_at: datetime
    updated_at: datetime
    n_samples: int
    n_flagged: int
    fingerprint: str
    options: dict = field(default_factory=dict)  # mapping, tags, check_images, ...

    @classmethod
    def from_row(cls, row: tuple) -> DatasetRecord:
        # one value per field, in _COLUMNS order; options is stored as JSON text
        values = dict(zip((f.name for f in fields(cls)), row, strict=True))
        values["options"] = json.loads(values["options"]) if values["options"] else {}
        return cls(**values)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def list_datasets(
    catalog: Catalog, con: duckdb.DuckDBPyConnection | None = None
) -> list[DatasetRecord]:
    """Every dataset, by name."""
    if con is None:
        with catalog.connect() as con:
            return list_datasets(catalog, con)
    rows = _rows(con, f"SELECT {_COLUMNS} FROM datasets ORDER BY name")
    return [DatasetRecord.from_row(r) for r in rows]


def get_dataset(
    catalog: Catalog, name: str | int, con: duckdb.DuckDBPyConnection | None = None
) -> DatasetRecord:
    """The dataset called `name` (or with that dataset_id); NotFound names the ones that exist."""
    if con is None:
        with catalog.connect() as con:
            return get_dataset(catalog, name, con)
    if isinstance(name, int):
        rows = _rows(con, f"SELECT {_COLUMNS} FROM datasets WHERE dataset_id = ?", [name])
    else:
        rows = _rows(con, f"SELECT {_COLUMNS} FROM datasets WHERE name = ?", [name])
    if not rows:
        names = [r[0] for r in _rows(con, "SELECT name FROM datasets ORDER BY name")]
        known = f"known: {', '.join(names)}" if names else "the catalog has none yet"
        raise NotFound(
            f"no dataset {name!r} in {catalog.path} ({known}). "
            "Ingest one with `thresher ingest PATH --name NAME` or `thresher demo`."
        )
    return DatasetRecord.from_row(rows[0])


def sample_count(
    catalog: Catalog, dataset_id: int, con: duckdb.DuckDBPyConnection | None = None
) -> int:
    """Samples of one dataset, counted in `samples` (not the cached datasets.n_samples)."""
    if con is None:
        with catalog.connect() as con:
            return sample_count(catalog, dataset_id, con)
    return int(_rows(con, "SELECT count(*) FROM samples WHERE dataset_id = ?", [dataset_id])[0][0])


def flag_counts(
    catalog: Catalog, dataset_id: int | None = None, con: duckdb.DuckDBPyConnection | None = None
) -> dict[int, dict[str, int]]:
    """{dataset_id: {flag: samples carrying it}} for one dataset or all of them."""
    if con is None:
        with catalog.connect() as con:
            return flag_counts(catalog, dataset_id, con)
    where = "WHERE dataset_id = ?" if dataset_id is not None else ""
    rows = _rows(
        con,
        f"SELECT dataset_id, flag, count(*) FROM "
        f"(SELECT dataset_id, unnest(flags) AS flag FROM samples {where}) "
        "GROUP BY ALL ORDER BY dataset_id, flag",
        [dataset_id] if dataset_id is not None else [],
    )
    out: dict[int, dict[str, int]] = {}
    for ds, flag, n in rows:
        out.setdefault(int(ds), {})[flag] = int(n)
    return out


def seeded_sample_ids(catalog: Catalog, dataset: str, limit: int, seed: int) -> list[int] | None:
    """`limit` sample ids of the dataset drawn with `seed`, sorted (None: the dataset is not larger).

    What a config's `limit` means (CLIPPER, eval): the same (dataset, limit, seed) gives the same
    subset, so rerunning the command resumes the same run."""
    import random

    with catalog.connect() as con:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM samples JOIN datasets USING (dataset_id) "
                "WHERE datasets.name = ? ORDER BY sample_id",
                [dataset],
            ).fetchall()
        ]
    if not ids:
        raise NotFound(f"dataset {dataset!r} has no samples (or does not exist); see `thresher ls`")
    if limit >= len(ids):
        return None
    return sorted(random.Random(seed).sample(ids, limit))
