"""`FinetuneConfig`: every knob of a LoRA fine-tune, saved with the run as `run.json["params"]`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import ThresherError

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class FinetuneConfig:
    """LoRA supervised fine-tuning of an image-text-to-text model on an exported manifest."""

    manifest: str = ""
    """The manifest to train on (LLaVA JSON, ms-swift JSONL or LLaMA-Factory ShareGPT JSON)."""
    model: str = ""
    """Base model: a local folder or a hub name already in the local cache."""
    arch: str | None = None
    """Model family (qwen2_vl, qwen2_5_vl, idefics3, smolvlm, llava); None = read from config."""
    target_modules: list[str] | None = None
    """LoRA target module names; None = the defaults for `arch` (language model only)."""
    exclude_modules: str | None = None
    """Regex of module paths never adapted; None = the vision tower and projector."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    learning_rate: float = 1e-4
    lr_schedule: str = "cosine"
    """cosine | linear | constant, each after a linear warmup."""
    warmup_ratio: float = 0.03
    """Fraction of the optimizer steps spent warming the learning rate up from 0."""
    weight_decay: float = 0.0
    epochs: float = 1.0
    batch_size: int = 1
    """Samples per micro-batch (per forward pass)."""
    grad_accum: int = 8
    """Micro-batches per optimizer step; the effective batch is batch_size * grad_accum."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs when smaller)."""
    max_length: int = 2048
    """Token budget per sample; longer samples are skipped (and counted) rather than cut."""
    max_grad_norm: float = 1.0
    precision: str = "auto"
    """auto = bf16 on a GPU that supports it, else fp32."""
    gradient_checkpointing: bool = False
    save_steps: int = 50
    """Write a resumable checkpoint every N optimizer steps (and at the end)."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep on disk."""
    seed: int = 0
    device: str = "auto"
    """auto = the GPUs when there are any, else cpu; cuda:N = that GPU only."""
    nproc: int | None = None
    """Training processes launched through torchrun (DDP; gloo on CPU); None = one per visible GPU."""
    quantize: str | None = None
    """4bit = QLoRA: the base model in 4-bit NF4 (needs bitsandbytes and a GPU)."""
    deepspeed: str | None = None
    """DeepSpeed config file for the Trainer (runs through torchrun)."""
    fsdp: str | None = None
    """The Trainer's FSDP option, e.g. "full_shard auto_wrap" (runs through torchrun)."""
    fsdp_config: str | None = None
    """FSDP config file for the Trainer."""
    report_to: list[str] | None = None
    """Trainer loggers (tensorboard, wandb, mlflow, none); None = tensorboard when installed."""
    trainer_args: dict[str, Any] = field(default_factory=dict)
    """Other transformers TrainingArguments, passed through unchanged."""
    image_max_pixels: int | None = None
    """Cap on pixels per image handed to the processor (keeps memory bounded); None = processor default."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried into the training summary (e.g. the CLI's command line)."""

    def validate(self) -> FinetuneConfig:
        if not self.manifest:
            raise ThresherError("fine-tune needs --manifest PATH (an exported manifest)")
        if not self.model:
            raise ThresherError("fine-tune needs --model PATH_OR_NAME (the base model)")
        if self.lr_schedule not in SCHEDULES:
            raise ThresherError(
                f"unknown --lr-schedule {self.lr_schedule!r}; use one of {', '.join(SCHEDULES)}"
            )
        if self.precision not in PRECISIONS:
            raise ThresherError(
                f"unknown --precision {self.precision!r}; use one of {', '.join(PRECISIONS)}"
            )
        for name in ("lora_r", "batch_size", "grad_accum", "save_steps", "max_length"):
            if getattr(self, name) < 1:
                raise ThresherError(f"{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ThresherError("--max-steps must be at least 1")
        if self.epochs <= 0:
            raise ThresherError("--epochs must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise ThresherError("--warmup-ratio must be in [0, 1)")
        if not 0 <= self.lora_dropout < 1:
            raise ThresherError("--lora-dropout must be in [0, 1)")
        if self.nproc is not None and self.nproc < 1:
            raise ThresherError("--nproc must be at least 1")
        if self.quantize not in (None, "4bit"):
            raise ThresherError(f"--quantize {self.quantize!r}: use 4bit (QLoRA) or leave it off")
        for name in ("deepspeed", "fsdp_config"):
            value = getattr(self, name)
            if value and not Path(value).expanduser().is_file():
                raise ThresherError(f"--{name.replace('_', '-')} {value}: no such file")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Round-trip from run.json; unknown keys (from a newer Thresher) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
