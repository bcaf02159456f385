"""A run folder as typed records: `Run` (run.json, status, stage progress) and its `Outputs`.

`run.json["outputs"]` (docs/CONTRACTS.md) says how to read a run's result: the Parquet table,
its group columns, score columns and named selections (BOOL columns). Everything that reads a
run's result goes through `Outputs` instead of poking at the dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import NotFound, ThresherError
from store.runs.events import StageProgress


@dataclass(frozen=True)
class GroupColumn:
    column: str
    label: str


@dataclass(frozen=True)
class Outputs:
    """How a run's result is read: `table/part-*.parquet`, row-aligned with input.parquet."""

    table: str = "result"
    groups: tuple[GroupColumn, ...] = ()
    scores: tuple[str, ...] = ()
    selections: dict[str, str] = field(default_factory=dict)  # name -> BOOL column
    default_selection: str = "default"

    @classmethod
    def from_json(cls, raw: Any) -> Outputs | None:
        """None for a run that selects nothing (fine-tune, eval: `"outputs": null`)."""
        if not raw:
            return None
        groups = tuple(
            GroupColumn(g["column"], g.get("label", g["column"])) for g in raw.get("groups") or []
        )
        selections = dict(raw.get("selections") or {})
        default = raw.get("default_selection") or next(iter(selections), "default")
        return cls(
            table=raw.get("table") or "result",
            groups=groups,
            scores=tuple(raw.get("scores") or ()),
            selections=selections,
            default_selection=default,
        )

    @property
    def group_columns(self) -> list[str]:
        return [g.column for g in self.groups]

    @property
    def default_column(self) -> str | None:
        """The BOOL column of the default selection (the method's choice), if any."""
        return self.selections.get(self.default_selection) or next(
            iter(self.selections.values()), None
        )

    def selection_column(self, name: str | None, run_id: str = "") -> tuple[str, str]:
        """(selection name, BOOL column) for a name, a column name given directly, or None = default."""
        name = name or self.default_selection
        if name in self.selections:
            return name, self.selections[name]
        if name in self.selections.values():
            return name, name
        raise NotFound(
            f"run {run_id} has no selection {name!r}; it has: {', '.join(self.selections) or 'none'}."
        )

    def result_files(self, run_dir: Path) -> list[Path]:
        """The complete result shards in row order (temp files never match `part-*`)."""
        return sorted((run_dir / self.table).glob("part-*.parquet"))


@dataclass
class Run:
    """One run folder: run.json (`meta`), status.json (`status`) and stage progress (`stages`)."""

    run_id: str
    path: Path
    meta: dict[str, Any]
    status: dict[str, Any]
    stages: dict[str, StageProgress] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.status.get("status", "queued")

    @property
    def current_stage(self) -> StageProgress | None:
        """The stage being worked on: the last one started (or the last one seen)."""
        if not self.stages:
            return None
        return list(self.stages.values())[-1]

    @property
    def method(self) -> str:
        return str(self.meta.get("method", "?"))

    @property
    def dataset(self) -> str:
        return str(self.meta.get("dataset", self.meta.get("dataset_id", "")))

    @property
    def created_at(self) -> str:
        return str(self.meta.get("created_at", ""))

    @property
    def outputs(self) -> Outputs | None:
        return Outputs.from_json(self.meta.get("outputs"))

    @property
    def result_files(self) -> list[Path]:
        outputs = self.outputs
        return outputs.result_files(self.path) if outputs else []

    @property
    def has_result(self) -> bool:
        return bool(self.result_files)

    def require_result(self) -> tuple[Outputs, list[Path]]:
        """(outputs, shards) of a run that has a result; a clear error for one that has none (yet)."""
        outputs = self.outputs
        if outputs is None:
            raise ThresherError(
                f"run {self.run_id} ({self.method}) selects nothing: its run.json has no outputs."
            )
        files = outputs.result_files(self.path)
        if not files:
            raise ThresherError(
                f"run {self.run_id} has no result yet ({self.path / outputs.table} is empty); "
                "wait for it to finish or resume it."
            )
        return outputs, files
