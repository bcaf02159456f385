"""What the fine-tune adds to transformers' Trainer: per-step counts in its logs, progress events
from rank 0, and a cancel that every rank agrees on (an all-reduce of the flag at each step)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from selection.finetune.data import IGNORE_INDEX
from selection.finetune.hf import Counting, Plan, world_size
from store import runs
from store.errors import ThresherError


def _all_reduce(values: list[float], device: Any, op: str = "sum") -> list[float]:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def trainer_class() -> Any:
    from transformers import Trainer

    class ThresherTrainer(Trainer):
        """The Trainer with per-step counts (samples, answer tokens, skips, seconds) in its logs."""

        counting: Counting
        step_seconds = 0.0
        _samples = _tokens = 0

        def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any):
            self._samples += int(inputs.pop("n_samples", 0))
            self._tokens += int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs:
                counts = [float(self._samples), float(self._tokens), float(self.counting.skipped)]
                s, t, k = _all_reduce(counts, self.args.device)
                self._samples = self._tokens = self.counting.skipped = 0
                logs.update(
                    samples=int(s), tokens=int(t), skipped=int(k), seconds=self.step_seconds
                )
            super().log(logs, *args, **kwargs)

    return ThresherTrainer


def events_callback(ctx: Any, run_dir: Path, plan: Plan, trainer_ref: list[Any]) -> Any:
    from transformers import TrainerCallback

    class Events(TrainerCallback):
        """Progress events from rank 0, and a cancel that every process agrees on."""

        def __init__(self) -> None:
            self.t_step = time.perf_counter()
            self.cancelled = False

        def on_train_begin(self, args, state, control, **kw):
            if ctx is not None:
                ctx._resumed = state.global_step  # the rate counts this attempt's steps only

        def on_step_begin(self, args, state, control, **kw):
            self.t_step = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            trainer_ref[0].step_seconds = time.perf_counter() - self.t_step
            asked = (run_dir / runs.CANCEL).exists() or (ctx is not None and ctx.cancelled())
            if _all_reduce([float(asked)], args.device, "max")[0]:
                self.cancelled = True
                control.should_save = True  # the next attempt resumes here
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            if ctx is None or not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            loss = float(logs["loss"])
            if not math.isfinite(loss):
                raise ThresherError(
                    f"loss became {loss} at step {state.global_step}; lower --learning-rate "
                    "or use --precision fp32"
                )
            ctx.progress(state.global_step, total=plan.total_steps, **_metrics(state, logs))

        def on_save(self, args, state, control, **kw):
            if ctx is not None and state.is_world_process_zero:
                last = state.log_history[-1] if state.log_history else {}
                ctx.emit(
                    "progress",
                    done=state.global_step,
                    total=plan.total_steps,
                    unit="steps",
                    extra={**_metrics(state, last), "checkpoint": state.global_step},
                )

    return Events()


def _metrics(state: Any, logs: dict[str, Any]) -> dict[str, Any]:
    seconds = logs.get("seconds") or 0.0
    samples = logs.get("samples") or 0
    return {
        "step": state.global_step,
        "epoch": round(float(logs.get("epoch", state.epoch or 0.0)), 4),
        "loss": round(float(logs["loss"]), 5) if "loss" in logs else None,
        "lr": logs.get("learning_rate"),
        "samples_per_s": round(samples / seconds, 3) if seconds and samples else None,
        "world_size": world_size(),
    }
