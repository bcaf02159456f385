"""Create run folders and run their stages: skip finished shards, write new ones atomically, report progress."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selection.jobs.context import EventHook, RunContext
from selection.jobs.ray_exec import RayExecutor, RayOptions
from selection.jobs.registry import (
    config_from_params,
    config_to_params,
    get_method,
    load_entry,
)
from selection.jobs.stage import shard_path, write_shard_file
from store import runs
from store.errors import NotFound, ThresherError
from store.redact import redact


class JobFailed(ThresherError):
    """A stage raised; status.json says failed and job.log has the traceback."""


# ---------------------------------------------------------------- creating a run


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "x"


def default_run_id(method: str, dataset: str, identity: dict[str, Any]) -> str:
    """`<method>-<dataset>-<8 hex>` from everything that defines the run: same command, same id."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{_slug(method)}-{_slug(dataset)}-{digest}"


_IDENTITY_KEYS = ("method", "dataset", "dataset_fingerprint", "seed", "subset", "params")


def create_run(
    catalog: Any,
    method: str,
    dataset_name: str,
    config: Any,
    *,
    seed: int,
    run_id: str | None = None,
    sample_ids: list[int] | None = None,
) -> Path:
    """Make `runs/<run_id>/` (run.json, input.parquet, status queued) and its catalog row.

    An existing run with the same identity (method, dataset fingerprint, seed, subset, params)
    is returned as is, so the same command resumes; different parameters raise ThresherError.
    """
    spec = get_method(method)
    cls = spec.config_class()
    if not isinstance(config, cls):
        raise TypeError(f"method {method!r} takes a {cls.__name__}, got {type(config).__name__}")
    params = config_to_params(config)
    with catalog.connect() as con:
        row = con.execute(
            "SELECT dataset_id, fingerprint FROM datasets WHERE name = ?", [dataset_name]
        ).fetchone()
        if row is None:
            names = [
                r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name").fetchall()
            ]
            raise NotFound(
                f"no dataset {dataset_name!r} in {catalog.path} (known: "
                f"{', '.join(names) or 'none'}); add one with `thresher ingest`."
            )
    dataset_id, fingerprint = row
    subset = None
    if sample_ids is not None:
        ids = ",".join(str(i) for i in sorted(set(sample_ids)))
        subset = {"n": len(set(sample_ids)), "sha256": hashlib.sha256(ids.encode()).hexdigest()}
    identity = {
        "method": method,
        "dataset": dataset_name,
        "dataset_fingerprint": fingerprint,
        "seed": int(seed),
        "subset": subset,
        "params": params,
    }
    run_id = runs.check_run_id(run_id) if run_id else default_run_id(method, dataset_name, identity)
    runs_dir = catalog.workspace.runs_dir
    run_dir = runs_dir / run_id
    if runs.resumes(run_dir, identity, _IDENTITY_KEYS):
        return run_dir

    stage_names = [s.name for s in load_entry(spec.build_stages)(config)]
    with runs.creating_run_folder(runs_dir, run_id) as (tmp, meta):
        with catalog.connect() as con:
            n_rows = runs.snapshot_input(con, dataset_id, tmp / runs.INPUT, sample_ids)
        if n_rows == 0:
            raise ThresherError(
                f"dataset {dataset_name!r} has no samples{' in this subset' if subset else ''}; "
                "nothing to run. Ingest data first (`thresher ingest`)."
            )
        meta.update(
            {
                **identity,
                "dataset_id": dataset_id,
                "n_input": n_rows,
                "stages": stage_names,
                "outputs": spec.outputs_for(config),
                "build_stages": spec.build_stages,
                "config_cls": spec.config_cls,
            }
        )
    with catalog.transaction() as con:
        runs.insert_run_row(con, run_dir, meta, "queued")
    return run_dir


# ---------------------------------------------------------------- running a run


def prepare_resume(run_dir: Path) -> None:
    """Called by whoever (re)starts a run: an old cancel request must not stop the new attempt."""
    (Path(run_dir) / runs.CANCEL).unlink(missing_ok=True)


