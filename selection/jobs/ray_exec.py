"""Scale-out: a stage's missing shards run on Ray actors instead of in the job process.

The runner still plans every stage, skips finished shards, reports progress and handles cancel
and failure; only `run_shard` (and the atomic shard write) moves to the actors. Each actor builds
the method's stages once from run.json, so a model loaded by one shard (a VLM engine, the CLIP
encoder) serves every later shard and stage that actor runs, as it does in a single process.
A shard's output depends only on the input rows, earlier stages and its own seed, so the result
is the same whichever actor ran it, and a run started on Ray can be resumed without it.

Assumption: the actors see the run folder at the same path (one machine, or a shared
filesystem on a cluster). Single-shard stages (k-means, selector training, fine-tune) run in the
job process. Ray is an optional extra: `pip install 'thresher[ray]'`.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selection.jobs.context import RunContext
from selection.jobs.stage import Shard, shard_path, write_shard_file
from store.errors import ThresherError


@dataclass(frozen=True)
class RayOptions:
    """How to fan shards out. Not part of a run's identity: resume with or without Ray."""

    workers: int = 2
    """Actors, each running one shard at a time."""
    address: str | None = None
    """None: start a local Ray instance (or use the one this process already has); "auto" or
    "ray://host:10001": join a running cluster."""
    gpus_per_worker: float = 0.0
    """GPUs reserved per actor (1 for a VLM engine or the CLIP encoder on a GPU box)."""
    cpus_per_worker: float = 1.0

    @classmethod
    def from_workers(
        cls, workers: int, gpus_per_worker: float = 0.0, address: str | None = None
    ) -> RayOptions | None:
        """None for 0 workers (no Ray), else validated options: the CLI, the TUI form and the
        detached worker all read Ray settings this way."""
        if workers == 0:
            return None
        return cls(workers, address, gpus_per_worker).validate()

    def validate(self) -> RayOptions:
        if self.workers < 1:
            raise ThresherError(f"--ray-workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker < 0:
            raise ThresherError("--ray-gpus (and CPUs per worker) cannot be negative")
        return self

    def to_argv(self) -> list[str]:
        """The detached worker's command-line form (see selection.jobs.worker)."""
        argv = ["--ray-workers", str(self.workers), "--ray-gpus", str(self.gpus_per_worker)]
        if self.address:
            argv += ["--ray-address", self.address]
        return argv


def require_ray() -> Any:
    if importlib.util.find_spec("ray") is None:
        raise ThresherError(
            "Ray is not installed: pip install 'thresher[ray]' (or `pip install ray`), or run "
            "without --ray-workers."
        )
    import ray

    return ray


class ShardWorker:
    """The actor body: one per Ray worker process; runs shards of any stage of one run."""

    def __init__(self, run_dir: str, sys_path: list[str]) -> None:
        for p in reversed(sys_path):  # method entry points import as in the job process
            if p not in sys.path:
                sys.path.insert(0, p)
        from selection.jobs.registry import config_from_params, load_entry
        from store import runs

        meta = runs.read_run_json(Path(run_dir))
        config = config_from_params(load_entry(meta["config_cls"]), meta["params"])
        # Progress inside a shard is the job process's business (it counts finished shards).
        self.ctx = RunContext(Path(run_dir), meta, config, progress_interval_s=float("inf"))
        self.stages = {s.name: s for s in load_entry(meta["build_stages"])(config)}

    def run(self, stage_name: str, shard: Shard) -> int:
        import os

        stage = self.stages[stage_name]
        self.ctx._stage, self.ctx._unit = stage_name, getattr(stage, "unit", "items")
        value = stage.run_shard(self.ctx, shard)
        write_shard_file(stage, shard_path(self.ctx.stage_dir(stage_name), stage, shard), value)
        return os.getpid()


class RayExecutor:
    """Started lazily by the first stage with more than one missing shard; closed by the runner."""

    def __init__(self, options: RayOptions, run_dir: Path) -> None:
        self.options = options.validate()
        self.run_dir = run_dir
        self._ray: Any = None
        self._started_ray = False
        self._actors: list[Any] = []
        self.pids: set[int] = set()  # worker processes that ran shards (for logs and tests)

    def _start(self, ctx: RunContext) -> None:
        ray = require_ray()
        self._ray = ray
        if not ray.is_initialized():
            ray.init(
                address=self.options.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            self._started_ray = True
        self._actors = [self._new_actor() for _ in range(self.options.workers)]
        ctx.log.info(
            "ray: %d workers (%.2g GPU, %.2g CPU each) at %s",
            self.options.workers,
            self.options.gpus_per_worker,
            self.options.cpus_per_worker,
            self.options.address or "a local Ray instance",
        )

    def _new_actor(self) -> Any:
        actor = self._ray.remote(ShardWorker).options(
            num_cpus=self.options.cpus_per_worker, num_gpus=self.options.gpus_per_worker
        )
        return actor.remote(str(self.run_dir), list(sys.path))

    def run_stage(self, ctx: RunContext, stage: Any, todo: list[Shard]) -> bool:
        """Run `todo` on the actors, in plan order; False when a cancel request stopped it."""
        if not self._actors:
            self._start(ctx)
        ray = self._ray
        pending = list(todo)
        free = list(self._actors)
        running: dict[Any, tuple[Shard, Any]] = {}
        lost: list[tuple[Shard, str]] = []  # shards whose actor died: left missing for a resume
        while pending or running:
            while pending and free and not ctx.cancelled():
                shard, actor = pending.pop(0), free.pop(0)
                running[actor.run.remote(stage.name, shard)] = (shard, actor)
            if not running:  # cancelled with shards left: the runner records "cancelled"
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                shard, actor = running.pop(ref)
                try:
                    self.pids.add(ray.get(ref))
                except ray.exceptions.RayTaskError as exc:
                    self._drain(running)
                    raise _cause(exc) from None
                except ray.exceptions.RayActorError as exc:
                    # The process died (OOM killer, a lost node, a crash in native code): only
                    # this shard is lost. A fresh actor takes its place and the others go on.
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason"
                    ctx.log.error("ray: shard %d's worker died: %s", shard.index, reason)
                    lost.append((shard, reason))
                    self._actors.remove(actor)
                    self._ray.kill(actor)
                    fresh = self._new_actor()
                    self._actors.append(fresh)
                    free.append(fresh)
                    continue
                free.append(actor)
                ctx._base += shard.size
                ctx._emit_progress("progress", ctx._base)
        if lost:
            names = ", ".join(str(s.index) for s, _ in lost)
            raise ThresherError(
                f"stage {stage.name}: the Ray worker running shard(s) {names} died "
                f"({lost[0][1][:200]}); every other shard finished. `thresher resume "
                f"{ctx.run_id}` runs only the missing shard(s); if workers keep dying, give each "
                "more memory (fewer --ray-workers) or run without Ray."
            )
        return not pending

    def _drain(self, running: dict[Any, tuple[Shard, Any]], timeout_s: float = 60.0) -> None:
        """Let shards already in flight finish (their files are complete or absent) before failing."""
        deadline = time.monotonic() + timeout_s
        while running and time.monotonic() < deadline:
            ready, _ = self._ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                running.pop(ref)

    def close(self) -> None:
        if self._ray is None:
            return
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._started_ray:
            self._ray.shutdown()
        self._ray = None


def _cause(exc: Any) -> BaseException:
    """The stage's own exception (a ThresherError stays one), not Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else RuntimeError(str(exc))
