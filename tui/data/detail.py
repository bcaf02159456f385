"""Everything the sample detail screen shows about one sample of a run: text, images, scores, CLIPPER probes, OFA neighbours."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from store.sql import ident
from tui.data.run_view import RunView
from tui.data.sql import rows

_HIDDEN = {"rid", "orig_id", "question", "answer", "algo"}


@dataclass
class SampleDetail:
    sample_id: int
    orig_id: str
    images: list[str]
    conversation: list[dict[str, str]]
    task: str | None
    flags: list[str]
    columns: dict[str, Any]  # every result column: scores, groups, selections
    algo: bool
    override: str | None
    zero_shot: str | None = None  # CLIPPER: the model's zero-shot response
    zero_shot_correct: bool | None = None
    fixed_by: list[tuple[int, bool]] = field(default_factory=list)  # (demo sample, correct)
    fixed: list[tuple[int, bool]] = field(
        default_factory=list
    )  # as a demo: (query sample, correct)
    neighbours: list[tuple[int, float]] = field(default_factory=list)  # OFA: (sample, cosine)
    names: dict[int, str] = field(default_factory=dict)  # sample id -> source id, for display

    def name(self, sample_id: int) -> str:
        """A sample as the user knows it: its id in the source file."""
        return self.names.get(sample_id, str(sample_id))


def _stage_with(run_dir: Path, con: duckdb.DuckDBPyConnection, needed: set[str]) -> str | None:
    """The Parquet glob of the first stage folder whose shards have all `needed` columns."""
    for stage in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        files = sorted(stage.glob("part-*.parquet"))
        if not files:
            continue
        cols = {r[0] for r in rows(con, "DESCRIBE SELECT * FROM read_parquet(?)", [str(files[0])])}
        if needed <= cols:
            return str(stage / "part-*.parquet")
    return None


def load_detail(view: RunView, rid: int, n_neighbours: int = 5) -> SampleDetail:
    row = view.row(rid)
    con = duckdb.connect()
    try:
        found = rows(
            con,
            "SELECT orig_id, images, conversation, task, flags FROM read_parquet(?) WHERE sample_id = ?",
            [str(view.input_path), row["sample_id"]],
        )
        orig_id, images, conversation, task, flags = found[0]
        try:
            turns = json.loads(conversation)
        except (TypeError, json.JSONDecodeError):
            turns = [
                {"role": "user", "content": row["question"]},
                {"role": "assistant", "content": row["answer"]},
            ]
        detail = SampleDetail(
            sample_id=row["sample_id"],
            orig_id=orig_id,
            images=list(images or []),
            conversation=turns,
            task=task,
            flags=list(flags or []),
            columns={k: v for k, v in row.items() if k not in _HIDDEN and k != "override"},
            algo=bool(row["algo"]),
            override=row["override"],
        )
        _clipper(view, con, detail)
    finally:
        con.close()
    if view.group_columns and (view.run_dir / "embeddings").is_dir():
        detail.neighbours = neighbours(view, rid, view.group_columns[0], n_neighbours)
    others = [s for s, _ in detail.fixed_by + detail.fixed] + [s for s, _ in detail.neighbours]
    detail.names = view.orig_ids(others) if others else {}
    detail.names[detail.sample_id] = detail.orig_id
    return detail


def _clipper(view: RunView, con: duckdb.DuckDBPyConnection, detail: SampleDetail) -> None:
    sid = detail.sample_id
    zs = _stage_with(view.run_dir, con, {"sample_id", "response"})
    if zs:
        has_correct = "correct" in {
            r[0] for r in rows(con, f"DESCRIBE SELECT * FROM read_parquet('{zs}')")
        }
        correct = "correct" if has_correct else "NULL"
        found = rows(
            con, f"SELECT response, {correct} FROM read_parquet('{zs}') WHERE sample_id = ?", [sid]
        )
        if found:
            detail.zero_shot, detail.zero_shot_correct = found[0]
    probes = _stage_with(view.run_dir, con, {"demo_id", "query_id", "correct"})
    if probes:
        detail.fixed_by = [
            (int(a), bool(b))
            for a, b in rows(
                con,
                f"SELECT demo_id, correct FROM read_parquet('{probes}') WHERE query_id = ? ORDER BY demo_id",
                [sid],
            )
        ]
        detail.fixed = [
            (int(a), bool(b))
            for a, b in rows(
                con,
                f"SELECT query_id, correct FROM read_parquet('{probes}') WHERE demo_id = ? ORDER BY query_id",
                [sid],
            )
        ]


def _embeddings(run_dir: Path) -> list[np.ndarray]:
    return [np.load(p, mmap_mode="r") for p in sorted((run_dir / "embeddings").glob("part-*.npy"))]


def neighbours(view: RunView, rid: int, group_column: str, k: int) -> list[tuple[int, float]]:
    """The k members of the sample's own group closest in embedding space (cosine), numpy only."""
    shards = _embeddings(view.run_dir)
    if not shards:
        return []
    bounds = np.cumsum([0] + [len(s) for s in shards])
    if bounds[-1] != view.total_rows:
        return []  # embeddings of a partial or different input: say nothing rather than guess
    group = view.row(rid)[group_column]
    with view._lock:
        members = rows(
            view._con,
            f"SELECT rid, sample_id FROM base WHERE {ident(group_column)} = ? AND rid <> ? ORDER BY rid",
            [group, rid],
        )
    if not members:
        return []
    rids = np.array([m[0] for m in members])
    ids = np.array([m[1] for m in members])

    def take(indices: np.ndarray) -> np.ndarray:
        shard = np.searchsorted(bounds, indices, side="right") - 1
        out = np.empty((len(indices), shards[0].shape[1]), np.float32)
        for s in np.unique(shard):
            mask = shard == s
            out[mask] = shards[s][indices[mask] - bounds[s]]
        return out

    me = take(np.array([rid]))[0]
    others = take(rids)
    sims = others @ me / (np.linalg.norm(others, axis=1) * np.linalg.norm(me) + 1e-12)
    best = np.argsort(-sims)[:k]
    return [(int(ids[i]), float(sims[i])) for i in best]
