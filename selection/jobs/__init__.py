"""The job runner: stages split work into shards; runs resume, report progress and can be detached."""

from selection.jobs.context import RunContext
from selection.jobs.launcher import Launched, launch, start_run
from selection.jobs.ray_exec import RayOptions
from selection.jobs.registry import MethodSpec, get_method, methods, register_method
from selection.jobs.runner import (
    JobFailed,
    create_run,
    default_run_id,
    prepare_resume,
    run_job,
    spawn_worker,
)
from selection.jobs.stage import Shard, Stage, derive_seed, row_shards, single_shard

__all__ = [
    "JobFailed",
    "Launched",
    "MethodSpec",
    "RayOptions",
    "RunContext",
    "Shard",
    "Stage",
    "create_run",
    "default_run_id",
    "derive_seed",
    "get_method",
    "launch",
    "methods",
    "prepare_resume",
    "register_method",
    "row_shards",
    "run_job",
    "single_shard",
    "spawn_worker",
    "start_run",
]
