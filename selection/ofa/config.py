"""Configuration objects of the OFA methods (ofa, ofa-apply, baseline:*), saved in run.json["params"].

Defaults and where they come from (docs/ofa.md has the long form):
- paper values: CLIP ViT-B/32 encoder, image || text concatenated then L2-normalised (Eq. 2),
  k = 20 clusters,
  k-means++ then Lloyd, 2-layer MLP, cross-entropy, Adam, selection ratio r = 0.15.
- DESIGN.md: E = 3 epochs (the paper's number was lost in our copy).
- our choices, because the paper's text lost the value: rho = 50 (percentile), lr = 1e-3
  (Adam's usual default), hidden = 256, train batch = 256, 20 Lloyd iterations.

The run seed (`--seed`, run.json["seed"]) drives every random choice; the configs hold no seed
of their own (older runs wrote one: it is ignored on resume).
"""

from __future__ import annotations

from dataclasses import dataclass

from selection.config import Config, param
from store.errors import ThresherError

NORMALIZATIONS = ("concat", "per-tower")


@dataclass
class EncodeConfig(Config):
    encoder: str = param("ViT-B-32", "open_clip model name, or a model-config .json.")
    pretrained: str = param(
        "openai",
        "open_clip weights tag, a local checkpoint file, or 'none' (random weights, tests only).",
    )
    normalize: str = param(
        "concat",
        "How image and text features become one vector. concat: concatenate the two CLIP "
        "embeddings, then L2-normalise (the paper's Eq. 2); per-tower: L2-normalise each tower "
        "first, then the concatenation (each modality weighs the same; Thresher's old default).",
        choices=NORMALIZATIONS,
    )
    device: str = param("auto", "auto, cpu, cuda or cuda:N.")
    batch_size: int = param(64, "Images per forward pass.")
    workers: int = param(2, "Image-decoding threads.")
    shard_size: int = param(4096, "Rows per embeddings/part-NNNNN.npy: the resume unit.")
    from_run: str | None = param(
        None,
        "Reuse the embeddings of this run (same dataset) instead of encoding again.",
        metavar="RUN",
    )


@dataclass
class OFAConfig(Config):
    RETIRED = frozenset({"seed"})

    encode: EncodeConfig = param(EncodeConfig(), "CLIP encoder settings.")
    k: int = param(20, "k-means clusters.")
    kmeans_iterations: int = param(20, "Lloyd iterations.", aliases=("--iterations",))
    max_points_per_centroid: int | None = param(
        None, "Train k-means on at most this many points per centroid; empty = every point."
    )
    spherical: bool = param(
        False, "Spherical k-means (default: Euclidean on the L2-normalised features, Eq. 3)."
    )
    rho: float = param(50.0, "Core-set percentile of centroid distance, per cluster.")
    epochs: int = param(3, "Selector epochs (E): deliberately under-trained.")
    lr: float = param(1e-3, "Selector Adam learning rate.")
    hidden: int = param(256, "Selector hidden width.")
    train_batch_size: int = param(256, "Selector training batch size.")
    ratio: float = param(0.15, "Fraction kept per cluster (r).")
    budget: int | None = param(None, "Keep N samples in total instead of a ratio.", metavar="N")

    def validate(self) -> OFAConfig:
        _check_common(self.ratio, self.budget)
        if self.k < 2:
            raise ThresherError(f"--k must be at least 2, got {self.k}")
        if not 0 < self.rho <= 100:
            raise ThresherError(f"--rho is a percentile in (0, 100], got {self.rho}")
        if self.epochs < 1:
            raise ThresherError(f"--epochs must be at least 1, got {self.epochs}")
        return self


@dataclass
class OFAApplyConfig(Config):
    RETIRED = frozenset({"seed"})

    selector: str = param(
        "", "Folder holding selector.json + selector.safetensors (or the json itself)."
    )
    encode: EncodeConfig = param(
        EncodeConfig(), "Encoder settings; name and weights come from the selector."
    )
    ratio: float = param(0.15, "Fraction kept per cluster (r).")
    budget: int | None = param(None, "Keep N samples in total instead of a ratio.", metavar="N")

    def validate(self) -> OFAApplyConfig:
        _check_common(self.ratio, self.budget)
        return self


BASELINES = ("random", "clip-score", "typiclust", "semdedup")


@dataclass
class BaselineConfig(Config):
    RETIRED = frozenset({"seed"})

    name: str = param("random", "Which baseline.", choices=BASELINES, cli=False)
    encode: EncodeConfig = param(EncodeConfig(), "CLIP encoder settings.")
    k: int = param(20, "Clusters (typiclust, semdedup).")
    kmeans_iterations: int = param(20, "Lloyd iterations.", aliases=("--iterations",))
    ratio: float = param(0.15, "Fraction kept per cluster (r).")
    budget: int | None = param(
        None,
        "Keep N samples in total instead of a ratio (random, clip-score, typiclust); with "
        "--from-run and no budget, the size matches that run's selection.",
        metavar="N",
    )
    typiclust_neighbors: int = param(
        20,
        "TypiClust: typicality = 1 / mean distance to this many neighbours.",
        aliases=("--neighbors",),
    )
    semdedup_threshold: float = param(
        0.95,
        "SemDeDup: a cosine at or above this is a near-duplicate.",
        aliases=("--threshold",),
    )

    def validate(self) -> BaselineConfig:
        if self.name not in BASELINES:
            raise ThresherError(
                f"unknown baseline {self.name!r}; choose one of {', '.join(BASELINES)}"
            )
        _check_common(self.ratio, self.budget)
        if not -1.0 <= self.semdedup_threshold <= 1.0:
            raise ThresherError(
                f"--threshold is a cosine in [-1, 1], got {self.semdedup_threshold}"
            )
        return self


def _check_common(ratio: float, budget: int | None) -> None:
    if budget is None and not 0 < ratio <= 1:
        raise ThresherError(f"--ratio must be in (0, 1], got {ratio}")
    if budget is not None and budget < 1:
        raise ThresherError(f"--budget must be at least 1, got {budget}")
