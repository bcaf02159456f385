"""Run the fine-tune in N processes through `torchrun` (DDP; DeepSpeed and FSDP the same way).

The job's process (foreground or detached worker) starts `torchrun --standalone --nproc-per-node N
-m selection.finetune.launch RUN_DIR`, waits, relays the events rank 0 appends to progress.jsonl
to its own display, and turns a cancel request (SIGTERM, Ctrl-C) into the run's cancel file,
which every rank checks at each step and agrees on. On a machine without GPUs the processes use
the gloo backend on the CPU (how the tests run two of them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from store import runs
from store.errors import ThresherError


def visible_gpus() -> int:
    """GPUs this job may use: CUDA_VISIBLE_DEVICES when set, else what torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([d for d in env.split(",") if d.strip() and d.strip() != "-1"])
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_nproc(device: str = "auto") -> int:
    """--nproc default: one process per visible GPU, else 1."""
    if device == "cpu":
        return 1
    return max(1, visible_gpus())


def needs_launcher(config: Any) -> bool:
    """More than one process, DeepSpeed/FSDP, or one chosen GPU: a torchrun launch."""
    return bool(
        (config.nproc or 1) > 1
        or config.deepspeed
        or config.fsdp
        or config.device.startswith("cuda:")
    )


def torchrun_argv(run_dir: Path, nproc: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", "-m", "selection.finetune.launch", str(run_dir),
    ]  # fmt: skip


def run_torchrun(ctx: Any, config: Any) -> dict[str, Any]:
    """Launch, wait, relay events; returns rank 0's train_result.json."""
    from selection.finetune.hf import RESULT, read_result

    run_dir = Path(ctx.run_dir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // (config.nproc or 1))))
    if config.device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = config.device.split(":", 1)[1]
    (run_dir / RESULT).unlink(missing_ok=True)
    progress = run_dir / runs.PROGRESS
    offset = progress.stat().st_size if progress.exists() else 0
    argv = torchrun_argv(run_dir, config.nproc or 1)
    ctx.log.info("fine-tune: %s", " ".join(argv))
    with open(run_dir / runs.LOG, "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                offset = _relay(ctx, run_dir, offset)
                if ctx.cancelled():
                    (run_dir / runs.CANCEL).touch()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    _relay(ctx, run_dir, offset)
    if proc.returncode != 0:
        raise ThresherError(
            f"torchrun exited with status {proc.returncode}; the ranks' output is in "
            f"{run_dir / runs.LOG}"
        )
    result = read_result(run_dir)
    if not result:
        raise ThresherError(f"torchrun finished but rank 0 wrote no {RESULT}; see the job log")
    return result


def _relay(ctx: Any, run_dir: Path, offset: int) -> int:
    """Hand the events the ranks appended since `offset` to the foreground display."""
    events, offset = runs.read_events(run_dir, offset)
    if ctx.on_event is not None:
        for event in events:
            ctx.on_event(event)
    return offset


def main(argv: list[str] | None = None) -> int:
    """One torchrun rank: rebuild the run's config and train; rank 0 reports."""
    from selection.finetune.fit import train
    from selection.finetune.hf import rank
    from selection.jobs.context import RunContext
    from selection.jobs.registry import config_from_params, load_entry

    run_dir = Path((argv or sys.argv[1:])[0]).resolve()
    meta = runs.read_run_json(run_dir)
    config = config_from_params(load_entry(meta["config_cls"]), meta["params"])
    ctx = RunContext(run_dir, meta, config)
    ctx._stage, ctx._unit = "train", "steps"
    log = ctx.log
    if rank() != 0:
        import logging

        log = logging.getLogger(f"thresher.rank{rank()}")  # only rank 0 writes the job log
    try:
        train(run_dir, config, int(meta["seed"]), ctx if rank() == 0 else None, log)
        _barrier()
    finally:
        _leave_group()
    return 0


def _barrier() -> None:
    """Every rank leaves together: a rank that exits while another still saves or talks took
    the whole job down ("terminate called without an active exception", SIGABRT in gloo)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _leave_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
