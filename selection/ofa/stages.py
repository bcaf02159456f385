"""OFA as job stages: embeddings -> kmeans -> selector -> result (and ofa-apply: embeddings -> result)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from selection.jobs import RunContext, Shard, row_shards, single_shard
from selection.ofa.config import EncodeConfig, OFAApplyConfig, OFAConfig
from store import runs
from store.errors import ThresherError

if TYPE_CHECKING:
    from selection.ofa.encode import Encoder

OUTPUTS = {
    "table": "result",
    "groups": [{"column": "cluster", "label": "Cluster"}],
    "scores": ["confidence", "distance"],
    "selections": {"default": "selected"},
    "default_selection": "default",
}


# ---------------------------------------------------------------- embeddings on disk


def embedding_files(run_dir: Path) -> list[Path]:
    return runs.stage_files(run_dir, "embeddings", ".npy")


def load_embeddings(run_dir: Path, n_rows: int, dtype=np.float32) -> np.ndarray:
    """All embedding shards in one array of `dtype`, filled shard by shard (no float16 copy held)."""
    files = embedding_files(run_dir)
    if not files:
        raise ThresherError(f"{run_dir / 'embeddings'} has no shards: the encode stage did not run")
    first = np.load(files[0], mmap_mode="r")
    out = np.empty((n_rows, first.shape[1]), dtype=dtype)
    at = 0
    for f in files:
        part = np.load(f, mmap_mode="r")
        out[at : at + len(part)] = part
        at += len(part)
    if at != n_rows:
        raise ThresherError(f"{run_dir / 'embeddings'} holds {at} rows, input.parquet {n_rows}")
    return out


def _resolve_other_run(ctx: RunContext, run: str) -> Path:
    return runs.resolve_run_dir(ctx.run_dir.parent, run)


class EmbedStage:
    """Encode (first image, first question) per sample; float16 shards row-aligned with input.parquet."""

    name = "embeddings"
    unit = "samples"
    suffix = ".npy"

    def __init__(self, cfg: EncodeConfig) -> None:
        self.cfg = cfg
        self._encoder: Encoder | None = None
        self._source: np.ndarray | None = None

    def plan(self, ctx: RunContext) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.cfg.shard_size, ctx.seed, self.name)

    def _from_run(self, ctx: RunContext, from_run: str) -> np.ndarray:
        if self._source is None:
            other = _resolve_other_run(ctx, from_run)
            import pyarrow.parquet as pq

            theirs = pq.read_table(other / runs.INPUT, columns=["sample_id"]).column(0)
            if not theirs.equals(ctx.input().column("sample_id")):
                raise ThresherError(
                    f"--from-run {from_run}: its input rows differ from this run's "
                    "(another dataset or subset); drop --from-run to encode afresh"
                )
            enc = (runs.read_run_json(other).get("params") or {}).get("encode") or {}
            mode = enc.get("normalize", "per-tower")  # runs before Eq. 2 was the default
            if mode != self.cfg.normalize:
                raise ThresherError(
                    f"--from-run {from_run}: its embeddings are normalised {mode}, this run "
                    f"asks for {self.cfg.normalize}; pass --normalize {mode} or drop --from-run"
                )
            self._source = load_embeddings(other, len(theirs), dtype=np.float16)
        return self._source

    def run_shard(self, ctx: RunContext, shard: Shard) -> np.ndarray:
        if self.cfg.from_run:
            source = self._from_run(ctx, self.cfg.from_run)
            return np.ascontiguousarray(source[shard.start : shard.stop])
        from selection.ofa.encode import encode_rows, load_encoder

        if self._encoder is None:
            import warnings

            # The CLI already warned the user; inside the job the warning belongs in job.log.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._encoder = load_encoder(self.cfg)
            for w in caught:
                ctx.log.warning("%s", w.message)
            ctx.log.info(
                "encoder %s (%s) on %s", self.cfg.encoder, self.cfg.pretrained, self._encoder.device
            )
        rows = ctx.input_rows(shard)
        emb, reasons = encode_rows(
            self._encoder,
            rows.column("images").to_pylist(),
            rows.column("question").to_pylist(),
            rows.column("flags").to_pylist(),
            batch_size=self.cfg.batch_size,
            workers=self.cfg.workers,
            on_batch=ctx.progress,
            logger=ctx.log,
        )
        ids = rows.column("sample_id").to_pylist()
        bad = [(ids[i], r) for i, r in enumerate(reasons) if r]
        if bad:
            shown = ", ".join(f"{sid} ({r})" for sid, r in bad[:10])
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            ctx.log.warning("excluded %d samples: %s%s", len(bad), shown, more)
            ctx.emit(
                "log", message=f"excluded {len(bad)} samples without a usable image: {shown}{more}"
            )
        return emb


class KMeansStage:
    """k-means++ seeding + Lloyd on every encoded sample; writes the (k, d) centroids."""

    name = "kmeans"
    unit = "iterations"
    suffix = ".npy"

    def __init__(self, k: int, iterations: int, cap: int | None = None, spherical: bool = False):
        self.k, self.iterations, self.cap, self.spherical = k, iterations, cap, spherical

    def plan(self, ctx: RunContext) -> list[Shard]:
        return single_shard(self.iterations, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> np.ndarray:
        from selection.ofa.encode import excluded_mask
        from selection.ofa.kmeans import kmeans

        x = load_embeddings(ctx.run_dir, ctx.input().num_rows)
        x = _rows(x, ~excluded_mask(x))
        res = kmeans(
            x,
            self.k,
            iterations=self.iterations,
            seed=ctx.seed,
            max_points_per_centroid=self.cap,
            spherical=self.spherical,
            on_iteration=lambda i, obj: ctx.progress(i, objective=obj),
        )
        ctx.log.info(
            "k-means: k=%d, %d iterations, inertia %.4f", self.k, res.iterations, res.inertia
        )
        return res.centroids


def _rows(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x[mask] without the copy when every row is in (the common case; the matrix can be GBs)."""
    return x if mask.all() else x[mask]


