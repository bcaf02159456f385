"""Benchmark: what the job runner costs over a plain loop doing the same work, and how briefly it locks.

    .venv/bin/python bench/jobs_overhead.py [--n 100000]

Same work both ways (seeded scores per row of input.parquet, one Parquet table out); the runner
adds per-shard files, atomic renames, progress events and status writes. Also measured: resuming
a finished stage (every shard skipped), reading a long progress.jsonl, and how long registering
a finished run holds the catalog's write lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from selection.jobs import create_run, register_method, row_shards, run_job  # noqa: E402
from selection.jobs.stage import derive_seed  # noqa: E402
from store import runs  # noqa: E402
from store.catalog import Catalog  # noqa: E402
from store.workspace import Workspace  # noqa: E402

OUT = ROOT / "bench" / "out" / "jobs"


@dataclass
class BenchConfig:
    shard_size: int = 1024


def score(rows: pa.Table, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"sample_id": rows.column("sample_id"), "score": rng.random(rows.num_rows)})


class ScoreStage:
    name = "score"
    unit = "samples"

    def __init__(self, config: BenchConfig) -> None:
        self.config = config

    def plan(self, ctx):
        return row_shards(ctx.input().num_rows, self.config.shard_size, ctx.seed, self.name)

    def run_shard(self, ctx, shard):
        return score(ctx.input_rows(shard), shard.seed)


def build_stages(config: BenchConfig) -> list:
    return [ScoreStage(config)]


register_method(
    "bench",
    "__main__:build_stages",
    "__main__:BenchConfig",
    outputs=None,  # run in-process
)


def make_catalog(n: int) -> Catalog:
    shutil.rmtree(OUT, ignore_errors=True)
    catalog = Catalog.open(Workspace(OUT).ensure())
    with catalog.transaction() as con:
        con.execute(
            "INSERT INTO datasets VALUES (1, 'bench', 'table', '/dev/null', NULL, now(), now(), ?, 0, 'fp', NULL)",
            [n],
        )
        con.execute(
            "INSERT INTO samples SELECT 2^32 + i, 1, 's' || i, i, [], [], '[]', 'q' || i, 'a' || i, "
            "0, 1, 'bench', [], NULL FROM range(?) t(i)",
            [n],
        )
    return catalog


def plain_loop(run_dir: Path, shard_size: int) -> float:
    """The same work with no runner: read input, score chunk by chunk, write one file."""
    t = time.perf_counter()
    inp = pq.read_table(run_dir / runs.INPUT)
    parts = [
        score(inp.slice(s, shard_size), derive_seed(0, "score", i))
        for i, s in enumerate(range(0, inp.num_rows, shard_size))
    ]
    pq.write_table(pa.concat_tables(parts), OUT / "plain.parquet", compression="zstd")
    return time.perf_counter() - t


class TimedCatalog(Catalog):
    """Records how long each write transaction holds the file."""

    held: list[float] = []

    @contextlib.contextmanager
    def transaction(self):
        with super().transaction() as con:
            t = time.perf_counter()
            yield con
            TimedCatalog.held.append(time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    catalog = make_catalog(args.n)
    print(f"n = {args.n:,} samples")
    print(f"{'shard size':>10} {'shards':>7} {'plain s':>8} {'runner s':>9} {'ratio':>6} "
          f"{'ms/shard':>9} {'resume s':>9}")  # fmt: skip
    for shard_size in (256, 1024, 8192):
        t = time.perf_counter()
        run_dir = create_run(catalog, "bench", "bench", BenchConfig(shard_size), seed=0)
        t_create = time.perf_counter() - t
        plain = min(plain_loop(run_dir, shard_size) for _ in range(3))
        t = time.perf_counter()
        run_job(run_dir)
        runner = time.perf_counter() - t
        n_shards = len(runs.stage_files(run_dir, "score"))
        runs.write_status(run_dir, "cancelled")  # make it resumable: every shard is skipped
        t = time.perf_counter()
        run_job(run_dir)
        resume = time.perf_counter() - t
        per_shard = (runner - plain) / n_shards * 1000
        print(f"{shard_size:>10} {n_shards:>7} {plain:>8.3f} {runner:>9.3f} "
              f"{runner / plain:>6.2f} {per_shard:>9.2f} {resume:>9.3f}")  # fmt: skip
    print(f"create_run (snapshot {args.n:,} samples to input.parquet): {t_create:.3f} s")

    events = OUT / "events"
    events.mkdir()
    line = {"t": 1.0, "run_id": "x", "event": "progress", "stage": "s", "done": 1, "total": 9}
    (events / runs.PROGRESS).write_text((json.dumps(line) + "\n") * 100_000)
    t = time.perf_counter()
    got, _ = runs.read_events(events)
    print(f"read_events: {len(got):,} events in {time.perf_counter() - t:.3f} s")

    timed = TimedCatalog(catalog.workspace)
    t = time.perf_counter()
    registered = runs.sync_runs(timed)
    total = time.perf_counter() - t
    print(
        f"sync_runs: registered {len(registered)} runs in {total * 1000:.1f} ms; write lock held "
        f"{max(TimedCatalog.held) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
