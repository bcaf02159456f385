"""Manifest export: LLaVA, ms-swift, LLaMA-Factory ShareGPT and id lists, each with a sidecar."""

from __future__ import annotations

from store.export.formats import FORMATS
from store.export.manifest import ExportResult, default_export_path, export

__all__ = ["FORMATS", "ExportResult", "default_export_path", "export"]