def run_job(
    run_dir: str | os.PathLike[str],
    *,
    on_event: EventHook | None = None,
    handle_signals: bool = True,
    ray: RayOptions | None = None,
) -> str:
    """Run (or resume) every stage of a run in this process; returns the final status.

    SIGTERM (and, in the foreground, a first Ctrl-C) lets the current shard finish, then the run
    stops as "cancelled". A stage exception marks it "failed" and raises JobFailed. With `ray`,
    stages with more than one missing shard run them on Ray actors (selection.jobs.ray_exec).
    """
    run_dir = Path(run_dir).resolve()
    meta = runs.read_run_json(run_dir)
    with runs.hold_run_lock(run_dir):
        if runs.read_status(run_dir)["status"] == "done":
            return "done"
        config = config_from_params(load_entry(meta["config_cls"]), meta["params"])
        ctx = RunContext(run_dir, meta, config, on_event=on_event)
        runs.write_status(
            run_dir,
            "running",
            pid=os.getpid(),
            started_at=time.time(),
            finished_at=None,
            error=None,
        )
        ctx.log.info("run %s: started in PID %d", ctx.run_id, os.getpid())
        executor = RayExecutor(ray, run_dir) if ray is not None else None
        try:
            with _signals(ctx, handle_signals):
                stages = load_entry(meta["build_stages"])(config)
                finished = all(_run_stage(ctx, stage, executor) for stage in stages)
        except KeyboardInterrupt:
            _finish(ctx, "cancelled", "run_cancelled", error="interrupted (Ctrl-C)")
            raise
        except BaseException as exc:
            ctx.log.error("run %s failed:\n%s", ctx.run_id, traceback.format_exc())
            error = redact(f"{type(exc).__name__}: {exc}")
            stage = ctx._stage or "(setup)"
            _finish(ctx, "failed", "run_failed", error=error, stage=stage)
            raise JobFailed(
                f"run {ctx.run_id} failed in stage {stage}: {error} "
                f"(traceback in {run_dir / runs.LOG}; fix it, then `thresher resume {ctx.run_id}`)."
            ) from exc
        finally:
            if executor is not None:
                executor.close()
            ctx.sampler.close()
        if finished:
            _finish(ctx, "done", "run_done")
            return "done"
        _finish(ctx, "cancelled", "run_cancelled")
        return "cancelled"


def _finish(
    ctx: RunContext, status: str, event: str, error: str | None = None, stage: str | None = None
) -> None:
    fields = {"error": error, "failed_stage": stage} if error else {}
    runs.write_status(ctx.run_dir, status, finished_at=time.time(), error=error)
    ctx._stage = None
    ctx.emit(event, **{k: v for k, v in fields.items() if v is not None})
    ctx.log.info("run %s: %s", ctx.run_id, status)


def _run_stage(ctx: RunContext, stage: Any, executor: RayExecutor | None = None) -> bool:
    """All shards of one stage; False when a cancel request stopped it between shards."""
    stage_dir = ctx.stage_dir(stage.name)
    for stale in stage_dir.glob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    ctx._stage, ctx._unit = stage.name, getattr(stage, "unit", "items")
    ctx._total, ctx._base = None, 0
    shards = stage.plan(ctx)
    todo = [s for s in shards if not shard_path(stage_dir, stage, s).exists()]
    ctx._total = sum(s.size for s in shards)
    ctx._base = ctx._resumed = ctx._total - sum(s.size for s in todo)
    ctx._t0 = time.monotonic()
    ctx.emit(
        "stage_start",
        done=ctx._base,
        total=ctx._total,
        unit=ctx._unit,
        shards=len(shards),
        skipped=len(shards) - len(todo),
    )
    if executor is not None and len(todo) > 1:
        if not executor.run_stage(ctx, stage, todo):
            ctx.log.info("stage %s: cancelled with shards left", stage.name)
            return False
        todo = []
    for shard in todo:
        if ctx.cancelled():
            ctx.log.info("stage %s: cancelled before shard %d", stage.name, shard.index)
            return False
        value = stage.run_shard(ctx, shard)
        if value is None and ctx.cancelled():  # a long shard (the fine-tune) stopped on request
            ctx.log.info("stage %s: cancelled inside shard %d", stage.name, shard.index)
            return False
        write_shard_file(stage, shard_path(stage_dir, stage, shard), value)
        ctx._base += shard.size
        ctx._emit_progress("progress", ctx._base)
    ctx._emit_progress("stage_done", ctx._base)
    return True


@contextlib.contextmanager
def _signals(ctx: RunContext, enabled: bool) -> Iterator[None]:
    """SIGTERM -> cancel after this shard; first SIGINT likewise, a second one stops at once."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        ctx.request_cancel()

    def on_int(signum: int, frame: Any) -> None:
        if ctx.cancelled():
            raise KeyboardInterrupt
        ctx.request_cancel()
        os.write(2, b"\nCancelling after the current shard (Ctrl-C again to stop now)...\n")

    old = signal.signal(signal.SIGTERM, on_term), signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])


def spawn_worker(run_dir: Path, ray: RayOptions | None = None) -> int:
    """Start `python -m selection.jobs.worker RUN_DIR` in a new session (survives logout); returns its PID."""
    run_dir = Path(run_dir).resolve()
    if runs.is_locked(run_dir):
        raise ThresherError(
            f"run {run_dir.name} is already running; `thresher attach {run_dir.name}` to watch it."
        )
    prepare_resume(run_dir)
    if runs.read_status(run_dir)["status"] != "done":  # a done run stays done (the worker no-ops)
        runs.write_status(run_dir, "queued", pid=None, error=None)
    env = dict(os.environ)
    # The worker imports the method's entry points exactly as this process could.
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    with open(run_dir / runs.LOG, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "selection.jobs.worker",
                str(run_dir),
                *(ray.validate().to_argv() if ray is not None else []),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    (run_dir / runs.PID).write_text(f"{proc.pid}\n")
    return proc.pid
