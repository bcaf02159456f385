"""K-means for OFA: our own seeded k-means++ seeding, then Lloyd iterations on faiss (GPU when it has one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Rows per block when computing distances with numpy: bounds the temporary (block x k) memory.
_BLOCK = 65536


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (k, d) float32
    labels: np.ndarray  # (n,) int64
    sq_distances: np.ndarray  # (n,) float32, squared L2 to the assigned centroid
    inertia: float  # sum of squared distances after the last assignment
    iterations: int


def _sq_norms(x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x), dtype=np.float32)
    for s in range(0, len(x), _BLOCK):
        blk = x[s : s + _BLOCK]
        out[s : s + _BLOCK] = np.einsum("ij,ij->i", blk, blk)
    return out


def _sq_dist_to(x: np.ndarray, x_norms: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances of every row of x to each row of c: (n, m), computed blockwise."""
    c_norms = np.einsum("ij,ij->i", c, c)
    out = np.empty((len(x), len(c)), dtype=np.float32)
    for s in range(0, len(x), _BLOCK):
        blk = x[s : s + _BLOCK]
        d = blk @ c.T
        d *= -2.0
        d += x_norms[s : s + _BLOCK, None]
        d += c_norms[None, :]
        np.maximum(d, 0.0, out=d)
        out[s : s + _BLOCK] = d
    return out


def kmeans_plus_plus(
    x: np.ndarray, k: int, seed: int, n_local_trials: int | None = None
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; the greedy variant scikit-learn uses).

    Each new centre is the best of `2 + ln k` candidates drawn with probability proportional to
    the squared distance to the nearest centre chosen so far. Seeded, so reruns pick the same rows.
    """
    n = len(x)
    if k > n:
        from store.errors import ThresherError

        raise ThresherError(f"k-means: k={k} clusters but only {n} usable samples; lower --k.")
    rng = np.random.default_rng(seed)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(k))
    x_norms = _sq_norms(x)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = _sq_dist_to(x, x_norms, centers[:1])[:, 0]
    pot = float(closest.sum(dtype=np.float64))
    for c in range(1, k):
        if pot <= 0.0:  # every point already sits on a centre: pick any remaining row
            cand = rng.integers(n, size=n_local_trials)
        else:
            cum = np.cumsum(closest, dtype=np.float64)
            cand = np.searchsorted(cum, rng.random(n_local_trials) * cum[-1], side="right")
            np.clip(cand, 0, n - 1, out=cand)
        d_cand = _sq_dist_to(x, x_norms, x[cand])  # (n, trials)
        np.minimum(d_cand, closest[:, None], out=d_cand)
        pots = d_cand.sum(axis=0, dtype=np.float64)
        best = int(np.argmin(pots))
        centers[c] = x[cand[best]]
        closest = d_cand[:, best].copy()
        pot = float(pots[best])
    return centers


def faiss_uses_gpu() -> bool:
    import faiss

    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: (labels int64, squared distances float32)."""
    import faiss

    c = np.ascontiguousarray(centroids, dtype=np.float32)
    index = faiss.IndexFlatL2(c.shape[1])
    if faiss_uses_gpu():
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(c)
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    for s in range(0, len(x), _BLOCK):
        blk = np.ascontiguousarray(x[s : s + _BLOCK], dtype=np.float32)
        d, i = index.search(blk, 1)
        labels[s : s + len(blk)] = i[:, 0]
        dist[s : s + len(blk)] = np.maximum(d[:, 0], 0.0)
    return labels, dist


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    iterations: int = 20,
    seed: int = 0,
    max_points_per_centroid: int | None = None,
    spherical: bool = False,
    on_iteration: Callable[[int, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> KMeansResult:
    """k-means++ seeding, then up to `iterations` Lloyd steps on faiss, one call per step.

    It stops early when a step leaves every centroid unchanged (converged).

    One faiss call per step lets us report progress and stop between steps; each call is
    exactly one Lloyd update (assign to the given centroids, recompute the means). faiss
    trains on all rows unless `max_points_per_centroid` caps it (faiss's own default is 256,
    a subsample; we pass a cap larger than n). `spherical` renormalises centroids each step.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    # faiss would scan for NaNs on every call (one call per step): check once here instead.
    for s in range(0, n, _BLOCK):
        if not np.isfinite(x[s : s + _BLOCK]).all():
            from store.errors import ThresherError

            raise ThresherError(
                "k-means: the embeddings contain NaN/inf; re-encode (delete embeddings/)"
            )
    centroids = kmeans_plus_plus(x, k, seed)
    cap = max_points_per_centroid or (n // k + 1)
    gpu = faiss_uses_gpu()
    done = 0
    for it in range(iterations):
        if cancelled is not None and cancelled():
            break
        km = faiss.Kmeans(
            d,
            k,
            niter=1,
            seed=seed + it,  # only used when faiss subsamples (a user cap)
            max_points_per_centroid=cap,
            min_points_per_centroid=1,
            check_input_data_for_NaNs=False,
            spherical=spherical,
            gpu=gpu,
            verbose=False,
        )
        km.train(x, init_centroids=centroids)
        new = np.ascontiguousarray(km.centroids, dtype=np.float32)
        done = it + 1
        if on_iteration is not None:
            on_iteration(done, float(km.obj[-1]) if len(km.obj) else float("nan"))
        # Unchanged centroids mean no label moved: Lloyd has converged (scikit-learn stops here too).
        converged = np.array_equal(new, centroids)
        centroids = new
        if converged:
            break
    labels, sq = assign(x, centroids)
    return KMeansResult(
        centroids=centroids,
        labels=labels,
        sq_distances=sq,
        inertia=float(sq.sum(dtype=np.float64)),
        iterations=done,
    )
