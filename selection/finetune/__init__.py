"""LoRA fine-tuning on an exported manifest, evaluation on a held-out dataset, and the report."""

from __future__ import annotations
