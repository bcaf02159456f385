"""K-means for OFA: our own seeded k-means++ seeding, then Lloyd iterations.

On the CPU the Lloyd steps run in `selection.ofa.lloyd` (small BLAS products, incremental means);
when faiss sees a GPU they run on faiss's GPU index, one faiss call per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from selection.ofa.lloyd import (
    RowBlocks,
    assign_blocked,
    block_rows,
    checked_sq_norms,
    lloyd,
    one_blas_thread,
)

_BACKENDS = ("auto", "blas", "faiss")


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (k, d) float32
    labels: np.ndarray  # (n,) int64
    sq_distances: np.ndarray  # (n,) float32, squared L2 to the assigned centroid
    inertia: float  # sum of squared distances after the last assignment
    iterations: int


def _sq_dist_to(x: np.ndarray, x_norms: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances of every row of x to each row of c: (n, m), in small BLAS blocks."""
    out = np.empty((len(x), len(c)), dtype=np.float32)
    ct = np.ascontiguousarray(c.T)
    step = block_rows(len(c), x.shape[1])
    with one_blas_thread():  # the same kernels whatever numpy's thread count (see lloyd.py)
        for s in range(0, len(x), step):
            np.matmul(x[s : s + step], ct, out=out[s : s + step])
    out *= -2.0
    out += x_norms[:, None]
    out += np.einsum("ij,ij->i", c, c)[None, :]
    np.maximum(out, 0.0, out=out)
    return out


def kmeans_plus_plus(
    x: np.ndarray,
    k: int,
    seed: int,
    n_local_trials: int | None = None,
    x_norms: np.ndarray | None = None,
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
    if x_norms is None:
        x_norms = np.einsum("ij,ij->i", x, x)
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
    """True when a faiss GPU build is installed and sees a GPU (faiss is optional)."""
    import importlib.util

    if importlib.util.find_spec("faiss") is None:
        return False
    import faiss

    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def _backend(name: str) -> str:
    if name not in _BACKENDS:
        from store.errors import ThresherError

        raise ThresherError(f"k-means backend must be one of {', '.join(_BACKENDS)}, got {name!r}")
    if name == "auto":
        return "faiss" if faiss_uses_gpu() else "blas"
    if name == "faiss":
        from selection.ofa.neighbours import pick_backend

        pick_backend("faiss")  # not installed: an error that says what to install
    return name


def assign(
    x: np.ndarray, centroids: np.ndarray, backend: str = "auto", threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: (labels int64, squared distances float32). `x` may be
    float16: it is cast block by block, never copied whole."""
    if _backend(backend) == "blas":
        rows = RowBlocks(len(x), len(centroids), x.shape[1], threads)
        return assign_blocked(x, None, centroids, rows)
    return _faiss_assign(x, centroids)


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    iterations: int = 20,
    seed: int = 0,
    max_points_per_centroid: int | None = None,
    spherical: bool = False,
    backend: str = "auto",
    threads: int | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> KMeansResult:
    """k-means++ seeding, then up to `iterations` Lloyd steps; stops early once no label moves.

    `backend`: "blas" (CPU, `selection.ofa.lloyd`), "faiss" (faiss's Lloyd, its GPU index when
    it has one), or "auto" (faiss with a GPU, blas otherwise). Both train on every row unless
    `max_points_per_centroid` caps faiss's sample (faiss's own default of 256 is overridden; the
    blas backend always uses every row). `spherical` renormalises centroids after each update.
    """
    backend = _backend(backend)  # a bad name fails before any work
    x = np.ascontiguousarray(x, dtype=np.float32)
    x_norms = checked_sq_norms(x)  # also rejects NaN/inf, once
    centroids = kmeans_plus_plus(x, k, seed, x_norms=x_norms)
    if backend == "blas":
        res = lloyd(
            x, centroids, iterations, x_norms=x_norms, spherical=spherical, threads=threads,
            on_iteration=on_iteration, cancelled=cancelled,
        )  # fmt: skip
        return KMeansResult(
            centroids=res.centroids,
            labels=res.labels,
            sq_distances=res.sq_distances,
            inertia=float(res.sq_distances.sum(dtype=np.float64)),
            iterations=res.iterations,
        )
    return _faiss_lloyd(
        x, centroids, iterations, seed, max_points_per_centroid, spherical, on_iteration, cancelled
    )


def _faiss_assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    c = np.ascontiguousarray(centroids, dtype=np.float32)
    index: faiss.Index = faiss.IndexFlatL2(c.shape[1])
    if faiss_uses_gpu():
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(c)
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    step = 65536
    for s in range(0, len(x), step):
        d, i = index.search(np.ascontiguousarray(x[s : s + step], dtype=np.float32), 1)
        labels[s : s + step] = i[:, 0]
        dist[s : s + step] = np.maximum(d[:, 0], 0.0)
    return labels, dist


def _faiss_lloyd(
    x, centroids, iterations, seed, max_points_per_centroid, spherical, on_iteration, cancelled
) -> KMeansResult:
    """One faiss call per Lloyd step, so progress and cancel work between steps; each call is
    exactly one update (assign to the given centroids, recompute the means)."""
    import faiss

    n, d = x.shape
    k = len(centroids)
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
            check_input_data_for_NaNs=False,  # checked once, by checked_sq_norms
            spherical=spherical,
            gpu=gpu,
            verbose=False,
        )
        km.train(x, init_centroids=centroids)
        new = np.ascontiguousarray(km.centroids, dtype=np.float32)
        done = it + 1
        if on_iteration is not None:
            obj = km.obj
            assert obj is not None, "Kmeans.train sets obj, one objective per iteration"
            on_iteration(done, float(obj[-1]) if len(obj) else float("nan"))
        # Unchanged centroids mean no label moved: Lloyd has converged (scikit-learn stops here too).
        converged = np.array_equal(new, centroids)
        centroids = new
        if converged:
            break
    labels, sq = _faiss_assign(x, centroids)
    return KMeansResult(
        centroids=centroids,
        labels=labels,
        sq_distances=sq,
        inertia=float(sq.sum(dtype=np.float64)),
        iterations=done,
    )
