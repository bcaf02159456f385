"""The selection-vs-accuracy table (CLIPPER Table I): per evaluated selection, accuracy, training
samples, data reduction and training time, with deltas against full-data fine-tuning."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.evaluations import Evaluation

FORMATS = ("table", "csv", "markdown")


@dataclass
class ReportRow:
    model: str
    label: str  # zero-shot | full | <selection run>/<selection>
    eval_id: str
    accuracy: float
    n: int
    n_train: int | None = None
    n_full: int | None = None
    reduction: float | None = None  # 1 - n_train / n_full
    train_time_s: float | None = None
    delta_accuracy: float | None = None  # vs the full-data fine-tune of the same model
    delta_time_s: float | None = None
    per_task: dict[str, float] = field(default_factory=dict)


def _order(label: str) -> tuple[int, str]:
    return ({"zero-shot": 0, "full": 1}.get(label, 2), label)


def build_report(evals: Sequence[Evaluation]) -> list[ReportRow]:
    """One row per (model, training data), the latest evaluation winning; grouped by model with
    the zero-shot and full-data rows first, as in the paper."""
    latest: dict[tuple[str, str], Evaluation] = {}
    for ev in sorted(evals, key=lambda e: (str(e.created_at), e.eval_id)):
        latest[(ev.model, ev.label)] = ev
    rows: list[ReportRow] = []
    for model in sorted({m for m, _ in latest}):
        group = sorted(
            (ev for (m, _), ev in latest.items() if m == model), key=lambda e: _order(e.label)
        )
        full = next((ev for ev in group if ev.label == "full"), None)
        for ev in group:
            # The full-data fine-tune's sample count is "the full set" (flagged samples that no
            # export writes are not data the selection could have kept); else the dataset size.
            n_full = (full.n_train if full else None) or ev.n_full
            row = ReportRow(
                model=model,
                label=ev.label,
                eval_id=ev.eval_id,
                accuracy=ev.accuracy,
                n=ev.n,
                n_train=ev.n_train,
                n_full=n_full,
                train_time_s=ev.train_time_s,
                per_task={t: v["accuracy"] for t, v in sorted(ev.per_task.items())},
            )
            if ev.n_train is not None and n_full:
                row.reduction = 1 - ev.n_train / n_full
            if full is not None and ev.label not in ("zero-shot", "full"):
                row.delta_accuracy = ev.accuracy - full.accuracy
                if ev.train_time_s is not None and full.train_time_s is not None:
                    row.delta_time_s = ev.train_time_s - full.train_time_s
            rows.append(row)
    return rows


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.2f}%" if signed else f"{x * 100:.2f}%"


def _secs(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.1f}s" if signed else f"{x:.1f}s"


HEADERS = [
    "Model",
    "Training data",
    "Accuracy",
    "Δ acc vs full",
    "Train samples",
    "Reduction",
    "Train time",
    "Δ time vs full",
    "Eval n",
]


def _figures(row: ReportRow, pct: Callable[..., str]) -> list[str]:
    """The cells from "Training data" to "Eval n", percentages written by `pct`."""
    return [
        row.label,
        pct(row.accuracy),
        pct(row.delta_accuracy, signed=True),
        "-" if row.n_train is None else str(row.n_train),
        pct(row.reduction),
        _secs(row.train_time_s),
        _secs(row.delta_time_s, signed=True),
        str(row.n),
    ]


def _cells(row: ReportRow, tasks: list[str]) -> list[str]:
    return [row.model, *_figures(row, _pct), *(_pct(row.per_task.get(t)) for t in tasks)]


def task_names(rows: Sequence[ReportRow]) -> list[str]:
    names = sorted({t for r in rows for t in r.per_task})
    return [] if names == ["all"] else names


def to_csv(rows: Sequence[ReportRow]) -> str:
    """Machine-readable: raw fractions and seconds, empty where unknown."""
    tasks = task_names(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["model", "training_data", "eval_id", "accuracy", "delta_accuracy", "n_train", "n_full",
         "reduction", "train_time_s", "delta_time_s", "n_eval", *(f"acc_{t}" for t in tasks)]
    )  # fmt: skip

    def v(x: Any) -> Any:
        return "" if x is None else (round(x, 6) if isinstance(x, float) else x)

    for r in rows:
        w.writerow(
            [r.model, r.label, r.eval_id, v(r.accuracy), v(r.delta_accuracy), v(r.n_train),
             v(r.n_full), v(r.reduction), v(r.train_time_s), v(r.delta_time_s), r.n,
             *(v(r.per_task.get(t)) for t in tasks)]
        )  # fmt: skip
    return buf.getvalue()


def to_markdown(rows: Sequence[ReportRow]) -> str:
    tasks = task_names(rows)
    head = HEADERS + tasks
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r, tasks)) + " |")
    return "\n".join(lines) + "\n"


def _short(model: str) -> str:
    """A local model folder by its name (the table is narrow); hub names stay as they are."""
    from pathlib import Path

    p = Path(model)
    return p.name if p.is_absolute() else model


def rich_table(rows: Sequence[ReportRow], title: str = "") -> Any:
    """The main table, compact enough for an 80-column terminal with one model (the model then
    goes in the title); per-task accuracies go in `rich_task_table`."""
    from rich.table import Table

    models = sorted({r.model for r in rows})
    one = len(models) == 1
    if one and title:
        title = f"{title} ({_short(models[0])})"
    table = Table(title=title or None)
    heads = ["Data", "Acc", "Δ acc", "Samples", "Reduction", "Time", "Δ time", "n"]
    if not one:
        table.add_column("Model", no_wrap=True)
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    last_model = None
    for r in rows:
        if last_model is not None and r.model != last_model:
            table.add_section()
        last_model = r.model
        table.add_row(*([] if one else [_short(r.model)]), *_figures(r, _pct1))
    return table


def _pct1(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.1f}" if signed else f"{x * 100:.1f}%"


def rich_task_table(rows: Sequence[ReportRow]) -> Any | None:
    from rich.table import Table

    tasks = task_names(rows)
    if not tasks:
        return None
    one = len({r.model for r in rows}) == 1
    table = Table(title="Accuracy per task family")
    if not one:
        table.add_column("Model", no_wrap=True)
    table.add_column("Data", no_wrap=True)
    for t in tasks:
        table.add_column(t, justify="right")
    for r in rows:
        cells = [r.label, *(_pct1(r.per_task.get(t)) for t in tasks)]
        table.add_row(*([] if one else [_short(r.model)]), *cells)
    return table
