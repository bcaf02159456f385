"""Where a workspace lives on disk and the paths inside it (see DESIGN.md, "Workspace on disk")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKSPACE = "thresher-workspace"
ENV_VAR = "THRESHER_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Workspace:
        """`--workspace` wins, then $THRESHER_WORKSPACE, then ./thresher-workspace."""
        raw = explicit or os.environ.get(ENV_VAR) or DEFAULT_WORKSPACE
        return cls(Path(raw).expanduser().resolve())

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def models_dir(self) -> Path:
        """Models Thresher builds itself (the demo VLM); real models stay where the user keeps them."""
        return self.root / "models"

    @property
    def data_dir(self) -> Path:
        """Datasets Thresher generates (the demo); ingested user data is referenced, not copied."""
        return self.root / "data"

    @property
    def images_dir(self) -> Path:
        """Embedded images (Hub Parquet bytes, data URLs), content-addressed: store/images.py."""
        return self.root / "images"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def exists(self) -> bool:
        return self.catalog_path.exists()

    def ensure(self) -> Workspace:
        for d in (self.root, self.runs_dir, self.exports_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self
