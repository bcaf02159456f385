"""Which modules LoRA adapts, per architecture: the language model's projections, never the vision tower."""

from __future__ import annotations

from typing import Any

from store.errors import ThresherError

# Attention + MLP projections of the language model: what ms-swift and LLaMA-Factory adapt by
# default for these families ("all-linear" minus the vision side).
_LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

DEFAULT_TARGETS: dict[str, list[str]] = {
    "qwen2_vl": _LLAMA_STYLE,
    "qwen2_5_vl": _LLAMA_STYLE,
    "idefics3": _LLAMA_STYLE,
    "smolvlm": _LLAMA_STYLE,
    "llava": _LLAMA_STYLE,
    "llava_next": _LLAMA_STYLE,
    "mllama": _LLAMA_STYLE,
}

# The vision towers share projection names with the language model (idefics3's SigLIP has
# q_proj/k_proj/...), so matching by name alone would adapt them too; these paths are excluded.
DEFAULT_EXCLUDE = (
    r".*\b(visual|vision_tower|vision_model|vision_encoder|multi_modal_projector|connector"
    r"|merger|lm_head)\b.*"
)

# Swift's and LLaMA-Factory's names for the same model families (their --model_type/--template).
SWIFT_MODEL_TYPES = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "idefics3": "idefics3",
    "smolvlm": "smolvlm",
    "llava": "llava1_5_hf",
}
LLAMAFACTORY_TEMPLATES = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_vl",
    "idefics3": "idefics3",
    "smolvlm": "idefics3",
    "llava": "llava",
}


def model_arch(model_config: Any) -> str:
    """The `model_type` of a transformers config (`qwen2_vl`, `idefics3`, ...)."""
    return str(getattr(model_config, "model_type", "") or "unknown")


def default_targets(arch: str) -> list[str]:
    """The default LoRA target names for `arch`; unknown families get the Llama-style set."""
    return list(DEFAULT_TARGETS.get(arch, _LLAMA_STYLE))


def resolve_targets(
    model: Any, arch: str, targets: list[str] | None, exclude: str | None
) -> tuple[list[str], str]:
    """Targets and exclusion for `model`, checked to hit at least one Linear layer.

    A model with none of the named modules gets an error that lists the names it does have, so
    the user can pass `--target-modules` with the right ones.
    """
    import re

    import torch

    names = list(targets) if targets else default_targets(arch)
    exclude_re = exclude if exclude is not None else DEFAULT_EXCLUDE
    pattern = re.compile(exclude_re) if exclude_re else None
    hits = 0
    linear_names: set[str] = set()
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if pattern is not None and pattern.fullmatch(path):
            continue
        leaf = path.rsplit(".", 1)[-1]
        linear_names.add(leaf)
        if leaf in names:
            hits += 1
    if hits == 0:
        raise ThresherError(
            f"none of the LoRA target modules {names} exist in the language model of this "
            f"{arch} model; pass --target-modules with some of: {', '.join(sorted(linear_names))}"
        )
    return names, exclude_re


def lora_config(config: Any, targets: list[str], exclude: str) -> Any:
    """The peft `LoraConfig` for a `FinetuneConfig`."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        exclude_modules=exclude or None,
        bias="none",
        task_type="CAUSAL_LM",
    )
