"""The ms-swift and LLaMA-Factory command lines (and dataset registration) equivalent to a `thresher train`."""

from __future__ import annotations

import json
import shlex
from typing import Any

from selection.finetune.config import FinetuneConfig
from selection.finetune.lora import DEFAULT_TARGETS, LLAMAFACTORY_TEMPLATES, SWIFT_MODEL_TYPES
from store.export.formats import llamafactory_entry
from store.export.read import Manifest

MODEL_PLACEHOLDER = "MODEL_PATH"


def _num(x: float) -> str:
    return f"{x:g}"


def _targets_given(config: FinetuneConfig) -> list[str] | None:
    """User-chosen targets; None when they are our per-architecture default (the tools'
    `all-linear` / `all` with the vision tower frozen selects the same modules)."""
    if not config.target_modules:
        return None
    if sorted(config.target_modules) in (sorted(v) for v in DEFAULT_TARGETS.values()):
        return None
    return list(config.target_modules)


def _dtype_flag(config: FinetuneConfig) -> str:
    return {"fp16": "float16", "fp32": "float32"}.get(config.precision, "bfloat16")


def _lora_flags(config: FinetuneConfig) -> list[str]:
    return ["--lora_rank", str(config.lora_r), "--lora_alpha", str(config.lora_alpha),
            "--lora_dropout", _num(config.lora_dropout)]  # fmt: skip


def _schedule_flags(config: FinetuneConfig) -> list[str]:
    """Optimizer and batch flags; both tools take them under transformers' TrainingArguments names."""
    return [
        "--learning_rate", _num(config.learning_rate),
        "--lr_scheduler_type", config.lr_schedule,
        "--warmup_ratio", _num(config.warmup_ratio),
        "--weight_decay", _num(config.weight_decay),
        "--num_train_epochs", _num(config.epochs),
        "--per_device_train_batch_size", str(config.batch_size),
        "--gradient_accumulation_steps", str(config.grad_accum),
    ]  # fmt: skip


def _save_flags(config: FinetuneConfig, output_dir: str) -> list[str]:
    flags = ["--save_steps", str(config.save_steps), "--save_total_limit",
             str(config.keep_checkpoints), "--seed", str(config.seed), "--output_dir", output_dir]  # fmt: skip
    if config.max_steps:
        flags += ["--max_steps", str(config.max_steps)]
    return flags


def swift_command(
    manifest: Manifest, config: FinetuneConfig, output_dir: str = "output"
) -> list[str]:
    """`swift sft ...` training LoRA on the manifest with the same hyper-parameters."""
    targets = _targets_given(config)
    argv = [
        "swift", "sft",
        "--model", config.model or MODEL_PLACEHOLDER,
        "--train_type", "lora",
        "--dataset", str(manifest.path),
        *_lora_flags(config),
        "--target_modules", *(targets or ["all-linear"]),
        "--freeze_vit", "true",
        "--freeze_aligner", "true",
        *_schedule_flags(config),
        "--max_length", str(config.max_length),
        "--max_grad_norm", _num(config.max_grad_norm),
        "--torch_dtype", _dtype_flag(config),
        "--gradient_checkpointing", str(config.gradient_checkpointing).lower(),
        *_save_flags(config, output_dir),
    ]  # fmt: skip
    if config.arch in SWIFT_MODEL_TYPES:
        argv += ["--model_type", SWIFT_MODEL_TYPES[config.arch]]
    if config.image_max_pixels:
        # ms-swift reads the image budget from the environment (MAX_PIXELS).
        argv = [f"MAX_PIXELS={config.image_max_pixels}", *argv]
    return argv


def llamafactory_dataset(manifest: Manifest) -> tuple[str, dict[str, Any], bool]:
    """(dataset name, its dataset_info.json entry, whether the file beside it already has it)."""
    info_path = manifest.path.parent / "dataset_info.json"
    if info_path.exists():
        for name, entry in json.loads(info_path.read_text()).items():
            if isinstance(entry, dict) and entry.get("file_name") == manifest.path.name:
                return name, entry, True
    entry = llamafactory_entry(manifest.path.name, llava=manifest.format == "llava")
    return manifest.path.stem, entry, False


def llamafactory_command(
    manifest: Manifest, config: FinetuneConfig, output_dir: str = "output"
) -> tuple[list[str], str, dict[str, Any], bool]:
    """(`llamafactory-cli train ...`, dataset name, its dataset_info entry, already registered)."""
    name, entry, registered = llamafactory_dataset(manifest)
    targets = _targets_given(config)
    precision = {"bf16": ["--bf16", "true"], "fp16": ["--fp16", "true"], "fp32": []}
    argv = [
        "llamafactory-cli", "train",
        "--stage", "sft",
        "--do_train", "true",
        "--model_name_or_path", config.model or MODEL_PLACEHOLDER,
        "--dataset", name,
        "--dataset_dir", str(manifest.path.parent),
        "--template", LLAMAFACTORY_TEMPLATES.get(config.arch or "", config.arch or "TEMPLATE"),
        "--finetuning_type", "lora",
        *_lora_flags(config),
        "--lora_target", ",".join(targets) if targets else "all",
        "--freeze_vision_tower", "true",
        "--freeze_multi_modal_projector", "true",
        *_schedule_flags(config),
        "--cutoff_len", str(config.max_length),
        "--max_grad_norm", _num(config.max_grad_norm),
        *precision.get(config.precision, ["--bf16", "true"]),
        "--disable_gradient_checkpointing", str(not config.gradient_checkpointing).lower(),
        *_save_flags(config, output_dir),
    ]  # fmt: skip
    if config.image_max_pixels:
        argv += ["--image_max_pixels", str(config.image_max_pixels)]
    return argv, name, entry, registered


def format_argv(argv: list[str]) -> str:
    """One option per line with shell continuations, quoted so it pastes into bash."""
    lines, i = [], 0
    head = []
    while i < len(argv) and not argv[i].startswith("--"):
        head.append(shlex.quote(argv[i]) if "=" not in argv[i] else argv[i])
        i += 1
    lines.append(" ".join(head))
    while i < len(argv):
        opt = [argv[i]]
        i += 1
        while i < len(argv) and not argv[i].startswith("--"):
            opt.append(shlex.quote(argv[i]))
            i += 1
        lines.append("  " + " ".join(opt))
    return " \\\n".join(lines)


def render(tool: str, manifest: Manifest, config: FinetuneConfig, output_dir: str) -> str:
    """What `thresher train --print-command TOOL` prints."""
    out = []
    if not config.model:
        out.append(f"# Replace {MODEL_PLACEHOLDER} with your base model (or pass --model).")
    relative = manifest.relative_images
    if tool == "swift":
        if manifest.format != "swift":
            out.append(
                f"# {manifest.path.name} is a {manifest.format} manifest; ms-swift reads it, but "
                "`thresher export --format swift` writes its native JSONL."
            )
        if relative:
            out.append(f"cd {shlex.quote(str(manifest.path.parent))}")
        out.append(format_argv(swift_command(manifest, config, output_dir)))
        return "\n".join(out) + "\n"
    if tool == "llamafactory":
        argv, name, entry, registered = llamafactory_command(manifest, config, output_dir)
        info = manifest.path.parent / "dataset_info.json"
        if registered:
            out.append(f"# {info} already registers {name!r}.")
        else:
            out.append(f"# Register the dataset: merge this entry into {info}")
            out.append(json.dumps({name: entry}, indent=2))
        out.append(format_argv(argv))
        return "\n".join(out) + "\n"
    raise ValueError(f"unknown tool {tool!r}")
