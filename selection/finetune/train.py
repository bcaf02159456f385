"""The fine-tune as a job: its run folder, and the stages `train` and `finalize`.

`train` is one shard: transformers' Trainer (`selection.finetune.hf`) in this process, or in N
processes through torchrun (`selection.finetune.launch`). The Trainer checkpoints every
`save_steps` into `checkpoints/checkpoint-N/` and a rerun resumes from the last one; a cancel
request stops at the next step with a checkpoint, and the shard stays missing until a rerun
finishes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from selection.finetune.config import FinetuneConfig
from selection.finetune.data import Example
from selection.finetune.hf import (
    ADAPTER,
    SUMMARY,
    Plan,
    last_checkpoint,
    read_result,
    step_log,
)
from selection.jobs.stage import single_shard
from store import runs
from store.errors import ThresherError
from store.export.read import Manifest, Sidecar, read_manifest

METHOD = "finetune"
BUILD_STAGES = "selection.finetune.train:build_stages"
CONFIG_CLS = "selection.finetune.config:FinetuneConfig"

_STEP_FIELDS = [
    ("step", "int64"),
    ("epoch", "float64"),
    ("loss", "float64"),
    ("lr", "float64"),
    ("grad_norm", "float64"),
    ("samples", "int64"),
    ("tokens", "int64"),
    ("skipped", "int64"),
    ("seconds", "float64"),
]


class TrainStage:
    """The whole training as one shard of `total_steps` steps; returns the per-step log."""

    name = "train"
    unit = "steps"

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config

    def plan(self, ctx: Any) -> list:
        n = ctx.input().num_rows  # one example per row of input.parquet
        total = Plan.of(n, self.config, self.config.nproc or 1).total_steps
        return single_shard(total, ctx.seed, self.name)

    def run_shard(self, ctx: Any, shard: Any) -> Any:
        import pyarrow as pa

        from selection.finetune.launch import needs_launcher, run_torchrun

        if needs_launcher(self.config):
            result = run_torchrun(ctx, self.config)
        else:
            from selection.finetune.fit import train

            result = train(ctx.run_dir, self.config, ctx.seed, ctx, ctx.log)
        if result["status"] != "done":
            ctx.request_cancel()
            return None  # cancelled at a checkpoint: the runner leaves the shard missing
        schema = pa.schema([(n, getattr(pa, t)()) for n, t in _STEP_FIELDS])
        return pa.Table.from_pylist(step_log(ctx.run_dir), schema=schema)


class AdapterStage:
    """Copies the last checkpoint's adapter to `<run>/adapter` and writes the training summary."""

    name = "finalize"
    unit = "adapters"

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config

    def plan(self, ctx: Any) -> list:
        return single_shard(1, ctx.seed, self.name)

    def run_shard(self, ctx: Any, shard: Any) -> Any:
        import pyarrow as pa

        log = ctx.read_stage("train").to_pylist()
        ckpt = last_checkpoint(ctx.run_dir)
        if ckpt is None:
            raise ThresherError(f"{ctx.run_id}: no checkpoint to take the adapter from")
        dest = ctx.run_dir / ADAPTER
        tmp = dest.with_name(f".{ADAPTER}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy2(ckpt / name, tmp / name)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        result = read_result(ctx.run_dir)
        summary = training_summary(ctx.meta, self.config, log, result, dest)
        runs.write_json_atomic(ctx.run_dir / SUMMARY, summary)
        ctx.log.info("fine-tune: adapter in %s, summary in %s", dest, ctx.run_dir / SUMMARY)
        keys = ["n_train", "steps", "final_loss", "train_time_s", "samples_per_s"]
        return pa.table({k: [summary[k]] for k in keys} | {"adapter": [str(dest)]})


def training_summary(
    meta: dict[str, Any],
    config: FinetuneConfig,
    log: list[dict[str, Any]],
    result: dict[str, Any],
    adapter: Path,
) -> dict[str, Any]:
    """What `thresher eval` and `report` need to tie an adapter to the selection it learned from."""
    log = sorted(log, key=lambda r: r["step"])
    step_s = sum(r["seconds"] for r in log)
    samples = sum(r["samples"] for r in log)
    tail = [r["loss"] for r in log[-max(1, len(log) // 10) :]]
    manifest = meta.get("manifest", {})
    link = Sidecar.from_dict(manifest.get("meta") or {})
    return {
        "run_id": meta["run_id"],
        "model": config.model,
        "adapter": str(adapter),
        "manifest": manifest.get("path"),
        "manifest_format": manifest.get("format"),
        "manifest_sha256": manifest.get("sha256"),
        "export_id": link.export_id,
        "selection_run_id": link.selection_run_id,
        "selection": link.selection,
        "selection_method": link.method,
        "dataset": link.dataset,
        "n_full": link.n_full,
        "n_train": meta.get("n_input"),
        "n_skipped": sum(r["skipped"] for r in log),
        "steps": log[-1]["step"],
        "epochs": log[-1]["epoch"],
        "first_loss": log[0]["loss"],
        "final_loss": sum(tail) / len(tail),
        # Wall time of every attempt (model loading and checkpoints included).
        "train_time_s": sum(result.get("segments", [])) or step_s,
        "step_time_s": step_s,
        "samples_per_s": samples / step_s if step_s else None,
        "world_size": result.get("world_size", 1),
        "seed": meta.get("seed"),
        "config": config.to_dict(),
        **result.get("info", {}),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_stages(config: FinetuneConfig) -> list:
    return [TrainStage(config), AdapterStage(config)]


# ---------------------------------------------------------------- the run folder


def _input_table(examples: list[Example]) -> Any:
    import pyarrow as pa

    def first(role: str, ex: Example) -> str:
        text = next((c for r, c in ex.turns if r == role), "")
        return " ".join(text.replace("<image>", " ").split())

    return pa.table(
        {
            "sample_id": pa.array([e.sample_id for e in examples], pa.int64()),
            "orig_id": [e.id for e in examples],
            "images": pa.array([list(e.images) for e in examples], pa.list_(pa.string())),
            "question": [first("user", e) for e in examples],
            "answer": [first("assistant", e) for e in examples],
            "conversation": [
                json.dumps([{"role": r, "content": c} for r, c in e.turns]) for e in examples
            ],
            "task": pa.array([e.task for e in examples], pa.string()),
            "flags": pa.array([[] for _ in examples], pa.list_(pa.string())),
            # ms-swift "loss": false answers (indices among the assistant turns).
            "no_loss": pa.array([list(e.no_loss) for e in examples], pa.list_(pa.int32())),
        }
    )


def _with_sample_ids(con: Any, dataset_id: int, table: Any) -> Any:
    """Fill `sample_id` from the catalog by (dataset, original id), so the training samples can be
    joined with the dataset and the selection run; ids the catalog lacks stay NULL."""
    import pyarrow as pa

    con.register("_ft_ids", table.select(["orig_id"]))
    try:
        found = dict(
            con.execute(
                "SELECT s.orig_id, s.sample_id FROM samples s JOIN _ft_ids f USING (orig_id) "
                "WHERE s.dataset_id = ?",
                [dataset_id],
            ).fetchall()
        )
    finally:
        con.unregister("_ft_ids")
    ids = pa.array([found.get(o) for o in table["orig_id"].to_pylist()], pa.int64())
    return table.set_column(0, "sample_id", ids)


def _identity(manifest: Manifest, config: FinetuneConfig, seed: int) -> dict[str, Any]:
    from selection.jobs.registry import config_to_params

    return {
        "method": METHOD,
        "dataset": manifest.sidecar.dataset or manifest.path.stem,
        "dataset_fingerprint": hashlib.sha256(manifest.path.read_bytes()).hexdigest(),
        "seed": int(seed),
        "subset": None,
        "params": config_to_params(config),
    }


def create_finetune_run(
    catalog: Any, config: FinetuneConfig, *, seed: int = 0, run_id: str | None = None
) -> Path:
    """Make (or find, to resume) `runs/<id>/` for a fine-tune on `config.manifest`.

    The manifest's samples are snapshotted into input.parquet, so a resumed run trains on the
    same data even if the manifest is re-exported meanwhile. Same manifest bytes + settings =
    same run id, so rerunning the command resumes.
    """
    from selection.jobs.runner import default_run_id

    config.require_model()
    if config.nproc is None:  # recorded concretely: the world size changes the batches
        from selection.finetune.launch import default_nproc

        config.nproc = default_nproc(config.device)
    config.manifest = str(Path(config.manifest).expanduser().resolve())
    manifest = read_manifest(config.manifest)
    identity = _identity(manifest, config, seed)
    run_id = (
        runs.check_run_id(run_id)
        if run_id
        else default_run_id(METHOD, manifest.path.stem, identity)
    )
    run_dir = catalog.workspace.runs_dir / run_id
    if runs.resumes(run_dir, identity):
        return run_dir
    dataset_id, table = None, _input_table(manifest.examples)
    link = manifest.sidecar
    if link.dataset:
        with catalog.connect() as con:
            rows = con.execute(
                "SELECT dataset_id FROM datasets WHERE name = ?", [link.dataset]
            ).fetchall()
            if rows:
                dataset_id = rows[0][0]
                table = _with_sample_ids(con, dataset_id, table)
    with runs.creating_run_folder(catalog.workspace.runs_dir, run_id) as (tmp, meta):
        runs.write_parquet_atomic(table, tmp / runs.INPUT)
        meta.update(
            {
                **identity,
                "dataset_id": dataset_id,
                "n_input": len(manifest.examples),
                "stages": [s.name for s in build_stages(config)],
                "outputs": None,
                "build_stages": BUILD_STAGES,
                "config_cls": CONFIG_CLS,
                "manifest": {
                    "path": str(manifest.path),
                    "format": manifest.format,
                    "sha256": identity["dataset_fingerprint"],
                    "meta": manifest.sidecar.raw,
                },
            }
        )
    with catalog.transaction() as con:
        runs.insert_run_row(con, run_dir, meta, "queued")
    return run_dir


def read_training_summary(adapter: str | Path) -> dict[str, Any] | None:
    """The summary of the fine-tune that wrote `adapter` (its run folder or the adapter folder)."""
    path = Path(adapter).expanduser().resolve()
    for cand in (path / SUMMARY, path.parent / SUMMARY):
        if cand.exists():
            return json.loads(cand.read_text())
    return None
