"""A test method (`sleepy`) and a tiny dataset maker for the job runner's tests.

The method is registered by entry-point strings, so a detached worker process imports it the
same way it imports a real method.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from selection.jobs import RunContext, Shard, register_method, row_shards, single_shard


@dataclass
class SleepyConfig:
    shard_size: int = 4
    sleep_s: float = 0.05  # per shard, so tests can kill or cancel a job mid-stage
    threshold: float = 0.5
    fail_at_shard: int | None = None  # raise in this shard of `score` (tests the failed state)
    # A folder: shard i of `score` waits until the file <gate>/<i> exists, so a test decides
    # exactly where a job is when it kills or cancels it (no timing guesses on a busy machine).
    gate: str | None = None
    # A file: the process running shard `die_at_shard` deletes it and exits at once (a Ray actor
    # killed by the OOM killer or a lost node), so only the first attempt dies.
    die_flag: str | None = None
    die_at_shard: int | None = None


def open_gates(gate, *indices: int) -> None:
    for i in indices:
        (Path(gate) / str(i)).touch()


def inside_shard(gate, index: int) -> bool:
    """True once the job has started shard `index` of `score` (and waits at its gate)."""
    return (Path(gate) / f"in-{index}").exists()


class ScoreStage:
    """Seeded random scores per sample: the per-shard seed makes resumed shards byte-identical."""

    name = "score"
    unit = "samples"

    def __init__(self, config: SleepyConfig) -> None:
        self.config = config

    def plan(self, ctx: RunContext) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> pa.Table:
        if shard.index == self.config.fail_at_shard:
            raise RuntimeError(f"planned failure in shard {shard.index}")
        flag = self.config.die_flag
        if shard.index == self.config.die_at_shard and flag and Path(flag).exists():
            import os

            Path(flag).unlink()
            os._exit(1)
        if self.config.gate is not None:
            _wait_for_gate(Path(self.config.gate) / str(shard.index))
        rows = ctx.input_rows(shard)
        rng = np.random.default_rng(shard.seed)
        for i in range(shard.size):
            time.sleep(self.config.sleep_s / max(shard.size, 1))
            ctx.progress(i + 1, loss=1.0 / (i + 1))
        return pa.table(
            {
                "sample_id": rows.column("sample_id"),
                "score": pa.array(rng.random(shard.size), pa.float64()),
            }
        )


def _wait_for_gate(path: Path, timeout_s: float = 60.0) -> None:
    # Announce "inside this shard now", so a test can act while the shard is in flight.
    path.with_name(f"in-{path.name}").touch()
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.01)


class EmbedStage:
    """A .npy stage, as OFA's encoder writes."""

    name = "embeddings"
    unit = "samples"
    suffix = ".npy"

    def __init__(self, config: SleepyConfig) -> None:
        self.config = config

    def plan(self, ctx: RunContext) -> list[Shard]:
        return row_shards(ctx.input().num_rows, self.config.shard_size * 2, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> np.ndarray:
        rng = np.random.default_rng(shard.seed)
        return rng.standard_normal((shard.size, 8)).astype(np.float16)


class ResultStage:
    """One shard over the whole input: selected = score above the threshold."""

    name = "result"
    unit = "samples"

    def __init__(self, config: SleepyConfig) -> None:
        self.config = config

    def plan(self, ctx: RunContext) -> list[Shard]:
        return single_shard(ctx.input().num_rows, ctx.seed, self.name)

    def run_shard(self, ctx: RunContext, shard: Shard) -> pa.Table:
        scores = ctx.read_stage("score")
        emb = ctx.read_stage("embeddings")
        assert emb.shape[0] == scores.num_rows
        selected = pa.compute.greater(scores.column("score"), self.config.threshold)
        return pa.table(
            {
                "sample_id": scores.column("sample_id"),
                "score": scores.column("score"),
                "bucket": pa.compute.cast(
                    pa.compute.floor(pa.compute.multiply(scores.column("score"), 4)), pa.int32()
                ),
                "selected": selected,
            }
        )


def build_stages(config: SleepyConfig) -> list:
    return [ScoreStage(config), EmbedStage(config), ResultStage(config)]


OUTPUTS = {
    "table": "result",
    "groups": [{"column": "bucket", "label": "Bucket"}],
    "scores": ["score"],
    "selections": {"default": "selected"},
    "default_selection": "default",
}

register_method(
    "sleepy",
    build_stages="tests.helpers.jobs:build_stages",
    config_cls="tests.helpers.jobs:SleepyConfig",
    outputs=OUTPUTS,
)


def make_dataset(catalog, name: str = "toy", n: int = 20) -> int:
    """Insert a dataset of `n` text samples straight into the catalog (one Arrow insert)."""
    with catalog.transaction() as con:
        dataset_id = con.execute("SELECT nextval('dataset_ids')").fetchone()[0]
        con.execute(
            "INSERT INTO datasets VALUES (?, ?, 'table', '/dev/null', NULL, now(), now(), ?, 0, ?, NULL)",
            [dataset_id, name, n, f"fp-{name}-{n}"],
        )
        conv = [
            json.dumps(
                [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            )
            for i in range(n)
        ]
        samples = pa.table(
            {
                "sample_id": pa.array([dataset_id * 2**32 + i for i in range(n)], pa.int64()),
                "dataset_id": pa.array([dataset_id] * n, pa.int32()),
                "orig_id": [f"s{i}" for i in range(n)],
                "position": pa.array(range(n), pa.int64()),
                "images": [[] for _ in range(n)],
                "images_raw": [[] for _ in range(n)],
                "conversation": conv,
                "question": [f"q{i}" for i in range(n)],
                "answer": [f"a{i}" for i in range(n)],
                "n_image_tokens": pa.array([0] * n, pa.int32()),
                "n_turns": pa.array([1] * n, pa.int32()),
                "task": ["toy"] * n,
                "flags": [[] for _ in range(n)],
                "extra": [None] * n,
            }
        )
        con.register("_new_samples", samples)
        con.execute("INSERT INTO samples SELECT * FROM _new_samples")
        con.unregister("_new_samples")
    return dataset_id
