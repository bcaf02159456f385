"""Nearest-neighbour searches of the baselines as blocked matrix products: numpy on the CPU, torch
on a GPU, faiss when it is installed (`pip install thresher[faiss]`, or the GPU build in `[gpu]`).

TypiClust needs each member's k nearest members of its cluster and SemDeDup each member's highest
cosine to an earlier member; both are exact, so every backend returns the same neighbours (the
distances agree to float32 rounding: the products are summed in different orders).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

BACKENDS = ("auto", "numpy", "torch", "faiss")
# Rows per block: a (block, n) float32 product stays a few hundred MB even for big clusters.
BLOCK = 1024


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def pick_backend(name: str = "auto") -> str:
    """auto: faiss when installed, else torch on a visible GPU, else numpy."""
    if name not in BACKENDS:
        from store.errors import ThresherError

        raise ThresherError(f"neighbour backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "faiss" and not faiss_available():
        from store.errors import ThresherError

        raise ThresherError(
            "faiss is not installed; `pip install 'thresher[faiss]'` (CPU) or "
            "`pip install 'thresher[gpu]'`, or use the numpy backend"
        )
    if name != "auto":
        return name
    if faiss_available():
        return "faiss"
    return "torch" if _torch_cuda() else "numpy"


def knn_sq_distances(x: np.ndarray, nn: int, backend: str = "auto", block: int = BLOCK) -> Any:
    """Squared L2 distances from each row of `x` to its `nn` nearest rows (itself included, first).

    Returns (n, nn) float32, ascending per row.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    nn = min(nn, len(x))
    kind = pick_backend(backend)
    if kind == "faiss":
        import faiss

        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        d, _ = index.search(x, nn)
        return np.maximum(d, 0.0)
    if kind == "torch":
        return _knn_torch(x, nn, block)
    norms = np.einsum("ij,ij->i", x, x)
    out = np.empty((len(x), nn), dtype=np.float32)
    for s in range(0, len(x), block):
        e = min(s + block, len(x))
        d = norms[s:e, None] - 2.0 * (x[s:e] @ x.T) + norms[None, :]
        # Each row's own distance is 0 by definition; rounding can make it slightly off.
        d[np.arange(e - s), np.arange(s, e)] = 0.0
        part = np.argpartition(d, nn - 1, axis=1)[:, :nn] if nn < len(x) else None
        if part is not None:
            d = np.take_along_axis(d, part, axis=1)
        out[s:e] = np.sort(d, axis=1)[:, :nn]
    return np.maximum(out, 0.0)


def _knn_torch(x: np.ndarray, nn: int, block: int) -> np.ndarray:  # pragma: no cover - needs a GPU
    import torch

    t = torch.from_numpy(x).cuda()
    norms = (t * t).sum(1)
    out = []
    for s in range(0, len(t), block):
        e = min(s + block, len(t))
        d = norms[s:e, None] - 2.0 * (t[s:e] @ t.T) + norms[None, :]
        d[torch.arange(e - s), torch.arange(s, e)] = 0.0
        out.append(torch.topk(d, nn, dim=1, largest=False).values.clamp_min_(0).cpu())
    return torch.cat(out).numpy()


def max_earlier_cosine(xc: np.ndarray, block: int = BLOCK, backend: str = "auto") -> np.ndarray:
    """For rows already in SemDeDup's order: each row's highest dot product with an earlier row
    (-1 for the first). Rows are unit vectors, so the dot product is the cosine."""
    pick_backend(backend)  # a bad name fails here
    if (
        backend == "auto" and _torch_cuda()
    ) or backend == "torch":  # pragma: no cover - needs a GPU
        return _max_earlier_torch(xc, block)
    xc = np.asarray(xc, dtype=np.float32)
    best = np.full(len(xc), -1.0, dtype=np.float32)
    for s in range(0, len(xc), block):
        e = min(s + block, len(xc))
        sims = xc[s:e] @ xc[:e].T  # (block, e): earlier members only, below the diagonal
        sims[np.arange(e - s)[:, None] <= np.arange(e)[None, :] - s] = -1.0
        best[s:e] = sims.max(axis=1)
    return best


def _max_earlier_torch(xc: np.ndarray, block: int) -> np.ndarray:  # pragma: no cover - GPU
    import torch

    t = torch.from_numpy(np.ascontiguousarray(xc, dtype=np.float32)).cuda()
    best = torch.full((len(t),), -1.0, device=t.device)
    for s in range(0, len(t), block):
        e = min(s + block, len(t))
        sims = t[s:e] @ t[:e].T
        later = torch.arange(e - s, device=t.device)[:, None] <= (
            torch.arange(e, device=t.device)[None, :] - s
        )
        sims[later] = -1.0
        best[s:e] = sims.max(dim=1).values
    return best.cpu().numpy()
