"""Evaluation records: insert one per `thresher eval`, query them for the selection-vs-accuracy report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from store.errors import NotFound


@dataclass
class Evaluation:
    """One row of `evaluations` (store/schema.py migration 2 documents each column)."""

    eval_id: str
    dataset: str
    model: str
    engine: str
    judge: str
    n: int
    n_correct: int
    n_undecided: int
    accuracy: float
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: datetime | None = None
    dataset_id: int | None = None
    adapter: str | None = None
    finetune_run_id: str | None = None
    selection_run_id: str | None = None
    selection: str | None = None
    train_dataset: str | None = None
    n_train: int | None = None
    n_full: int | None = None
    train_time_s: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the report names the row: zero-shot, full data, or run/selection."""
        if self.adapter is None and self.finetune_run_id is None:
            return "zero-shot"
        if self.finetune_run_id is None:
            # An adapter trained elsewhere: no summary says what data it saw.
            return f"adapter:{(self.adapter or '').rstrip('/').rsplit('/', 1)[-1]}"
        if self.selection_run_id is None:
            return "full"
        return f"{self.selection_run_id}/{self.selection or 'default'}"


_COLUMNS = [f.name for f in fields(Evaluation)]
_JSON = ("per_task", "options")


def accuracy_by_task(
    tasks: list[str | None], correct: list[bool | None]
) -> tuple[int, int, int, dict[str, dict[str, Any]]]:
    """(n, n_correct, n_undecided, per-task counts); undecided counts as wrong, as in the paper."""
    per: dict[str, dict[str, Any]] = {}
    for task, ok in zip(tasks, correct, strict=True):
        entry = per.setdefault(task or "all", {"n": 0, "correct": 0})
        entry["n"] += 1
        entry["correct"] += bool(ok)
    for entry in per.values():
        entry["accuracy"] = entry["correct"] / entry["n"]
    n = len(correct)
    return n, sum(bool(c) for c in correct), sum(c is None for c in correct), per


def insert_evaluation(con: Any, ev: Evaluation) -> None:
    """Insert or replace (re-running an eval refreshes its row)."""
    if ev.created_at is None:
        ev.created_at = datetime.now().replace(microsecond=0)
    row = asdict(ev)
    values = [json.dumps(row[c], sort_keys=True) if c in _JSON else row[c] for c in _COLUMNS]
    con.execute(
        f"INSERT OR REPLACE INTO evaluations ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
        values,
    )


def _from_row(row: tuple) -> Evaluation:
    data = dict(zip(_COLUMNS, row, strict=True))
    for c in _JSON:
        data[c] = json.loads(data[c]) if data[c] else {}
    return Evaluation(**data)


def list_evaluations(con: Any, dataset: str | None = None) -> list[Evaluation]:
    """Evaluations, oldest first; only those of `dataset` when given."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM evaluations"
    args: list[Any] = []
    if dataset is not None:
        sql += " WHERE dataset = ?"
        args.append(dataset)
    return [
        _from_row(r) for r in con.execute(sql + " ORDER BY created_at, eval_id", args).fetchall()
    ]


def get_evaluation(con: Any, eval_id: str) -> Evaluation:
    # fetchall: DuckDB 2 keeps a half-read result open and refuses the connection's next query.
    rows = con.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM evaluations WHERE eval_id = ?", [eval_id]
    ).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"no evaluation {eval_id!r}; `thresher report --dataset NAME` lists them")
    return _from_row(row)


def evaluated_datasets(con: Any) -> list[str]:
    return [
        r[0] for r in con.execute("SELECT DISTINCT dataset FROM evaluations ORDER BY 1").fetchall()
    ]


def dataset_size(con: Any, name: str) -> int | None:
    rows = con.execute("SELECT n_samples FROM datasets WHERE name = ?", [name]).fetchall()
    return int(rows[0][0]) if rows else None
