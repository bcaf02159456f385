"""The numbers behind the plots screen, read from a run folder (result, probe and embedding shards).

OFA-shaped runs (a `cluster` group and `confidence`): per-cluster confidence with the selection
cut (the highest confidence still kept), cluster sizes kept/dropped, and a 2-D PCA map of a
sample of the embeddings. CLIPPER-shaped runs (`subset_t1`/`subset_t2`): subset sizes per tau,
the c(p) distribution from the probe shards, and log perplexity per subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tui.data.run_view import RunView

MAP_SAMPLE = 4000  # points on the PCA map


@dataclass
class ClusterStats:
    ids: list[int]  # cluster ids, ascending
    kept: list[int]  # effective keeps (overrides included)
    dropped: list[int]
    confidence: dict[int, np.ndarray]  # cluster -> confidences of its members
    cut: dict[int, float | None]  # cluster -> the highest confidence the algorithm kept


@dataclass
class PlotData:
    run_id: str
    clusters: ClusterStats | None = None
    pca: tuple[np.ndarray, np.ndarray] | None = None  # (points (m, 2), cluster of each)
    subsets: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> subset -> n
    c_p: np.ndarray | None = None  # c(p) per demonstration
    ppl: dict[str, np.ndarray] = field(default_factory=dict)  # subset (tau=1) -> log_ppl


def _result(view: RunView, columns: list[str]) -> pa.Table:
    return pq.read_table([str(f) for f in view.files], columns=columns)


def _effective(view: RunView) -> np.ndarray:
    """Effective keep per input row: the run's default selection overridden by the decisions."""
    kept = view.selection_ids(None).column("sample_id")
    ids = pq.read_table(view.input_path, columns=["sample_id"]).column(0)
    return pc.is_in(ids, value_set=kept.combine_chunks()).to_numpy(zero_copy_only=False)


def cluster_stats(view: RunView) -> ClusterStats:
    t = _result(view, ["cluster", "confidence", view.algo_column or "selected"])
    cluster = t.column(0).to_numpy(zero_copy_only=False)
    conf = pc.fill_null(t.column(1), np.nan).to_numpy(zero_copy_only=False).astype(float)
    algo = pc.fill_null(t.column(2), False).to_numpy(zero_copy_only=False).astype(bool)
    valid = ~pc.is_null(t.column(0)).to_numpy(zero_copy_only=False)
    eff = _effective(view)
    ids = sorted({int(c) for c in cluster[valid]})
    stats = ClusterStats(ids, [], [], {}, {})
    for c in ids:
        member = valid & (cluster == c)
        stats.kept.append(int((eff & member).sum()))
        stats.dropped.append(int((~eff & member).sum()))
        stats.confidence[c] = conf[member]
        chosen = conf[member & algo]
        stats.cut[c] = float(np.nanmax(chosen)) if chosen.size else None
    return stats


def pca_map(run_dir: Path, cluster: np.ndarray, n: int = MAP_SAMPLE, seed: int = 0):
    """2-D PCA of up to `n` embedded rows (seeded sample) and their clusters; None without embeddings."""
    files = sorted((run_dir / "embeddings").glob("part-*.npy"))
    if not files:
        return None
    shards = [np.load(f, mmap_mode="r") for f in files]
    total = min(sum(len(s) for s in shards), len(cluster))
    rows = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    offsets = np.cumsum([0] + [len(s) for s in shards])
    x = np.stack(
        [
            np.asarray(shards[k][r - offsets[k]], dtype=np.float32)
            for r in rows
            for k in [int(np.searchsorted(offsets, r, side="right")) - 1]
        ]
    )
    keep = np.any(x != 0, axis=1) & (cluster[rows] >= 0)  # encoded and clustered rows only
    x, rows = x[keep], rows[keep]
    if len(x) < 3:
        return None
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T, cluster[rows]


def probe_counts(run_dir: Path) -> np.ndarray | None:
    """c(p): correct answers each demonstration produced (CLIPPER stage 2), from any probe shards."""
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        files = sorted(folder.glob("part-*.parquet"))
        if not files:
            continue
        names = pq.read_schema(files[0]).names
        if {"demo_id", "query_id", "correct"} <= set(names):
            t = pq.read_table([str(f) for f in files], columns=["demo_id", "correct"])
            g = t.group_by("demo_id").aggregate([("correct", "sum")])
            return pc.fill_null(g.column("correct_sum"), 0).to_numpy().astype(int)
    return None


def plot_data(view: RunView) -> PlotData:
    out = PlotData(view.run_id)
    cols = set(view.columns)
    if "cluster" in view.group_columns and "confidence" in cols:
        out.clusters = cluster_stats(view)
        cl = _result(view, ["cluster"]).column(0)
        out.pca = pca_map(view.run_dir, pc.fill_null(cl, -1).to_numpy(zero_copy_only=False))
    subset_cols = [c for c in view.group_columns if c.startswith("subset")]
    for col in subset_cols:
        counts = _result(view, [col]).column(0).value_counts().to_pylist()
        out.subsets[col] = {str(d["values"]): int(d["counts"]) for d in counts}
    if subset_cols and "log_ppl" in cols:
        t = _result(view, [subset_cols[0], "log_ppl"])
        sub = t.column(0).to_pylist()
        ppl = pc.fill_null(t.column(1), np.nan).to_numpy(zero_copy_only=False).astype(float)
        for name in sorted(set(sub) - {None}):
            vals = ppl[np.array([s == name for s in sub])]
            out.ppl[str(name)] = vals[~np.isnan(vals)]
    if subset_cols:
        out.c_p = probe_counts(view.run_dir)
    return out
