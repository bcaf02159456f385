"""Lloyd's k-means on the CPU with small BLAS products: the assignment and update faiss would do, faster.

Why not faiss on the CPU: for OFA's shape (hundreds of thousands of rows, d = 1024, k = 20) a
faiss Lloyd step measured 0.35-0.42 s on one core; the same step here takes about half that.
Two things make the difference (bench/RESULTS.md, "OFA"):

- **Small products.** The (n, d) x (d, k) product runs as many row blocks small enough that
  OpenBLAS takes its small-matrix kernel (M*N*K <= 1e6), about 1.5x the throughput of one
  large call for this skinny shape.
- **Incremental means.** Centroid sums live in float64 and only rows whose label changed are
  added or subtracted (one small one-hot product); a full recount runs only when most rows move.

Reproducible by construction, whatever the thread count: row blocks have fixed boundaries,
chunk partial sums are added in chunk order, and every BLAS call runs on one BLAS thread (the
parallelism is ours, over chunks). A multi-threaded BLAS call may split a product differently,
and pick other kernels, than a single-threaded one; on some CPUs (OpenBLAS's Haswell and Zen
kernels) that changed the last bit of the centroids between 1 and 3 threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

_SMALL_GEMM = 1_000_000  # OpenBLAS's small-matrix kernel threshold on M*N*K
_CHUNK_BLOCKS = 256  # row blocks per chunk: the unit of work of one thread
_FULL_RECOUNT = 0.5  # more than this fraction of rows changed label: recount the sums from scratch
_GATHER = 16384  # moved rows copied out at a time for the incremental update


@dataclass
class LloydResult:
    centroids: np.ndarray  # (k, d) float32
    labels: np.ndarray  # (n,) int64, nearest centroid of each row
    sq_distances: np.ndarray  # (n,) float32, squared L2 to it
    iterations: int  # Lloyd updates run


def block_rows(k: int, d: int) -> int:
    """Rows per BLAS call: under the small-matrix threshold, within [16, 4096]."""
    return int(min(4096, max(16, _SMALL_GEMM // max(1, k * d))))


def default_threads() -> int:
    """The BLAS thread count numpy runs with (honours threadpoolctl limits and OMP/OPENBLAS env)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(1, min(counts)) if counts else max(1, os.cpu_count() or 1)


def checked_sq_norms(x: np.ndarray, offset: int = 0) -> np.ndarray:
    """Squared row norms of a float32 matrix; a NaN or inf anywhere in a row makes its norm
    non-finite, so this is also the finiteness check (one pass instead of two)."""
    out = np.empty(len(x), dtype=np.float32)
    step = 65536
    for s in range(0, len(x), step):
        blk = x[s : s + step]
        out[s : s + step] = np.einsum("ij,ij->i", blk, blk)
    if not np.isfinite(out).all():
        from store.errors import ThresherError

        bad = offset + int(np.flatnonzero(~np.isfinite(out))[0])
        raise ThresherError(
            f"k-means: embedding row {bad} contains NaN/inf; re-encode (delete embeddings/)"
        )
    return out


@contextmanager
def one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


