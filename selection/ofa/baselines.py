"""Selection baselines on OFA's embeddings: random, CLIP score, TypiClust typicality, SemDeDup.

Each is a run (method `baseline:<name>`) whose `result` follows the OFA outputs contract, so it
can be browsed, overridden and exported like an OFA run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from selection.jobs import RunContext, Shard, single_shard
from selection.ofa.config import BaselineConfig
from selection.ofa.neighbours import knn_sq_distances, max_earlier_cosine
from selection.ofa.select import quota_for_budget, quota_for_ratio, rank_within_clusters
from selection.ofa.stages import EmbedStage, KMeansStage, _clusters, load_embeddings, result_table

SCORE_NAME = {
    "random": "random_score",
    "clip-score": "clip_score",
    "typiclust": "typicality",
    "semdedup": "max_similarity",
}
CLUSTERED = ("typiclust", "semdedup")


def global_count(n_ok: int, ratio: float, budget: int | None) -> int:
    """Kept count for the un-clustered baselines: the budget, else round-half-up(r * n), at least 1."""
    if budget is not None:
        return min(budget, n_ok)
    return int(min(n_ok, max(1, np.floor(ratio * n_ok + 0.5)))) if n_ok else 0


def keep_top(
    score: np.ndarray, ok: np.ndarray, n_keep: int, highest: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(selected, rank): rank 0 is the best score (ties: input order) over the usable rows."""
    idx = np.flatnonzero(ok)
    key = -score[idx] if highest else score[idx]
    order = idx[np.argsort(key, kind="stable")]
    rank = np.full(len(score), -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return (rank >= 0) & (rank < n_keep), rank


def typicality(
    x: np.ndarray, labels: np.ndarray, k: int, neighbours: int, backend: str = "auto"
) -> np.ndarray:
    """TypiClust: 1 / mean Euclidean distance to the `neighbours` nearest members of the same cluster."""
    out = np.full(len(x), np.nan, dtype=np.float32)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            out[members] = 0.0
            continue
        nn = min(neighbours, len(members) - 1) + 1  # +1: each point finds itself first
        d = knn_sq_distances(x[members], nn, backend)
        out[members] = 1.0 / (np.sqrt(np.maximum(d[:, 1:], 0)).mean(1) + 1e-8)
    return out


def semdedup(
    x: np.ndarray, labels: np.ndarray, dist: np.ndarray, k: int, threshold: float, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """SemDeDup: within a cluster, drop a sample whose cosine to an earlier one is >= threshold.

    Members are ordered farthest-from-centroid first (SemDeDup keeps the least prototypical of
    each near-duplicate group). Returns (max cosine to an earlier member, kept mask).
    """
    max_sim = np.full(len(x), np.nan, dtype=np.float32)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        order = members[np.argsort(-dist[members], kind="stable")]
        max_sim[order] = max_earlier_cosine(x[order], block)
    kept = (labels >= 0) & (max_sim < threshold)
    return max_sim, kept


class BaselineResultStage:
    name = "result"
    unit = "samples"

    def __init__(self, cfg: BaselineConfig) -> None:
        self.cfg = cfg

    def plan(self, ctx: RunContext) -> list[Shard]:
        return single_shard(ctx.input().num_rows, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> pa.Table:
        from selection.ofa.encode import clip_score, excluded_mask

        cfg, inp = self.cfg, ctx.input()
        x = load_embeddings(ctx.run_dir, inp.num_rows)
        n = len(x)
        if cfg.name in CLUSTERED:
            labels, dist, excluded = _clusters(ctx, x, ctx.read_stage("kmeans"))
        else:
            excluded = excluded_mask(x)
            labels, dist = np.full(n, -1, np.int64), np.full(n, np.nan, np.float32)
        ok = ~excluded
        if cfg.name == "random":
            score = np.random.default_rng(shard.seed).random(n).astype(np.float32)
            selected, rank = keep_top(
                score, ok, global_count(int(ok.sum()), cfg.ratio, cfg.budget), False
            )
        elif cfg.name == "clip-score":
            score = clip_score(x)
            selected, rank = keep_top(
                score, ok, global_count(int(ok.sum()), cfg.ratio, cfg.budget), True
            )
        elif cfg.name == "typiclust":
            score = typicality(x, labels, cfg.k, cfg.typiclust_neighbors)
            rank = rank_within_clusters(labels, -score, cfg.k)  # most typical first
            sizes = np.bincount(labels[ok], minlength=cfg.k)
            quota = (
                quota_for_budget(sizes, cfg.budget)
                if cfg.budget
                else quota_for_ratio(sizes, cfg.ratio)
            )
            selected = ok & (rank < quota[np.maximum(labels, 0)])
        else:
            score, selected = semdedup(x, labels, dist, cfg.k, cfg.semdedup_threshold)
            rank = rank_within_clusters(labels, score, cfg.k)
        ctx.progress(n)
        ctx.log.info("baseline %s: selected %d of %d", cfg.name, selected.sum(), n)
        return result_table(
            inp, labels, dist, np.zeros(n, bool), score, rank, selected, excluded,
            score_name=SCORE_NAME[cfg.name], clustered=cfg.name in CLUSTERED,
        )  # fmt: skip


def build_baseline_stages(cfg: BaselineConfig) -> list[Any]:
    stages: list[Any] = [EmbedStage(cfg.encode)]
    if cfg.name in CLUSTERED:
        stages.append(KMeansStage(cfg.k, cfg.kmeans_iterations))
    return [*stages, BaselineResultStage(cfg)]


def outputs_for(cfg: BaselineConfig) -> dict[str, Any]:
    groups = [{"column": "cluster", "label": "Cluster"}] if cfg.name in CLUSTERED else []
    return {
        "table": "result",
        "groups": groups,
        "scores": [SCORE_NAME[cfg.name]] + (["distance"] if cfg.name in CLUSTERED else []),
        "selections": {"default": "selected"},
        "default_selection": "default",
    }
