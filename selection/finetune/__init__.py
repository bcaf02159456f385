"""LoRA fine-tuning on an exported manifest, evaluation on a held-out dataset, and the report."""

from __future__ import annotations


def register() -> None:
    """Tell the job runner about the `finetune` method (entry points only: nothing heavy loads)."""
    from selection.jobs.registry import register_method

    register_method(
        "finetune",
        "selection.finetune.train:build_stages",
        "selection.finetune.config:FinetuneConfig",
        None,
    )