class RowBlocks:
    """Fixed row blocks (`block_rows(k, d)` rows each) grouped into chunks, run on a thread pool
    (inline for one thread). `threads` defaults to numpy's BLAS thread count."""

    def __init__(self, n: int, k: int, d: int, threads: int | None = None):
        self.rows = block_rows(k, d)
        size = self.rows * _CHUNK_BLOCKS
        self.chunks = [(s, min(s + size, n)) for s in range(0, n, size)]
        self.threads = max(1, min(threads or default_threads(), len(self.chunks)))

    def blocks(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        for s in range(start, stop, self.rows):
            yield s, min(s + self.rows, stop)

    @contextmanager
    def pool(self):
        # One BLAS thread per call, for one thread too: the same kernels on the same blocks
        # whatever `threads` is, so the result is bit-identical for any thread count.
        with one_blas_thread():
            if self.threads == 1:
                yield map
                return
            with ThreadPoolExecutor(self.threads) as ex:
                yield ex.map

    def run(self, fn: Callable[[int, int], object]) -> list:
        with self.pool() as mapper:
            return list(mapper(lambda c: fn(*c), self.chunks))


def _assign_chunk(x, x_norms, ct, half_c2, labels, sq, rows: RowBlocks, start: int, stop: int):
    xc = x[start:stop]
    if xc.dtype != np.float32:  # float16 embeddings: cast one chunk, never the whole matrix
        xc = xc.astype(np.float32)
    if x_norms is None:
        norms = checked_sq_norms(xc, offset=start)
    else:
        norms = x_norms[start:stop]
    scores = np.empty((stop - start, ct.shape[1]), dtype=np.float32)
    for s, e in rows.blocks(0, stop - start):
        np.matmul(xc[s:e], ct, out=scores[s:e])
    scores -= half_c2  # argmax of x.c - |c|^2/2 = argmin of |x - c|^2
    lab = scores.argmax(1)
    best = np.take_along_axis(scores, lab[:, None], 1)[:, 0]
    labels[start:stop] = lab
    d = norms - 2.0 * best
    np.maximum(d, 0.0, out=d)
    sq[start:stop] = d


def assign_blocked(
    x: np.ndarray, x_norms: np.ndarray | None, centroids: np.ndarray, rows: RowBlocks
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row and the squared distance to it. `x` may be float16 (cast
    chunk by chunk); without `x_norms` each chunk's norms are computed and checked on the way."""
    c = np.asarray(centroids, dtype=np.float32)
    ct = np.ascontiguousarray(c.T)
    half_c2 = 0.5 * np.einsum("ij,ij->i", c, c)
    labels = np.empty(len(x), dtype=np.int64)
    sq = np.empty(len(x), dtype=np.float32)
    rows.run(lambda s, e: _assign_chunk(x, x_norms, ct, half_c2, labels, sq, rows, s, e))
    return labels, sq


def _signed_sums(x_rows: np.ndarray, plus: np.ndarray, minus: np.ndarray | None, k: int, step: int):
    """sum over rows of (+x into cluster plus[i]) and (-x out of cluster minus[i]), float64 (k, d)."""
    out = np.zeros((k, x_rows.shape[1]), dtype=np.float64)
    onehot = np.zeros((k, step), dtype=np.float32)
    part = np.empty((k, x_rows.shape[1]), dtype=np.float32)
    for s in range(0, len(x_rows), step):
        e = min(s + step, len(x_rows))
        m = onehot[:, : e - s]
        m[:] = 0.0
        cols = np.arange(e - s)
        m[plus[s:e], cols] = 1.0
        if minus is not None:
            m[minus[s:e], cols] -= 1.0
        np.matmul(m, x_rows[s:e], out=part)
        out += part
    return out


def _recount(x: np.ndarray, labels: np.ndarray, k: int, rows: RowBlocks):
    """Cluster sums (float64) and counts of a whole partition, from scratch."""
    parts = rows.run(lambda s, e: _signed_sums(x[s:e], labels[s:e], None, k, rows.rows))
    total = np.zeros((k, x.shape[1]), dtype=np.float64)
    for p in parts:  # chunk order: the same float sum whatever the thread count
        total += p
    return total, np.bincount(labels, minlength=k).astype(np.int64)


def _relocate_empty(sums, counts, labels, sq, x) -> None:
    """An emptied cluster restarts at the row farthest from its centroid (scikit-learn's rule)."""
    empty = np.flatnonzero(counts == 0)
    if len(empty) == 0:
        return
    far = np.argsort(-sq, kind="stable")
    taken = 0
    for j in empty:
        while taken < len(far) and counts[labels[far[taken]]] <= 1:
            taken += 1  # never empty another cluster to fill this one
        if taken == len(far):
            return
        p = far[taken]
        taken += 1
        old = labels[p]
        sums[old] -= x[p]
        counts[old] -= 1
        sums[j] = x[p]
        counts[j] = 1
        labels[p] = j
        sq[p] = 0.0


def lloyd(
    x: np.ndarray,
    centroids: np.ndarray,
    iterations: int,
    *,
    x_norms: np.ndarray | None = None,
    spherical: bool = False,
    threads: int | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> LloydResult:
    """Up to `iterations` Lloyd updates from `centroids`; stops when no label changes.

    `on_iteration(i, inertia)` reports the sum of squared distances of step i's assignment.
    The returned labels and distances are to the returned centroids.
    """
    n, d = x.shape
    k = len(centroids)
    if x_norms is None:
        x_norms = checked_sq_norms(x)
    rows = RowBlocks(n, k, d, threads)
    c = np.array(centroids, dtype=np.float32)
    labels: np.ndarray | None = None  # the partition `sums` and `counts` hold
    done = 0
    for it in range(iterations):
        if cancelled is not None and cancelled():
            break
        new, sq = assign_blocked(x, x_norms, c, rows)
        done = it + 1
        if on_iteration is not None:
            on_iteration(done, float(sq.sum(dtype=np.float64)))
        if labels is None:
            sums, counts = _recount(x, new, k, rows)
        else:
            moved = np.flatnonzero(new != labels)
            if len(moved) == 0:
                return LloydResult(c, new, sq, done)  # converged: the update would change nothing
            if len(moved) > _FULL_RECOUNT * n:
                sums, counts = _recount(x, new, k, rows)
            else:
                with one_blas_thread():
                    for s in range(0, len(moved), _GATHER):  # bounded copies of the moved rows
                        m = moved[s : s + _GATHER]
                        sums += _signed_sums(x[m], new[m], labels[m], k, rows.rows)
                counts += np.bincount(new[moved], minlength=k)
                counts -= np.bincount(labels[moved], minlength=k)
        labels = new
        _relocate_empty(sums, counts, labels, sq, x)
        c = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if spherical:
            c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    labels, sq = assign_blocked(x, x_norms, c, rows)
    return LloydResult(c, labels, sq, done)
