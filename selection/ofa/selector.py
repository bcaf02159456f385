"""The OFA selector: a two-layer MLP trained briefly on the core set, saved as safetensors + selector.json."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from store.errors import ThresherError

WEIGHTS = "selector.safetensors"
META = "selector.json"
_SCORE_BLOCK = 65536


def build_mlp(dim: int, hidden: int, k: int):
    """input -> hidden (ReLU) -> k logits (paper III-D: 'a single hidden layer')."""
    from torch import nn

    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, k))


@dataclass
class TrainLog:
    epoch: int
    loss: float
    samples: int


def train_selector(
    x: np.ndarray,
    labels: np.ndarray,
    core: np.ndarray,
    k: int,
    *,
    hidden: int,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[TrainLog], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[Any, list[TrainLog]]:
    """Train the MLP on the core-set rows of x (pseudo-label = cluster id) for exactly `epochs` epochs.

    x may be float16 (the stored embeddings): batches are gathered and cast one at a time, so
    the core set is never copied whole. Initialisation and shuffling use their own generators
    seeded from `seed`, so the same inputs give the same weights.
    """
    import torch
    from torch import nn

    idx = np.flatnonzero(core)
    if len(idx) == 0:
        raise ThresherError("the core set is empty: raise --rho or check that samples were encoded")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_mlp(x.shape[1], hidden, k)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = np.random.default_rng(seed)
    y_all = labels.astype(np.int64)
    log: list[TrainLog] = []
    model.train()
    for epoch in range(1, epochs + 1):
        if cancelled is not None and cancelled():
            break
        perm = idx[gen.permutation(len(idx))]
        total, seen = 0.0, 0
        for s in range(0, len(perm), batch_size):
            rows = np.sort(perm[s : s + batch_size])  # sorted gathers read memory in order
            xb = torch.from_numpy(np.asarray(x[rows], dtype=np.float32))
            yb = torch.from_numpy(y_all[rows])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        entry = TrainLog(epoch=epoch, loss=total / max(seen, 1), samples=seen)
        log.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    model.eval()
    return model, log


def confidence(model, x: np.ndarray) -> np.ndarray:
    """Max softmax probability of each row (paper Eq. 6), float32, scored in blocks."""
    import torch

    out = np.empty(len(x), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(x), _SCORE_BLOCK):
            xb = torch.from_numpy(np.asarray(x[s : s + _SCORE_BLOCK], dtype=np.float32))
            out[s : s + len(xb)] = torch.softmax(model(xb), dim=1).max(dim=1).values.numpy()
    return out


def fingerprint_rows(sample_ids: np.ndarray, dataset_fingerprint: str | None) -> str:
    """A short hash naming the training set: the dataset fingerprint plus the exact rows used."""
    h = hashlib.sha256((dataset_fingerprint or "").encode())
    h.update(np.ascontiguousarray(sample_ids, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def save_selector(folder: Path, model, meta: dict[str, Any], centroids: np.ndarray) -> None:
    """Write selector.safetensors (MLP weights + centroids) and selector.json, each atomically."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    tensors["centroids"] = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    weights_sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, folder / WEIGHTS)
    meta = {**meta, "weights_sha256": weights_sha, "centroids": centroids.astype(float).tolist()}
    tmp = folder / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, folder / META)


@dataclass
class LoadedSelector:
    model: Any
    meta: dict[str, Any]
    centroids: np.ndarray
    folder: Path


def resolve_selector_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser().resolve()
    if p.is_file() and p.name == META:
        p = p.parent
    if (p / "selector" / META).exists():  # a run folder
        p = p / "selector"
    if not (p / META).exists() or not (p / WEIGHTS).exists():
        raise ThresherError(
            f"{p}: no {META} + {WEIGHTS} here; pass the selector/ folder of a finished OFA run"
        )
    return p


def load_selector(path: str | os.PathLike[str]) -> LoadedSelector:
    from safetensors.torch import load_file

    folder = resolve_selector_path(path)
    meta = json.loads((folder / META).read_text())
    tensors = load_file(str(folder / WEIGHTS))
    centroids = tensors.pop("centroids").numpy()
    model = build_mlp(int(meta["dim"]), int(meta["hidden"]), int(meta["k"]))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ThresherError(f"{folder / WEIGHTS} does not match {folder / META}: {exc}") from exc
    model.eval()
    return LoadedSelector(model=model, meta=meta, centroids=centroids, folder=folder)
