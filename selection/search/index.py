"""Exact top-k inner-product search over a run's float16 embedding shards (faiss, or blocked NumPy).

The shards are memory-mapped. With faiss (a base dependency) the float16 bytes are handed to a
flat `IndexScalarQuantizer(QT_fp16)` as they are: its codes are IEEE half floats, the same bits
NumPy stores, so the index is exact, costs one copy of the matrix and no conversion, and scans
with SIMD (bench/RESULTS.md, "Search"). Without faiss a blocked float32 matmul over the mapped
shards gives the same ranking, about 25x slower. Rows that were never encoded (all-zero vectors,
see selection.ofa.encode) never appear in results.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from store import runs
from store.errors import ThresherError

if TYPE_CHECKING:
    from selection.search.ivf import CoarseLists

FAISS_AVAILABLE = importlib.util.find_spec("faiss") is not None
TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None
BACKENDS = ("auto", "faiss", "torch", "numpy")
_BLOCK = 32768  # rows per NumPy block: 128 MiB of float32 at 1024-d


@dataclass(frozen=True)
class Neighbours:
    """Best-first rows (positions in input.parquet) and their inner products with the query."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float32


class EmbeddingIndex:
    """All embedding shards of one run, searchable; build once, query many times (thread-safe reads)."""

    def __init__(
        self,
        shards: list[np.ndarray],
        *,
        backend: str = "auto",
        lists: CoarseLists | None = None,
        nprobe: int = 16,
    ) -> None:
        if not shards:
            raise ThresherError("no embedding shards to search")
        dims = {s.shape[1] for s in shards}
        if len(dims) != 1:
            raise ThresherError(f"embedding shards disagree on width: {sorted(dims)}")
        self.shards = shards
        self.dim = dims.pop()
        self.offsets = np.cumsum([0] + [len(s) for s in shards])
        self.n = int(self.offsets[-1])
        if backend == "auto":
            backend = "faiss" if FAISS_AVAILABLE else "torch" if TORCH_AVAILABLE else "numpy"
        if backend == "faiss" and not FAISS_AVAILABLE:
            raise ThresherError("backend faiss: faiss is not installed (pip install faiss-cpu)")
        if backend not in BACKENDS[1:]:
            raise ThresherError(f"unknown search backend {backend!r}; use {', '.join(BACKENDS)}")
        self.backend = backend
        if lists is not None:  # approximate: only the query's nprobe nearest lists are scanned
            if backend != "faiss":
                raise ThresherError("--approx needs faiss (pip install faiss-cpu)")
            from selection.search.ivf import ivf_index

            self._faiss = ivf_index(shards, lists, nprobe)
            self.backend = f"faiss-ivf (nlist {len(lists.centroids)}, nprobe {self._faiss.nprobe})"
        else:
            self._faiss = self._build_faiss() if backend == "faiss" else None

    @classmethod
    def open(
        cls, run_dir: Path, *, backend: str = "auto", nlist: int | None = None, nprobe: int = 16
    ) -> EmbeddingIndex:
        """The run's index: exact, or with `nlist` coarse lists (0 = a default for the size)."""
        files = runs.stage_files(run_dir, "embeddings", ".npy")
        if not files:
            raise ThresherError(
                f"run {run_dir.name} has no CLIP embeddings ({run_dir / 'embeddings'} is empty); "
                "search needs an OFA, ofa-apply or baseline run whose encode stage has run."
            )
        shards = [np.load(f, mmap_mode="r") for f in files]
        if nlist is None:
            return cls(shards, backend=backend)
        from selection.search.ivf import default_nlist, load_or_train

        n = sum(len(s) for s in shards)
        lists = load_or_train(run_dir, files, shards, nlist or default_nlist(n))
        return cls(shards, backend=backend, lists=lists, nprobe=nprobe)

    def _build_faiss(self):
        import faiss

        index = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        size = self.n * self.dim * 2
        index.codes.resize(size)
        # One copy, page cache -> faiss's vector, through a NumPy view of the vector's memory.
        codes = faiss.rev_swig_ptr(index.codes.data(), size)
        for shard, start in zip(self.shards, self.offsets[:-1], strict=False):
            flat = np.asarray(shard, dtype=np.float16).view(np.uint8).reshape(-1)
            codes[start * self.dim * 2 : start * self.dim * 2 + flat.size] = flat
        index.ntotal = self.n
        return index

    def vector(self, row: int) -> np.ndarray:
        if not 0 <= row < self.n:
            raise ThresherError(f"row {row} is outside the {self.n} embedded rows")
        k = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return np.asarray(self.shards[k][row - self.offsets[k]], dtype=np.float32)

    def search(self, query: np.ndarray, k: int, *, exclude: int | None = None) -> Neighbours:
        """The k rows with the largest <row, query>, best first (fewer when fewer rows are encoded)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ThresherError(f"query is {q.shape[1]}-d, the embeddings {self.dim}-d")
        fetch = min(self.n, 2 * k + 16)  # room for excluded (all-zero) rows and `exclude`
        if self._faiss is not None:
            scores, rows = self._faiss.search(q, fetch)
            scores, rows = scores[0], rows[0].astype(np.int64)
        elif self.backend == "torch":
            scores, rows = self._torch_search(q[0], fetch)
        else:
            scores, rows = self._numpy_search(q[0], fetch)
        keep = [
            i
            for i, r in enumerate(rows)
            if r >= 0 and r != exclude and np.any(self.vector(int(r)) != 0)
        ][:k]
        return Neighbours(rows=rows[keep], scores=scores[keep].astype(np.float32))

    def _numpy_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        best_s = np.empty(0, np.float32)
        best_r = np.empty(0, np.int64)
        buf = np.empty((_BLOCK, self.dim), np.float32)
        for shard, base in zip(self.shards, self.offsets[:-1], strict=False):
            for s in range(0, len(shard), _BLOCK):
                blk = buf[: min(_BLOCK, len(shard) - s)]
                np.copyto(blk, shard[s : s + len(blk)])
                sims = blk @ q
                top = np.argpartition(-sims, min(k, len(sims)) - 1)[:k]
                best_s = np.concatenate([best_s, sims[top]])
                best_r = np.concatenate([best_r, top + base + s])
                if len(best_s) > k:
                    cut = np.argpartition(-best_s, k - 1)[:k]
                    best_s, best_r = best_s[cut], best_r[cut]
        order = np.lexsort((best_r, -best_s))  # ties: input order, as faiss
        return best_s[order], best_r[order]

    def _torch_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Half-precision matrix-vector products on the mapped shards pick 4k + 64 candidates
        (8x faster than casting to float32 on the CPU); their float32 scores order them, so
        the answer is the exact one unless float16 rounding (~1e-3) hides a row more than
        4k + 64 places down."""
        import warnings

        import torch

        pool = 4 * k + 64
        tq = torch.from_numpy(q).half()
        cand = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the mapped shards are read-only: we only read
            for shard, base in zip(self.shards, self.offsets[:-1], strict=False):
                for s in range(0, len(shard), 4 * _BLOCK):
                    blk = torch.from_numpy(shard[s : s + 4 * _BLOCK])
                    sims = (blk @ tq).float()
                    top = torch.topk(sims, min(pool, len(sims))).indices.numpy()
                    cand.append(top.astype(np.int64) + base + s)
        rows = np.unique(np.concatenate(cand))
        exact = np.array([self.vector(int(r)) @ q for r in rows], dtype=np.float32)
        order = np.lexsort((rows, -exact))[:k]
        return exact[order], rows[order]
