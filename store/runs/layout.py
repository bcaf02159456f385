"""Run-folder layout: file names, statuses, run ids, run.json, atomic writes and the input snapshot."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import NotFound, ThresherError

if TYPE_CHECKING:  # pyarrow is imported where used: `thresher --help` should not pay for it
    import pyarrow as pa

RUN_JSON = "run.json"
INPUT = "input.parquet"
STATUS = "status.json"
PROGRESS = "progress.jsonl"
LOG = "job.log"
PID = "job.pid"
CANCEL = "cancel"
LOCK = ".lock"

STATUSES = ("queued", "running", "done", "failed", "cancelled")
# Not written by anyone: what readers report for "running" when no process holds the run's lock.
INTERRUPTED = "interrupted"
FINISHED = ("done", "failed", "cancelled")

INPUT_COLUMNS = "sample_id, orig_id, images, question, answer, conversation, task, flags"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# ---------------------------------------------------------------- small file helpers


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write to a temp name and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Deterministic Parquet (fixed codec, no timestamps) written under a temp name, then renamed.

    The temp name ends in `.tmp`, so `*.parquet` globs (and DuckDB views) never see it.
    """
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=3, write_statistics=True)
    os.replace(tmp, path)


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ThresherError(
            f"run name {run_id!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)."
        )
    return run_id


def resolve_run_dir(runs_dir: Path, run: str) -> Path:
    """A run id (or a path to a run folder) -> its folder; NotFound names the ids that exist."""
    candidate = Path(run)
    if candidate.is_dir() and (candidate / RUN_JSON).exists():
        return candidate.resolve()
    path = runs_dir / run
    if (path / RUN_JSON).exists():
        return path
    known = sorted(p.name for p in runs_dir.glob("*") if (p / RUN_JSON).exists())
    prefix = [k for k in known if k.startswith(run)]
    if len(prefix) == 1:
        return runs_dir / prefix[0]
    hint = f"; did you mean one of {', '.join(prefix[:5])}" if prefix else ""
    raise NotFound(
        f"no run {run!r} under {runs_dir}{hint}. `thresher runs` lists the runs of this workspace."
    )


def read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_JSON
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist: {run_dir} is not a run folder.") from None
    except json.JSONDecodeError as exc:
        raise ThresherError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}).") from None


def resumes(run_dir: Path, identity: dict[str, Any], keys: tuple[str, ...] = ()) -> bool:
    """Whether `run_dir` already holds this run (same `identity`, over `keys` or all of its keys),
    so that creating it resumes it. False when there is no run there; an error naming each
    difference when another run's settings are there."""
    if not (run_dir / RUN_JSON).exists():
        return False
    old, diffs = read_run_json(run_dir), []
    for key in keys or tuple(identity):
        a, b = old.get(key), identity.get(key)
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [
                f"params.{k}: {a.get(k)!r} -> {b.get(k)!r}"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    if diffs:
        raise ThresherError(
            f"run {run_dir.name} already exists with other settings ({'; '.join(diffs)}). Rerun "
            "with its original options to resume it, or choose another --name."
        )
    return True


# ---------------------------------------------------------------- input snapshot


def snapshot_input(
    con: Any, dataset_id: int, dest: Path, sample_ids: list[int] | None = None
) -> int:
    """Copy a dataset's samples (or the listed subset) to `dest` in sample_id order; returns the row count.

    Goes through Arrow batches so a large dataset never sits in Python objects.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if sample_ids is None:
        query = f"SELECT {INPUT_COLUMNS} FROM samples WHERE dataset_id = $1 ORDER BY sample_id"
        reader = con.sql(query, params=[dataset_id]).to_arrow_reader(65536)
    else:
        wanted = pa.table({"sample_id": pa.array(sorted(set(sample_ids)), pa.int64())})
        con.register("_thresher_subset", wanted)
        try:
            missing = con.execute(
                "SELECT w.sample_id FROM _thresher_subset w LEFT JOIN samples s "
                "ON s.sample_id = w.sample_id AND s.dataset_id = ? WHERE s.sample_id IS NULL "
                "ORDER BY 1 LIMIT 5",
                [dataset_id],
            ).fetchall()
            if missing:
                ids = ", ".join(str(r[0]) for r in missing)
                raise NotFound(
                    f"sample ids not in dataset {dataset_id}: {ids}; pass ids from that dataset."
                )
            query = (
                f"SELECT {INPUT_COLUMNS} FROM samples WHERE dataset_id = $1 "
                "AND sample_id IN (SELECT sample_id FROM _thresher_subset) ORDER BY sample_id"
            )
            table = con.sql(query, params=[dataset_id]).to_arrow_table()
        finally:
            con.unregister("_thresher_subset")
        write_parquet_atomic(table, dest)
        return table.num_rows
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    rows = 0
    with pq.ParquetWriter(tmp, reader.schema, compression="zstd", compression_level=3) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    os.replace(tmp, dest)
    return rows
