"""`FinetuneConfig`: every knob of a LoRA fine-tune, saved with the run as `run.json["params"]`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selection.config import Config, param
from store.errors import ThresherError

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class FinetuneConfig(Config):
    """LoRA supervised fine-tuning of an image-text-to-text model on an exported manifest.

    `model` may be empty while the config only renders an ms-swift / LLaMA-Factory command
    (`thresher train --print-command`); a fine-tune run needs it (`require_model`)."""

    manifest: str = param(
        "",
        "Exported manifest to train on (LLaVA JSON, ms-swift JSONL or LLaMA-Factory ShareGPT JSON).",
        metavar="PATH",
        required=True,
    )
    model: str = param(
        "",
        "Base image-text-to-text model: a local folder or a hub name already in the local cache.",
        metavar="PATH_OR_NAME",
    )
    arch: str | None = param(
        None,
        "Model family (qwen2_vl, qwen2_5_vl, idefics3, smolvlm, llava); default: from the "
        "model's config.",
    )
    target_modules: list[str] | None = param(
        None,
        "LoRA target module names, comma-separated (default: the family's attention+MLP "
        "projections of the language model).",
        metavar="A,B",
    )
    exclude_modules: str | None = param(
        None,
        "Regex of module paths never adapted (default: the vision tower and projector).",
        metavar="REGEX",
    )
    lora_r: int = param(16, "LoRA rank.")
    lora_alpha: int = param(32, "LoRA alpha (scale = alpha / r).")
    lora_dropout: float = param(0.05, "Dropout on the LoRA branch.")
    learning_rate: float = param(1e-4, "Peak learning rate.", aliases=("--lr",))
    lr_schedule: str = param("cosine", "Schedule after a linear warmup.", choices=SCHEDULES)
    warmup_ratio: float = param(
        0.03, "Fraction of the optimizer steps spent warming the learning rate up from 0."
    )
    weight_decay: float = param(0.0, "AdamW weight decay.")
    epochs: float = param(1.0, "Passes over the manifest (fractions allowed).")
    batch_size: int = param(1, "Samples per micro-batch (per forward pass).")
    grad_accum: int = param(
        8, "Micro-batches per optimizer step; the effective batch is batch_size * grad_accum."
    )
    max_steps: int | None = param(
        None, "Stop after N optimizer steps (overrides epochs when smaller).", metavar="N"
    )
    max_length: int = param(
        2048, "Token budget per sample; longer samples are skipped (and counted), not cut."
    )
    max_grad_norm: float = param(1.0, "Gradient clipping norm.")
    precision: str = param(
        "auto", "auto: bf16 on a GPU that has it, else fp32.", choices=PRECISIONS
    )
    gradient_checkpointing: bool = param(False, "Trade compute for activation memory.")
    save_steps: int = param(
        50, "Write a resumable checkpoint every N optimizer steps (and at the end)."
    )
    keep_checkpoints: int = param(2, "How many of the newest checkpoints to keep on disk.")
    seed: int = param(
        0, "Training seed; the command fills it from --seed (the run seed).", cli=False
    )
    device: str = param(
        "auto", "auto (the GPUs when there are any, else cpu), cpu, cuda, cuda:1 (that GPU only)"
    )
    nproc: int | None = param(
        None,
        "Training processes launched through torchrun (DDP; gloo on CPU); default: one per "
        "visible GPU, else 1.",
        metavar="N",
    )
    quantize: str | None = param(
        None, "4bit = QLoRA: the base model in 4-bit NF4 (needs bitsandbytes and a GPU).",
        choices=("4bit",),
    )  # fmt: skip
    deepspeed: str | None = param(
        None, "DeepSpeed config file for the Trainer (runs through torchrun).", metavar="CONFIG"
    )
    fsdp: str | None = param(
        None, 'The Trainer\'s FSDP option, e.g. "full_shard auto_wrap" (runs through torchrun).'
    )
    fsdp_config: str | None = param(None, "FSDP config file for the Trainer.", metavar="PATH")
    report_to: list[str] | None = param(
        None,
        "Trainer loggers, comma-separated (tensorboard, wandb, mlflow, none); default: "
        "tensorboard (into the run folder) when it is installed.",
        metavar="A,B",
    )
    trainer_args: dict[str, Any] = param(
        {},
        "Other transformers TrainingArguments as KEY=VALUE (VALUE read as JSON when it parses), "
        "passed through unchanged.",
        flag="--trainer-arg",
    )
    image_max_pixels: int | None = param(
        None,
        "Downscale larger images to this many pixels before the processor (bounds memory); "
        "empty = the processor's default.",
    )
    extra: dict[str, Any] = param(
        {}, "Free-form notes carried into the training summary (e.g. the command line).", cli=False
    )

    def validate(self) -> FinetuneConfig:
        if not self.manifest:
            raise ThresherError("fine-tune needs --manifest PATH (an exported manifest)")
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
        for name in ("deepspeed", "fsdp_config"):
            value = getattr(self, name)
            if value and not Path(value).expanduser().is_file():
                raise ThresherError(f"--{name.replace('_', '-')} {value}: no such file")
        return self

    def require_model(self) -> FinetuneConfig:
        """A run trains `model`: an empty one (fine for --print-command) is an error here."""
        if not self.model:
            raise ThresherError("fine-tune needs --model PATH_OR_NAME (the base model)")
        return self
