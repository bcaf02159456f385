"""The LoRA fine-tune on transformers' Trainer and peft: model loading, training arguments, the
collator that counts, checkpoints and the per-step log (`fit` runs a segment with these and the
callbacks of `callbacks`). Runs in one process, or in each process of a `torchrun` launch (DDP,
DeepSpeed, FSDP; `selection.finetune.launch`).

What stays ours: the manifest samples (input.parquet), the chat rendering and assistant-only labels
(`selection.finetune.data.Collator`), the run folder and its events. Checkpoints, resume (model,
optimizer, scheduler, RNG and data position) and distributed training are the Trainer's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selection.finetune.config import FinetuneConfig
from selection.finetune.data import IGNORE_INDEX, Collator, Example
from selection.jobs.stage import derive_seed
from store.errors import ThresherError

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
SUMMARY = "training_summary.json"
RESULT = "train_result.json"  # written by rank 0 when a training segment ends
TENSORBOARD = "tensorboard"


@dataclass(frozen=True)
class Plan:
    """How many optimizer steps a config makes of a dataset on `world` processes."""

    n_examples: int
    world: int
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, n: int, config: FinetuneConfig, world: int = 1) -> Plan:
        n_micro = math.ceil(n / (config.batch_size * world))  # per process
        per_epoch = max(1, math.ceil(n_micro / config.grad_accum))
        total = max(1, math.ceil(config.epochs * per_epoch))
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        return cls(n, world, per_epoch, total)


def examples_from_input(table: Any) -> list[Example]:
    """input.parquet rows (conversation JSON + image paths) -> examples."""
    out = []
    cols = [c for c in ("orig_id", "conversation", "images", "no_loss") if c in table.column_names]
    for row in table.select(cols).to_pylist():
        turns = tuple((t["role"], t["content"]) for t in json.loads(row["conversation"]))
        no_loss = tuple(row.get("no_loss") or ())
        out.append(Example(str(row["orig_id"]), turns, tuple(row["images"] or ()), no_loss=no_loss))
    return out


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _precision(config: FinetuneConfig, on_gpu: bool) -> str:
    import torch

    if config.precision != "auto":
        return config.precision
    return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"


def _on_gpu(config: FinetuneConfig) -> bool:
    import torch

    return config.device != "cpu" and torch.cuda.is_available()


# ---------------------------------------------------------------- the model


def load_model(config: FinetuneConfig, seed: int, log: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(peft model, processor, facts for the summary). QLoRA loads the base model in 4 bits."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from selection.finetune.lora import lora_config, model_arch, resolve_targets
    from selection.models.resolve import resolve_model

    on_gpu = _on_gpu(config)
    precision = _precision(config, on_gpu)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.quantize:
        kwargs.update(_quantization(config, dtype, on_gpu))
    source = resolve_model(config.model)
    try:
        processor = AutoProcessor.from_pretrained(source)
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ThresherError(
            f"cannot load model {config.model!r}: {exc}. Pass --model a local folder with "
            "config.json, or a hub name (downloaded unless offline)"
        ) from exc
    arch = config.arch or model_arch(model.config)
    targets, exclude = resolve_targets(model, arch, config.target_modules, config.exclude_modules)
    if config.quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    # Same seed -> same LoRA init on every process and every attempt.
    torch.manual_seed(derive_seed(seed, "lora-init", 0))
    model = get_peft_model(model, lora_config(config, targets, exclude))
    model.config.use_cache = False
    info = {
        "arch": arch,
        "target_modules": targets,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "device": "cuda" if on_gpu else "cpu",
        "precision": precision,
        "quantize": config.quantize,
    }
    return model, processor, info


def _quantization(config: FinetuneConfig, dtype: Any, on_gpu: bool) -> dict[str, Any]:
    if config.quantize != "4bit":
        raise ThresherError(f"--quantize {config.quantize!r}: only 4bit (QLoRA) is supported")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ThresherError(
            "--quantize 4bit needs bitsandbytes: pip install 'thresher[train]' (on a CUDA GPU)"
        )
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    # Under DDP each process holds its whole quantized copy on its own GPU.
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return {"quantization_config": quant, "device_map": {"": local if on_gpu else "cpu"}}


# ---------------------------------------------------------------- the Trainer's inputs


class Samples:
    """A map-style dataset over the examples (the Trainer shards and shuffles indices)."""

    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


class Counting:
    """The Trainer's collator: our Collator, plus the count of samples each batch carries
    (`n_samples`, taken off again by the Trainer before the forward pass) and of skips.

    A micro-batch whose samples are all longer than --max-length becomes a one-token batch with no
    label, so every process still takes its step (a DDP step needs all of them) and learns nothing.
    """

    def __init__(self, collator: Collator, log: Any) -> None:
        self.collator = collator
        self.log = log
        self.skipped = 0

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        import torch

        batch, skipped = self.collator(examples)
        self.skipped += len(skipped)
        for sid in skipped:
            self.log.warning("sample %s is longer than --max-length; skipped", sid)
        if batch is None:
            ids = self.collator.tokenizer("x", add_special_tokens=False)["input_ids"][:1]
            t = torch.tensor([ids], dtype=torch.long)
            batch = {
                "input_ids": t,
                "attention_mask": torch.ones_like(t),
                "labels": torch.full_like(t, IGNORE_INDEX),
            }
        batch["n_samples"] = torch.tensor(len(examples) - len(skipped))
        return batch


def report_targets(config: FinetuneConfig) -> list[str]:
    """--report-to as the Trainer takes it; default: TensorBoard when it is installed."""
    if config.report_to is None:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    names = [n for n in config.report_to if n != "none"]
    if "tensorboard" in names and importlib.util.find_spec("tensorboard") is None:
        raise ThresherError("--report-to tensorboard needs tensorboard: pip install tensorboard")
    return names


def training_args(config: FinetuneConfig, run_dir: Path, plan: Plan, seed: int) -> Any:
    """TrainingArguments for this run; works with transformers 4.56 through 5.x."""
    from transformers import TrainingArguments

    on_gpu = _on_gpu(config)
    precision = _precision(config, on_gpu)
    report = report_targets(config)
    if "tensorboard" in report:  # read by transformers 5; 4.x reads logging_dir
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / TENSORBOARD)
    kw: dict[str, Any] = {
        "output_dir": str(run_dir / CHECKPOINTS),
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "max_steps": plan.total_steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": {"constant": "constant_with_warmup"}.get(
            config.lr_schedule, config.lr_schedule
        ),
        "warmup_steps": math.ceil(config.warmup_ratio * plan.total_steps),
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.keep_checkpoints,
        "seed": derive_seed(seed, "train", 0) % (2**32),
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "gradient_checkpointing": config.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "report_to": report or "none",
        "disable_tqdm": True,
        "use_cpu": not on_gpu,
        "ddp_backend": "gloo" if not on_gpu and world_size() > 1 else None,
        "ddp_find_unused_parameters": False,
        "label_names": ["labels"],
    }
    if config.deepspeed:
        if importlib.util.find_spec("deepspeed") is None:
            raise ThresherError("--deepspeed needs deepspeed: pip install deepspeed")
        kw["deepspeed"] = config.deepspeed
    if config.fsdp:
        kw["fsdp"] = config.fsdp
        if config.fsdp_config:
            kw["fsdp_config"] = config.fsdp_config
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "activation_checkpointing" in names:  # the newer transformers' name for the same thing
        kw["activation_checkpointing"] = kw.pop("gradient_checkpointing")
        kw["activation_checkpointing_kwargs"] = kw.pop("gradient_checkpointing_kwargs")
    if "logging_dir" in names:
        kw["logging_dir"] = str(run_dir / TENSORBOARD)
    kw.update({k: _literal(v) for k, v in config.trainer_args.items()})  # --trainer-arg K=V
    unknown = sorted(set(kw) - names)
    if unknown:
        raise ThresherError(
            f"transformers' TrainingArguments has no {', '.join(unknown)}; check --trainer-arg"
        )
    args = TrainingArguments(**kw)
    if world_size() == 1 and args.n_gpu > 1:
        args._n_gpu = 1  # one process = one GPU; more GPUs are used through --nproc (DDP)
    return args


def _literal(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint. The Trainer writes `checkpoint-N/` in place and its
    trainer_state.json last, so a folder without one was cut short by a kill and is passed over."""
    import re

    out = run_dir / CHECKPOINTS
    found = []
    for d in out.iterdir() if out.is_dir() else []:
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / "trainer_state.json").exists():
            found.append((int(m.group(1)), d))
    return max(found)[1] if found else None


def read_result(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULT
    return json.loads(path.read_text()) if path.exists() else {}


def step_log(run_dir: Path) -> list[dict[str, Any]]:
    """The per-step rows of the last checkpoint's trainer_state.json (its log history)."""
    ckpt = last_checkpoint(run_dir)
    if ckpt is None:
        raise ThresherError(f"{run_dir.name}: training left no checkpoint in {CHECKPOINTS}/")
    history = json.loads((ckpt / "trainer_state.json").read_text())["log_history"]
    rows = []
    for h in history:
        if "loss" not in h:
            continue
        rows.append(
            {
                "step": int(h["step"]),
                "epoch": float(h.get("epoch") or 0.0),
                "loss": float(h["loss"]),
                "lr": float(h.get("learning_rate") or 0.0),
                "grad_norm": float(h["grad_norm"]) if h.get("grad_norm") is not None else None,
                "samples": int(h.get("samples", 0)),
                "tokens": int(h.get("tokens", 0)),
                "skipped": int(h.get("skipped", 0)),
                "seconds": float(h.get("seconds", 0.0)),
            }
        )
    return rows
