"""Starting a run: create (or find, to resume) its folder, then run it here or detach it.

Both front ends call this and show the `Launched` it returns in their own way (the CLI prints,
the TUI posts a message); nothing here prints or reads a command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from selection.jobs.context import EventHook
from selection.jobs.ray_exec import RayOptions
from selection.jobs.runner import create_run, prepare_resume, run_job, spawn_worker
from store import runs
from store.errors import ThresherError

RESUMABLE = ("cancelled", "failed", runs.INTERRUPTED)


@dataclass(frozen=True)
class Launched:
    """What a launch did. `previous` is the run's status before it ("queued" for a new run)."""

    run_id: str
    run_dir: Path
    status: str  # done | cancelled (ran here) | queued (detached) | running (on_start only)
    previous: str
    pid: int | None = None  # the detached worker's

    @property
    def already_done(self) -> bool:
        return self.previous == "done"

    @property
    def resumed(self) -> bool:
        """It continues an earlier attempt (finished shards are kept)."""
        return self.previous in RESUMABLE

    @property
    def detached(self) -> bool:
        return self.pid is not None


def start_run(
    catalog: Any,
    method: str,
    dataset: str,
    config: Any,
    *,
    detach: bool,
    seed: int = 0,
    name: str | None = None,
    sample_ids: list[int] | None = None,
    ray: RayOptions | None = None,
    on_event: EventHook | None = None,
    on_start: Callable[[Launched], None] | None = None,
) -> Launched:
    """Create (or find, to resume) the run of `method` on `dataset`, then `launch` it.

    A config with a `limit` (CLIPPER, eval) runs on a seeded subset of that many samples unless
    `sample_ids` says which."""
    limit = getattr(config, "limit", None)
    if sample_ids is None and limit:
        from store.datasets import seeded_sample_ids

        sample_ids = seeded_sample_ids(catalog, dataset, limit, seed)
    run_dir = create_run(
        catalog, method, dataset, config, seed=seed, run_id=name, sample_ids=sample_ids
    )
    return launch(catalog, run_dir, detach=detach, ray=ray, on_event=on_event, on_start=on_start)


def launch(
    catalog: Any,
    run_dir: Path,
    *,
    detach: bool,
    ray: RayOptions | None = None,
    on_event: EventHook | None = None,
    on_start: Callable[[Launched], None] | None = None,
) -> Launched:
    """Start or resume an existing run folder: in a detached worker, or here until it stops.

    `on_start` hears (status "running") just before a foreground run begins, so a caller can say
    what is about to happen; `on_event` gets the runner's progress events. A failed stage raises
    JobFailed; Ctrl-C propagates. The catalog's row is synced on every way out."""
    run_id = run_dir.name
    previous = runs.read_status(run_dir)["status"]
    launched = Launched(run_id, run_dir, previous, previous)
    try:
        if previous == "done":
            return launched
        if runs.is_locked(run_dir):
            raise ThresherError(
                f"run {run_id} is already running; `thresher attach {run_id}` to watch it."
            )
        if ray is not None:
            from selection.jobs.ray_exec import require_ray

            require_ray()  # fail here, not in a detached worker's log
        if detach:
            return replace(launched, status="queued", pid=spawn_worker(run_dir, ray=ray))
        prepare_resume(run_dir)
        if on_start is not None:
            on_start(replace(launched, status="running"))
        return replace(launched, status=run_job(run_dir, on_event=on_event, ray=ray))
    finally:
        runs.sync_runs(catalog, only=[run_id])
