"""Approximate search (`--approx`): an inverted-file index over the same float16 rows.

Coarse lists come from a spherical k-means of a sample of the run's embeddings; every row joins
its nearest centroid's list, and a query scans only its `nprobe` nearest lists, exactly (the
codes are the stored half floats, `by_residual=False`). Training and assignment run once per
run and are cached in `<run>/search/ivf-<nlist>.npz` (centroids + one int32 a row, a few MB),
keyed by the embedding shards' sizes and mtimes; later opens only regroup the rows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from store.errors import ThresherError

BLOCK = 65536


def default_nlist(n: int) -> int:
    """About sqrt(n) / 4 lists (250 at a million rows), within [8, 1024]."""
    return int(min(1024, max(8, round(math.sqrt(n) / 4))))


@dataclass
class CoarseLists:
    centroids: np.ndarray  # (nlist, d) float32, unit rows
    assign: np.ndarray  # (n,) int32: the list of each row


def _rows(shards: list[np.ndarray], offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), shards[0].shape[1]), np.float32)
    for k, shard in enumerate(shards):
        sel = (rows >= offsets[k]) & (rows < offsets[k + 1])
        out[sel] = shard[rows[sel] - offsets[k]]
    return out


def train_lists(shards: list[np.ndarray], nlist: int, seed: int = 0) -> CoarseLists:
    import faiss

    offsets = np.cumsum([0] + [len(s) for s in shards])
    n, d = int(offsets[-1]), shards[0].shape[1]
    if n < nlist:
        raise ThresherError(f"--approx needs at least {nlist} embedded rows, the run has {n}")
    rng = np.random.default_rng(seed)
    sample = _rows(shards, offsets, np.sort(rng.choice(n, min(n, 40 * nlist), replace=False)))
    sample = sample[np.any(sample != 0, axis=1)]
    km = faiss.Kmeans(d, nlist, niter=10, seed=seed, spherical=True, verbose=False)
    km.train(sample)
    centroids = np.asarray(km.centroids, np.float32)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(centroids)
    assign = np.empty(n, np.int32)
    for shard, base in zip(shards, offsets[:-1], strict=False):
        for s in range(0, len(shard), BLOCK):
            block = np.asarray(shard[s : s + BLOCK], dtype=np.float32)
            assign[base + s : base + s + len(block)] = quantizer.search(block, 1)[1][:, 0]
    return CoarseLists(centroids, assign)


def _stamp(files: list[Path]) -> np.ndarray:
    return np.array([v for f in files for v in (f.stat().st_size, f.stat().st_mtime_ns)], np.int64)


def load_or_train(run_dir: Path, files: list[Path], shards: list[np.ndarray], nlist: int):
    """The run's cached coarse lists when they match its shards, else trained now and cached."""
    path = run_dir / "search" / f"ivf-{nlist}.npz"
    stamp = _stamp(files)
    if path.exists():
        with np.load(path) as z:
            if np.array_equal(z["stamp"], stamp):
                return CoarseLists(z["centroids"], z["assign"])
    lists = train_lists(shards, nlist)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, centroids=lists.centroids, assign=lists.assign, stamp=stamp)
    os.replace(tmp, path)
    return lists


def ivf_index(shards: list[np.ndarray], lists: CoarseLists, nprobe: int):
    """A faiss IVF index whose lists hold the rows' float16 bits as they are (no re-encoding)."""
    import faiss

    d = shards[0].shape[1]
    nlist = len(lists.centroids)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(lists.centroids)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, d, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT, False
    )
    index.is_trained = True
    invlists = index.invlists
    assert invlists is not None
    offsets = np.cumsum([0] + [len(s) for s in shards])
    order = np.argsort(lists.assign, kind="stable")
    bounds = np.searchsorted(lists.assign[order], np.arange(nlist + 1))
    for li in range(nlist):
        rows = order[bounds[li] : bounds[li + 1]].astype(np.int64)
        if not len(rows):
            continue
        codes = np.empty((len(rows), d), np.float16)
        for k, shard in enumerate(shards):
            sel = (rows >= offsets[k]) & (rows < offsets[k + 1])
            codes[sel] = shard[rows[sel] - offsets[k]]
        flat = codes.view(np.uint8).reshape(-1)
        invlists.add_entries(li, len(rows), faiss.swig_ptr(rows), faiss.swig_ptr(flat))
    index.ntotal = len(lists.assign)
    index.nprobe = max(1, min(nprobe, nlist))
    return index
