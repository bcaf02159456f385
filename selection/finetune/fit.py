"""One training segment in this process: transformers' Trainer with Thresher's callbacks, resumed
from the last complete checkpoint. `selection.finetune.hf` builds the model and arguments,
`selection.finetune.callbacks` speaks Thresher (events, cancel); this module puts them together,
so neither of those two needs the other's caller.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from selection.finetune.callbacks import events_callback, trainer_class
from selection.finetune.config import FinetuneConfig
from selection.finetune.data import Collator
from selection.finetune.hf import (
    RESULT,
    Counting,
    Plan,
    Samples,
    examples_from_input,
    last_checkpoint,
    load_model,
    rank,
    read_result,
    training_args,
    world_size,
)
from store import runs


def train(run_dir: Path, config: FinetuneConfig, seed: int, ctx: Any, log: Any) -> dict[str, Any]:
    """Train (or resume) in this process; returns what rank 0 also writes to `train_result.json`.

    `ctx` is the run's RunContext on rank 0 (events, cancel), None on the other ranks.
    """
    import pyarrow.parquet as pq

    started = time.perf_counter()
    examples = examples_from_input(pq.read_table(run_dir / runs.INPUT))
    plan = Plan.of(len(examples), config, world_size())
    args = training_args(config, run_dir, plan, seed)  # sets up the process group first
    model, processor, info = load_model(config, seed, log)
    counting = Counting(Collator(processor, config.max_length, config.image_max_pixels), log)

    trainer_ref: list[Any] = [None]
    events = events_callback(ctx, run_dir, plan, trainer_ref)
    trainer = trainer_class()(
        model=model,
        args=args,
        train_dataset=Samples(examples),
        data_collator=counting,
        callbacks=[events],
    )
    trainer.counting = counting
    trainer_ref[0] = trainer
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our events are the progress display
    resume = last_checkpoint(run_dir)
    checkpointing = config.gradient_checkpointing
    log.info(
        "fine-tune: %s (%s) on %s/%s x%d process(es), %d trainable of %d params, %d examples, "
        "%d steps, activation checkpointing %s",
        config.model, info["arch"], info["device"], info["precision"], world_size(),
        info["trainable_params"], info["total_params"], len(examples), plan.total_steps,
        "on" if checkpointing else "off",
    )  # fmt: skip
    if resume is not None:
        log.info("fine-tune: resumed from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    result = {
        "status": "cancelled" if events.cancelled else "done",
        "world_size": world_size(),
        "steps": trainer.state.global_step,
        "seconds": time.perf_counter() - started,
        "info": {
            **info,
            "steps_per_epoch": plan.steps_per_epoch,
            "total_steps": plan.total_steps,
            "world_size": world_size(),
        },
    }
    if rank() == 0:
        previous = read_result(run_dir)
        result["segments"] = [*previous.get("segments", []), round(result["seconds"], 3)]
        runs.write_json_atomic(run_dir / RESULT, result)
    return result
