"""OFA selection: per cluster keep the lowest-confidence samples (a uniform ratio or a total budget)."""

from __future__ import annotations

import numpy as np

from store.errors import ThresherError


def round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def quota_for_ratio(sizes: np.ndarray, ratio: float) -> np.ndarray:
    """Kept count per cluster: round-half-up of r * n_c, and at least 1 for a non-empty cluster.

    The floor of one keeps every cluster represented (diversity is the point of selecting per
    cluster); it only matters when r * n_c < 0.5.
    """
    if not 0.0 < ratio <= 1.0:
        raise ThresherError(f"--ratio must be in (0, 1], got {ratio}")
    q = np.array([round_half_up(ratio * n) for n in sizes], dtype=np.int64)
    q = np.where(sizes > 0, np.maximum(q, 1), 0)
    return np.minimum(q, sizes)


def quota_for_budget(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Split a total budget N over clusters in proportion to their sizes (largest remainder).

    Each cluster first gets floor(N * n_c / n); the leftover seats go to the largest
    fractional parts (ties: the smaller cluster id). The quotas sum to min(N, n) exactly.
    """
    if budget < 1:
        raise ThresherError(f"--budget must be at least 1, got {budget}")
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    budget = min(int(budget), total)
    if total == 0:
        return np.zeros_like(sizes)
    exact = budget * sizes / total
    q = np.floor(exact).astype(np.int64)
    left = budget - int(q.sum())
    order = np.lexsort((np.arange(len(sizes)), -(exact - q)))
    q[order[:left]] += 1
    return np.minimum(q, sizes)


def rank_within_clusters(labels: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """0-based rank of each row inside its cluster by ascending score (ties: input order); -1 if excluded."""
    rank = np.full(len(labels), -1, dtype=np.int64)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        order = members[np.argsort(score[members], kind="stable")]
        rank[order] = np.arange(len(order))
    return rank


def select_by_rank(
    labels: np.ndarray, rank: np.ndarray, k: int, ratio: float, budget: int | None
) -> np.ndarray:
    """Selected mask: rows whose in-cluster rank is below their cluster's quota."""
    sizes = np.bincount(labels[labels >= 0], minlength=k)[:k]
    quota = quota_for_budget(sizes, budget) if budget is not None else quota_for_ratio(sizes, ratio)
    selected = np.zeros(len(labels), dtype=bool)
    ok = labels >= 0
    selected[ok] = rank[ok] < quota[labels[ok]]
    return selected


def select_low_confidence(
    labels: np.ndarray,
    confidence: np.ndarray,
    k: int,
    *,
    ratio: float = 0.15,
    budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(selected, rank_in_cluster): per cluster keep the lowest-confidence quota (paper Eq. 1).

    `budget` (a total sample count) wins over `ratio` when given.
    """
    rank = rank_within_clusters(labels, confidence, k)
    return select_by_rank(labels, rank, k, ratio, budget), rank
