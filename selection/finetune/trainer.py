"""The training loop of a LoRA fine-tune: model + peft setup, one optimizer step, checkpoints.

A checkpoint holds the adapter, optimizer, scheduler, RNG state and step, so restoring one and
continuing gives the same weights as never having stopped (same data order, same dropout).
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selection.finetune.config import FinetuneConfig
from selection.finetune.data import Collator, Example
from selection.jobs.stage import Shard, derive_seed
from store.errors import ThresherError

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
SUMMARY = "training_summary.json"


@dataclass(frozen=True)
class Plan:
    """How many examples, micro-batches and optimizer steps a config makes of a dataset."""

    n_examples: int
    batch_size: int
    grad_accum: int
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, n: int, config: FinetuneConfig) -> Plan:
        n_micro = math.ceil(n / config.batch_size)
        per_epoch = max(1, math.ceil(n_micro / config.grad_accum))
        total = max(1, math.ceil(config.epochs * per_epoch))
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        return cls(n, config.batch_size, config.grad_accum, per_epoch, total)

    def micro_batches(self, step: int, seed: int) -> list[list[int]]:
        """Example indices of each micro-batch of optimizer step `step` (0-based).

        The order of an epoch depends only on (seed, epoch), so any step can be rebuilt after a
        restart without replaying the ones before it.
        """
        epoch, j = divmod(step, self.steps_per_epoch)
        order = _epoch_order(seed, epoch, self.n_examples)
        n_micro = math.ceil(self.n_examples / self.batch_size)
        out = []
        for m in range(j * self.grad_accum, min((j + 1) * self.grad_accum, n_micro)):
            out.append(order[m * self.batch_size : (m + 1) * self.batch_size].tolist())
        return out


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n: int) -> Any:
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n)


def examples_from_input(table: Any) -> list[Example]:
    """input.parquet rows (conversation JSON + image paths) -> examples."""
    out = []
    for row in table.select(["orig_id", "conversation", "images"]).to_pylist():
        turns = tuple((t["role"], t["content"]) for t in json.loads(row["conversation"]))
        out.append(Example(str(row["orig_id"]), turns, tuple(row["images"] or ())))
    return out


def _device(config: FinetuneConfig) -> str:
    import torch

    if config.device != "auto":
        return config.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _precision(config: FinetuneConfig, device: str) -> str:
    import torch

    if config.precision != "auto":
        return config.precision
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


class Trainer:
    """Model, optimizer and scheduler of one process; lives across the shards it runs."""

    def __init__(self, config: FinetuneConfig, examples: list[Example], seed: int, log: Any):
        self.config = config
        self.examples = examples
        self.seed = seed
        self.log = log
        self.plan = Plan.of(len(examples), config)
        self.step = -1  # the optimizer step the in-memory state is at; -1 = nothing loaded
        self.model: Any = None

    # ------------------------------------------------------------ setup

    def load(self) -> None:
        import torch
        from peft import get_peft_model
        from transformers import AutoModelForImageTextToText, AutoProcessor, get_scheduler

        from selection.finetune.lora import lora_config, model_arch, resolve_targets

        cfg = self.config
        self.device = _device(cfg)
        self.precision = _precision(cfg, self.device)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        local = Path(cfg.model).expanduser()
        source = str(local) if local.exists() else cfg.model
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ThresherError(
                f"cannot load model {cfg.model!r}: {exc}. Pass --model a local folder with "
                "config.json (or a hub name already in the local cache)"
            ) from exc
        self.arch = cfg.arch or model_arch(model.config)
        targets, exclude = resolve_targets(
            model, self.arch, cfg.target_modules, cfg.exclude_modules
        )
        self.targets = targets
        # Same seed -> same LoRA init, so an interrupted run and a clean one start identical.
        torch.manual_seed(derive_seed(self.seed, "lora-init", 0))
        model = get_peft_model(model, lora_config(cfg, targets, exclude))
        if cfg.gradient_checkpointing:
            kwargs = {"use_reentrant": False}
            base = model.get_base_model()
            if hasattr(base, "activation_checkpointing_enable"):  # the transformers 5 name
                base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            model.enable_input_require_grads()
        model.config.use_cache = False
        model.to(self.device)
        model.train()
        self.model = model
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.total_params = sum(p.numel() for p in model.parameters())
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        name = {"constant": "constant_with_warmup"}.get(cfg.lr_schedule, cfg.lr_schedule)
        self.scheduler = get_scheduler(
            name,
            self.optimizer,
            num_warmup_steps=math.ceil(cfg.warmup_ratio * self.plan.total_steps),
            num_training_steps=self.plan.total_steps,
        )
        # fp16 has too little range for raw gradients: scale the loss (a no-op otherwise).
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.precision == "fp16" and self.device.startswith("cuda")
        )
        self.collator = Collator(self.processor, cfg.max_length, cfg.image_max_pixels)
        torch.manual_seed(derive_seed(self.seed, "train", 0))
        self.step = 0
        checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        self.log.info(
            "fine-tune: %s (%s) on %s/%s, %d trainable of %d params, %d examples, %d steps, "
            "activation checkpointing %s",
            cfg.model, self.arch, self.device, self.precision, self.trainable,
            self.total_params, len(self.examples), self.plan.total_steps,
            "on" if checkpointing else "off",
        )  # fmt: skip

    # ------------------------------------------------------------ checkpoints

    def checkpoint_dir(self, run_dir: Path, step: int) -> Path:
        return run_dir / CHECKPOINTS / f"step-{step:07d}"

    def save_checkpoint(
        self, run_dir: Path, losses: list[float], info: dict[str, Any] | None = None
    ) -> Path:
        import random

        import numpy as np
        import torch

        final = self.checkpoint_dir(run_dir, self.step)
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp)
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(self.scaler.state_dict(), tmp / "scaler.pt")
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(
            json.dumps({"step": self.step, "losses": losses, "info": info or {}})
        )
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)  # present = complete, like a shard
        kept = sorted((run_dir / CHECKPOINTS).glob("step-*"))
        for old in kept[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def restore(self, run_dir: Path, step: int) -> None:
        """Put model, optimizer, scheduler and RNG back to the checkpoint at `step`."""
        import random

        import numpy as np
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        path = self.checkpoint_dir(run_dir, step)
        if not path.exists():
            raise ThresherError(
                f"{run_dir.name}: checkpoint {path.name} is missing, so step {step} cannot be "
                f"resumed; delete {run_dir / 'train'} to restart the fine-tune from step 0"
            )
        weights = load_file(str(path / "adapter_model.safetensors"), device=self.device)
        set_peft_model_state_dict(self.model, weights)
        self.optimizer.load_state_dict(
            torch.load(path / "optimizer.pt", map_location=self.device, weights_only=True)
        )
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        if (path / "scaler.pt").exists():
            self.scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
        rng = torch.load(path / "rng.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self.step = step
        self.log.info("fine-tune: resumed from %s", path)

    # ------------------------------------------------------------ the loop

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over its micro-batches; loss is averaged per answer token."""
        import torch

        t0 = time.perf_counter()
        batches, skipped, n_samples = [], 0, 0
        for idx in self.plan.micro_batches(self.step, self.seed):
            batch, skipped_ids = self.collator([self.examples[i] for i in idx])
            skipped += len(skipped_ids)
            for sid in skipped_ids:
                self.log.warning("sample %s is longer than --max-length; skipped", sid)
            if batch is not None:
                n_samples += len(idx) - len(skipped_ids)
                batches.append(batch)
        # Label tokens that are predicted (the first position has no predecessor).
        counts = [int((b["labels"][:, 1:] != -100).sum()) for b in batches]
        total = sum(counts)
        loss_sum = 0.0
        autocast = self.device.startswith("cuda") and self.precision in ("bf16", "fp16")
        amp_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        for batch, n in zip(batches, counts, strict=True):
            if n == 0:
                continue
            batch = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in batch.items()}
            with torch.autocast("cuda", dtype=amp_dtype, enabled=autocast):
                loss = self.model(**batch).loss
            self.scaler.scale(loss * (n / total)).backward()
            loss_sum += float(loss.detach()) * n
        grad_norm = None
        if total:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        seconds = time.perf_counter() - t0
        loss = loss_sum / total if total else float("nan")
        if total and not math.isfinite(loss):
            raise ThresherError(
                f"loss became {loss} at step {self.step}; lower --learning-rate or use "
                "--precision fp32"
            )
        return {
            "step": self.step,
            "epoch": self.step / self.plan.steps_per_epoch,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "samples": n_samples,
            "tokens": total,
            "skipped": skipped,
            "seconds": seconds,
        }


def checkpoint_shards(total_steps: int, save_steps: int, run_seed: int) -> list[Shard]:
    """Shard i = optimizer steps [i*save_steps, (i+1)*save_steps): one checkpoint per shard."""
    return [
        Shard(i, start, min(start + save_steps, total_steps), derive_seed(run_seed, "train", i))
        for i, start in enumerate(range(0, total_steps, save_steps))
    ]