def _clusters(ctx: RunContext, x: np.ndarray, centroids: np.ndarray):
    """Nearest centroid and Euclidean distance per row; excluded rows get label -1."""
    from selection.ofa.encode import excluded_mask
    from selection.ofa.kmeans import assign

    excluded = excluded_mask(x)
    labels = np.full(len(x), -1, dtype=np.int64)
    dist = np.full(len(x), np.nan, dtype=np.float32)
    ok = ~excluded
    lab, sq = assign(_rows(x, ok), centroids)
    labels[ok], dist[ok] = lab, np.sqrt(sq)
    return labels, dist, excluded


def _radii(labels: np.ndarray, dist: np.ndarray, k: int, rho: float) -> list[float | None]:
    return [
        float(np.percentile(dist[labels == c], rho)) if (labels == c).any() else None
        for c in range(k)
    ]


class SelectorStage:
    """Core set -> train the MLP for exactly E epochs -> selector/ (safetensors + selector.json)."""

    name = "selector"
    unit = "epochs"

    def __init__(self, cfg: OFAConfig) -> None:
        self.cfg = cfg

    def plan(self, ctx: RunContext) -> list[Shard]:
        return single_shard(self.cfg.epochs, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> pa.Table:
        from selection.ofa.coreset import core_set
        from selection.ofa.selector import fingerprint_rows, save_selector, train_selector

        cfg = self.cfg
        inp = ctx.input()
        x = load_embeddings(ctx.run_dir, inp.num_rows, dtype=np.float16)  # cast per block
        centroids = ctx.read_stage("kmeans")
        labels, dist, _ = _clusters(ctx, x, centroids)
        core = core_set(labels, dist, cfg.k, cfg.rho)
        model, log = train_selector(
            x, labels, core, cfg.k,
            hidden=cfg.hidden, epochs=cfg.epochs, lr=cfg.lr,
            batch_size=cfg.train_batch_size, seed=ctx.seed,
            on_epoch=lambda e: ctx.progress(e.epoch, loss=round(e.loss, 5)),
        )  # fmt: skip
        ids = inp.column("sample_id").to_numpy()
        meta = {
            "format": "thresher-ofa-selector/1",
            "encoder": cfg.encode.encoder,
            "pretrained": cfg.encode.pretrained,
            "normalize": cfg.encode.normalize,
            "dim": int(x.shape[1]),
            "hidden": cfg.hidden,
            "k": cfg.k,
            "rho": cfg.rho,
            "radii": _radii(labels, dist, cfg.k, cfg.rho),
            "epochs": cfg.epochs,
            "lr": cfg.lr,
            "train_batch_size": cfg.train_batch_size,
            "seed": ctx.seed,
            "run_id": ctx.run_id,
            "dataset": ctx.meta.get("dataset"),
            "training_set": fingerprint_rows(ids[core], ctx.meta.get("dataset_fingerprint")),
            "n_train": int(core.sum()),
            "train_loss": [round(e.loss, 6) for e in log],
        }
        save_selector(ctx.stage_dir("selector"), model, meta, centroids)
        return pa.table(
            {
                "epoch": pa.array([e.epoch for e in log], pa.int32()),
                "loss": pa.array([e.loss for e in log], pa.float64()),
                "samples": pa.array([e.samples for e in log], pa.int64()),
            }
        )


def result_table(
    inp: pa.Table,
    labels: np.ndarray,
    dist: np.ndarray,
    in_core: np.ndarray,
    score: np.ndarray,
    rank: np.ndarray,
    selected: np.ndarray,
    excluded: np.ndarray,
    score_name: str = "confidence",
    clustered: bool = True,
) -> pa.Table:
    """The `result` shard: one row per input sample, nulls where a sample was excluded."""
    from selection.ofa.encode import exclusion_reason

    images, flags = inp.column("images").to_pylist(), inp.column("flags").to_pylist()
    reason = [
        (exclusion_reason(images[i], flags[i]) or "decode_failed") if excluded[i] else None
        for i in range(len(labels))
    ]
    ok = ~excluded
    no_cluster = ~ok if clustered else np.ones(len(labels), bool)
    return pa.table(
        {
            "sample_id": inp.column("sample_id"),
            "cluster": pa.array(labels.astype(np.int32), pa.int32(), mask=no_cluster),
            "distance": pa.array(dist.astype(np.float32), pa.float32(), mask=no_cluster),
            "in_core": pa.array(in_core & ok, pa.bool_()),
            score_name: pa.array(score.astype(np.float32), pa.float32(), mask=~ok),
            "rank_in_cluster": pa.array(rank.astype(np.int32), pa.int32(), mask=~ok),
            "selected": pa.array(selected & ok, pa.bool_()),
            "excluded": pa.array(excluded, pa.bool_()),
            "exclude_reason": pa.array(reason, pa.string()),
        }
    )


class ResultStage:
    """Assign, score with the selector, keep the lowest-confidence quota per cluster."""

    name = "result"
    unit = "samples"

    def __init__(self, selector: str | None, ratio: float, budget: int | None) -> None:
        self.selector, self.ratio, self.budget = selector, ratio, budget

    def plan(self, ctx: RunContext) -> list[Shard]:
        return single_shard(ctx.input().num_rows, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> pa.Table:
        from selection.ofa.select import select_low_confidence
        from selection.ofa.selector import confidence, load_selector

        inp = ctx.input()
        sel = load_selector(self.selector or ctx.run_dir / "selector")
        x = load_embeddings(ctx.run_dir, inp.num_rows, dtype=np.float16)  # cast per block
        if x.shape[1] != int(sel.meta["dim"]):
            raise ThresherError(
                f"embeddings are {x.shape[1]}-d but selector {sel.folder} expects {sel.meta['dim']}-d: "
                f"encode with its encoder {sel.meta['encoder']}"
            )
        k = int(sel.meta["k"])
        labels, dist, excluded = _clusters(ctx, x, sel.centroids)
        radii = np.array([r if r is not None else -math.inf for r in sel.meta["radii"]])
        in_core = np.zeros(len(x), bool)
        ok = labels >= 0
        in_core[ok] = dist[ok] <= radii[labels[ok]]
        conf = np.full(len(x), np.nan, dtype=np.float32)
        conf[ok] = confidence(sel.model, _rows(x, ok))
        selected, rank = select_low_confidence(
            labels, conf, k, ratio=self.ratio, budget=self.budget
        )
        ctx.progress(len(x))
        ctx.log.info(
            "selected %d of %d samples (%d excluded)", selected.sum(), len(x), excluded.sum()
        )
        return result_table(inp, labels, dist, in_core, conf, rank, selected, excluded)


def build_ofa_stages(cfg: OFAConfig) -> list[Any]:
    return [
        EmbedStage(cfg.encode),
        KMeansStage(cfg.k, cfg.kmeans_iterations, cfg.max_points_per_centroid, cfg.spherical),
        SelectorStage(cfg),
        ResultStage(None, cfg.ratio, cfg.budget),
    ]


def build_apply_stages(cfg: OFAApplyConfig) -> list[Any]:
    return [EmbedStage(cfg.encode), ResultStage(cfg.selector, cfg.ratio, cfg.budget)]
