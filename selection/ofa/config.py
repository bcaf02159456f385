"""Configuration objects of the OFA methods (ofa, ofa-apply, baseline:*), saved in run.json["params"].

Defaults and where they come from (docs/ofa.md has the long form):
- paper values: CLIP ViT-B/32 encoder, image || text features L2-normalised, k = 20 clusters,
  k-means++ then Lloyd, 2-layer MLP, cross-entropy, Adam, selection ratio r = 0.15.
- DESIGN.md: E = 3 epochs (the paper's number was lost in our copy).
- our choices, because the paper's text lost the value: rho = 50 (percentile), lr = 1e-3
  (Adam's usual default), hidden = 256, train batch = 256, 20 Lloyd iterations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from store.errors import ThresherError


@dataclass
class EncodeConfig:
    encoder: str = "ViT-B-32"  # open_clip model name, or a path to an open_clip model-config JSON
    pretrained: str = "openai"  # open_clip tag, a local checkpoint file, or "none" (random weights)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 64  # images per forward pass
    workers: int = 2  # image-decoding threads
    shard_size: int = 4096  # rows per embeddings/part-NNNNN.npy: the resume unit
    from_run: str | None = None  # reuse the embeddings of this run (same input rows) instead


@dataclass
class OFAConfig:
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    k: int = 20
    kmeans_iterations: int = 20
    max_points_per_centroid: int | None = None  # None: k-means trains on every point
    spherical: bool = False  # plain Euclidean k-means on the L2-normalised features (Eq. 3)
    rho: float = 50.0  # core-set percentile of centroid distance, per cluster
    epochs: int = 3  # E: deliberately under-trained
    lr: float = 1e-3
    hidden: int = 256
    train_batch_size: int = 256
    ratio: float = 0.15  # r: per-cluster kept fraction
    budget: int | None = None  # total kept samples instead of a ratio
    seed: int = 0

    def validate(self) -> OFAConfig:
        _check_common(self.ratio, self.budget, self.seed)
        if self.k < 2:
            raise ThresherError(f"--k must be at least 2, got {self.k}")
        if not 0 < self.rho <= 100:
            raise ThresherError(f"--rho is a percentile in (0, 100], got {self.rho}")
        if self.epochs < 1:
            raise ThresherError(f"--epochs must be at least 1, got {self.epochs}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OFAConfig:
        d = dict(d)
        enc = EncodeConfig(**d.pop("encode", {}))
        return cls(encode=enc, **d)


@dataclass
class OFAApplyConfig:
    selector: str = ""  # folder holding selector.json + selector.safetensors (or the json itself)
    encode: EncodeConfig = field(
        default_factory=EncodeConfig
    )  # encoder fields come from the selector
    ratio: float = 0.15
    budget: int | None = None
    seed: int = 0

    def validate(self) -> OFAApplyConfig:
        _check_common(self.ratio, self.budget, self.seed)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OFAApplyConfig:
        d = dict(d)
        enc = EncodeConfig(**d.pop("encode", {}))
        return cls(encode=enc, **d)


BASELINES = ("random", "clip-score", "typiclust", "semdedup")


@dataclass
class BaselineConfig:
    name: str = "random"  # random | clip-score | typiclust | semdedup
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    k: int = 20  # clusters for typiclust / semdedup
    kmeans_iterations: int = 20
    ratio: float = 0.15
    budget: int | None = None  # random, clip-score, typiclust: total kept samples
    typiclust_neighbors: int = (
        20  # TypiClust: typicality = 1 / mean distance to this many neighbours
    )
    semdedup_threshold: float = 0.95  # SemDeDup: cosine at or above this is a near-duplicate
    seed: int = 0

    def validate(self) -> BaselineConfig:
        if self.name not in BASELINES:
            raise ThresherError(
                f"unknown baseline {self.name!r}; choose one of {', '.join(BASELINES)}"
            )
        _check_common(self.ratio, self.budget, self.seed)
        if not -1.0 <= self.semdedup_threshold <= 1.0:
            raise ThresherError(
                f"--threshold is a cosine in [-1, 1], got {self.semdedup_threshold}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaselineConfig:
        d = dict(d)
        enc = EncodeConfig(**d.pop("encode", {}))
        return cls(encode=enc, **d)


def _check_common(ratio: float, budget: int | None, seed: int) -> None:
    if budget is None and not 0 < ratio <= 1:
        raise ThresherError(f"--ratio must be in (0, 1], got {ratio}")
    if budget is not None and budget < 1:
        raise ThresherError(f"--budget must be at least 1, got {budget}")
