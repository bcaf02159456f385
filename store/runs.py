"""Run folders on disk: layout, run.json, the input snapshot, status, progress events and catalog views."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------- status and liveness


@contextlib.contextmanager
def creating_run_folder(runs_dir: Path, run_id: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Build a run folder under a temporary name, then publish it whole and register it.

    The caller fills the yielded folder and the `meta` dict (run.json). On success run.json and a
    queued status are written, the folder is renamed into place (it appears complete or not at
    all; a concurrent creator of the same id loses at the rename) and the catalog row is the
    caller's to insert with `insert_run_row`. Any exception removes the temporary folder.
    """
    import shutil

    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = runs_dir / f".{run_id}.creating-{os.getpid()}"
    tmp.mkdir()
    meta: dict[str, Any] = {}
    try:
        yield tmp, meta
        write_json_atomic(tmp / RUN_JSON, meta)
        write_status(tmp, "queued")
        os.rename(tmp, runs_dir / run_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_status(run_dir: Path, status: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json and set `status`; atomic."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    current = _read_status_file(run_dir)
    current.update(fields)
    current["status"] = status
    current["updated_at"] = time.time()
    write_json_atomic(run_dir / STATUS, current)
    return current


def _read_status_file(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATUS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@contextlib.contextmanager
def hold_run_lock(run_dir: Path, wait_s: float = 0.25) -> Iterator[None]:
    """Exclusive lock a job holds while it runs; the kernel drops it when the process dies (even kill -9)."""
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A reader probing liveness holds it for microseconds; a real job holds it for good.
                if time.monotonic() >= deadline:
                    pid = _read_status_file(run_dir).get("pid")
                    raise ThresherError(
                        f"run {run_dir.name} is already running (PID {pid}); "
                        f"`thresher attach {run_dir.name}` to watch it or "
                        f"`thresher cancel {run_dir.name}` to stop it."
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def is_locked(run_dir: Path) -> bool:
    """True while some process holds the run's lock, i.e. a job is alive on this folder."""
    path = run_dir / LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def pid_alive(pid: int | None) -> bool:
    """A live, non-zombie process with this PID."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json as the job wrote it, with `status` = "interrupted" when the job died mid-run."""
    status = _read_status_file(run_dir)
    status.setdefault("status", "queued")
    if status["status"] == "running" and not is_locked(run_dir):
        status["status"] = INTERRUPTED
    elif status["status"] == "queued":
        # A detached launch writes job.pid before the worker takes the lock.
        pid = _read_pid(run_dir)
        if pid and not pid_alive(pid) and not is_locked(run_dir):
            status["status"] = INTERRUPTED
    return status


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / PID).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def request_cancel(run_dir: Path) -> int | None:
    """Ask a job to stop after its current shard: a flag file it polls, plus SIGTERM if it is alive."""
    (run_dir / CANCEL).write_text(f"{time.time()}\n")
    pid = read_status(run_dir).get("pid") or _read_pid(run_dir)
    if pid and is_locked(run_dir) and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
        return pid
    return None


# ---------------------------------------------------------------- progress events


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """One JSON line, written with a single O_APPEND write so a reader sees whole lines or a tail."""
    line = (json.dumps(event, separators=(",", ":"), default=float) + "\n").encode()
    fd = os.open(run_dir / PROGRESS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_last_events(run_dir: Path, max_bytes: int = 65536) -> list[dict[str, Any]]:
    """The events in the last `max_bytes` of the log: enough for "where is this run now"."""
    try:
        size = (run_dir / PROGRESS).stat().st_size
    except FileNotFoundError:
        return []
    start = max(0, size - max_bytes)
    if start:
        with open(run_dir / PROGRESS, "rb") as fh:
            fh.seek(start - 1)
            # Begin after the first newline at or past `start`: the line cut in half is skipped.
            start += fh.read(max_bytes).find(b"\n")
    return read_events(run_dir, start)[0]


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte `offset` on, and the offset to continue from.

    A last line without its newline is being written right now (or the writer died mid-line):
    it is skipped and will be read again from the same offset next time.
    """
    try:
        with open(run_dir / PROGRESS, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in data[: end + 1].splitlines():
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a torn line left by a killed writer, followed by newer whole lines
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end + 1


@dataclass
class StageProgress:
    stage: str
    done: int = 0
    total: int | None = None
    unit: str = "items"
    rate: float | None = None
    eta_s: float | None = None
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def fold_events(events: list[dict[str, Any]], into: dict[str, StageProgress]) -> None:
    """Fold events into the latest state per stage (what `runs` and `attach` display)."""
    for ev in events:
        name = ev.get("stage")
        if not name:
            continue
        sp = into.setdefault(name, StageProgress(name))
        for key in ("done", "total", "unit", "rate", "eta_s"):
            if ev.get(key) is not None:
                setattr(sp, key, ev[key])
        if ev.get("extra"):
            sp.extra.update(ev["extra"])
        if ev.get("event") == "stage_start":
            sp.finished = False
        if ev.get("event") == "stage_done":
            sp.finished = True
            sp.eta_s = 0.0


# ---------------------------------------------------------------- listing


@dataclass
class RunInfo:
    run_id: str
    path: Path
    meta: dict[str, Any]
    status: dict[str, Any]
    stages: dict[str, StageProgress]

    @property
    def state(self) -> str:
        return self.status["status"]

    @property
    def current_stage(self) -> StageProgress | None:
        """The stage being worked on: the last one started (or the last one seen)."""
        if not self.stages:
            return None
        return list(self.stages.values())[-1]


def load_run(run_dir: Path, full: bool = False) -> RunInfo:
    """A run's metadata, status and stage progress (from the log's tail unless `full`)."""
    stages: dict[str, StageProgress] = {}
    fold_events(read_events(run_dir)[0] if full else read_last_events(run_dir), stages)
    return RunInfo(run_dir.name, run_dir, read_run_json(run_dir), read_status(run_dir), stages)


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder, newest first; a folder whose run.json is unreadable is skipped."""
    runs = []
    for path in runs_dir.glob("*/" + RUN_JSON):
        if path.parent.name.startswith("."):  # a run still being created (or a crashed creation)
            continue
        with contextlib.suppress(ThresherError):
            runs.append(load_run(path.parent))
    runs.sort(key=lambda r: r.meta.get("created_at", ""), reverse=True)
    return runs


# ---------------------------------------------------------------- results and catalog views


def stage_files(run_dir: Path, stage: str, suffix: str = ".parquet") -> list[Path]:
    """Complete shards of a stage in index order (temp files never match)."""
    return sorted((run_dir / stage).glob(f"part-*{suffix}"))


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_name(run_id: str, stage: str) -> str:
    return f"run_{run_id}_{stage}"


def result_summary(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Row and selected counts of a finished run, read from its shards with an in-memory DuckDB."""
    import duckdb

    summary: dict[str, Any] = {}
    outputs = meta.get("outputs") or {}
    table = outputs.get("table")
    if not table or not stage_files(run_dir, table):
        return summary
    glob = _sql_str(str(run_dir.resolve() / table / "*.parquet"))
    sums = [f'count_if("{col}")' for col in outputs.get("selections", {}).values()]
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
    summary["selected"] = dict(zip(outputs.get("selections", {}), row[1:], strict=True))
    return summary


def create_views(con: Any, run_dir: Path, meta: dict[str, Any]) -> list[str]:
    """One view per Parquet stage of the run; the catalog stores no copy of the results."""
    names = []
    for stage in meta.get("stages", []):
        if not stage_files(run_dir, stage):
            continue
        name = view_name(run_dir.name, stage)
        glob = _sql_str(str(run_dir.resolve() / stage / "*.parquet"))
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
