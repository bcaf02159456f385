"""The Stage API: a stage declares shards; the runner writes each shard's result once, atomically."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from selection.jobs.context import RunContext


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based; file name part-{index:05d}
    start: int  # first input row, inclusive
    stop: int  # last input row, exclusive
    seed: int  # derived from (run seed, stage name, index): resume-safe

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def filename(self) -> str:
        return f"part-{self.index:05d}"


@runtime_checkable
class Stage(Protocol):
    """What a method's step looks like to the runner.

    Optional attributes the runner honours: `suffix` (".parquet" default, or ".npy") and
    `write_shard(path, value)` for a stage that writes something else (it must write `path`
    atomically: temp name + os.replace).
    """

    name: str  # folder under the run
    unit: str  # what `done/total` counts: samples, probes, steps, iterations

    def plan(self, ctx: RunContext) -> list[Shard]: ...

    def run_shard(self, ctx: RunContext, shard: Shard) -> Any: ...


def derive_seed(run_seed: int, stage: str, index: int) -> int:
    """A 63-bit seed from (run seed, stage, shard index): the same shard gets the same seed on every run."""
    digest = hashlib.sha256(f"{run_seed}\x00{stage}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def row_shards(n_rows: int, shard_size: int, run_seed: int, stage: str) -> list[Shard]:
    """Split `n_rows` input rows into consecutive shards of `shard_size` (the last one may be short)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [
        Shard(i, start, min(start + shard_size, n_rows), derive_seed(run_seed, stage, i))
        for i, start in enumerate(range(0, n_rows, shard_size))
    ]


def single_shard(total: int, run_seed: int, stage: str) -> list[Shard]:
    """One shard covering `total` units: for whole-dataset steps (k-means, a fine-tune)."""
    return [Shard(0, 0, total, derive_seed(run_seed, stage, 0))]


def stage_suffix(stage: Any) -> str:
    return getattr(stage, "suffix", ".parquet") or ".parquet"


def shard_path(stage_dir: Path, stage: Any, shard: Shard) -> Path:
    return stage_dir / (shard.filename + stage_suffix(stage))


def write_shard_file(stage: Any, path: Path, value: Any) -> None:
    """Persist what `run_shard` returned: a pyarrow Table (Parquet) or a numpy array (.npy)."""
    custom = getattr(stage, "write_shard", None)
    if custom is not None:
        custom(path, value)
        return
    if path.suffix == ".npy":
        import numpy as np

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(value), allow_pickle=False)
        os.replace(tmp, path)
        return
    import pyarrow as pa

    from store.runs import write_parquet_atomic

    if isinstance(value, pa.RecordBatch):
        value = pa.Table.from_batches([value])
    if not isinstance(value, pa.Table):
        raise TypeError(
            f"stage {stage.name!r} returned {type(value).__name__}; a .parquet stage must return a "
            "pyarrow.Table"
        )
    write_parquet_atomic(value, path)
