"""Benchmark: OFA selection (k-means + core set + selector training + scoring + selection) on
665K synthetic 1024-d embeddings, through the real stages and job runner; wall time and peak RSS.

    .venv/bin/python bench/ofa_select.py [--n 665000] [--dim 1024] [--k 20]

The embeddings are written as float16 shards in a throwaway run folder by a separate process, so
the measured process's peak RSS is the selection's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS = 1  # 2 cores shared by 8 people: one thread measures steadier than two
sys.path.insert(0, str(ROOT))


def make_run(run_dir: Path, n: int, dim: int, k: int, shard: int = 4096) -> None:
    """input.parquet, run.json and float16 embedding shards of a clustered synthetic pool."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from selection.ofa.config import OFAConfig
    from store import runs

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(k, dim)).astype(np.float32)
    (run_dir / "embeddings").mkdir(parents=True)
    for i, s in enumerate(range(0, n, shard)):
        m = min(shard, n - s)
        x = centres[rng.integers(k, size=m)] + rng.normal(scale=1.5, size=(m, dim)).astype(
            np.float32
        )
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(run_dir / "embeddings" / f"part-{i:05d}.npy", x.astype(np.float16))
    pq.write_table(
        pa.table(
            {
                "sample_id": pa.array(range(n), pa.int64()),
                "images": pa.array([["synthetic.png"]] * n, pa.list_(pa.string())),
                "question": pa.array([""] * n, pa.string()),
                "flags": pa.array([[]] * n, pa.list_(pa.string())),
            }
        ),
        run_dir / runs.INPUT,
    )
    cfg = OFAConfig(k=k)
    meta = {
        "run_id": run_dir.name,
        "method": "ofa",
        "dataset": "synthetic",
        "seed": 0,
        "params": cfg.to_dict(),
        "stages": ["embeddings", "kmeans", "selector", "result"],
        "build_stages": "selection.ofa.stages:build_ofa_stages",
        "config_cls": "selection.ofa.config:OFAConfig",
    }
    runs.write_json_atomic(run_dir / runs.RUN_JSON, meta)
    runs.write_status(run_dir, "queued")


def select(run_dir: Path) -> None:
    """The measured part: runs the remaining stages (embeddings exist, so encoding is skipped)."""
    import faiss
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from selection.jobs import run_job

    torch.set_num_threads(THREADS)
    faiss.omp_set_num_threads(THREADS)
    threadpool_limits(THREADS)  # numpy's BLAS, which the CPU k-means sizes its workers by

    stage_t: dict[str, float] = {}

    stage_cpu: dict[str, float] = {}

    def on_event(e):
        if e["event"] in ("stage_start", "stage_done"):
            stage_t[f"{e['stage']}:{e['event']}"] = time.perf_counter()
            stage_cpu[f"{e['stage']}:{e['event']}"] = time.process_time()

    t0, c0 = time.perf_counter(), time.process_time()
    status = run_job(run_dir, on_event=on_event, handle_signals=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    per_stage = {
        s: round(stage_t[f"{s}:stage_done"] - stage_t[f"{s}:stage_start"], 2)
        for s in ("kmeans", "selector", "result")
    }
    per_stage_cpu = {
        s: round(stage_cpu[f"{s}:stage_done"] - stage_cpu[f"{s}:stage_start"], 2)
        for s in ("kmeans", "selector", "result")
    }
    n = sum(len(np.load(p, mmap_mode="r")) for p in (run_dir / "embeddings").glob("*.npy"))
    dim = np.load(run_dir / "embeddings" / "part-00000.npy", mmap_mode="r").shape[1]
    print(json.dumps({"status": status, "threads": THREADS, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "stages_wall_s": per_stage, "stages_cpu_s": per_stage_cpu,
                      "peak_rss_gb": round(rss / 1e9, 2), "matrix_f32_gb": round(n * dim * 4 / 1e9, 2),
                      "matrix_f16_gb": round(n * dim * 2 / 1e9, 2)}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=665_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--_select", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._select:
        select(Path(args._select))
        return
    tmp = Path(tempfile.mkdtemp(prefix="ofa-bench-"))
    try:
        run_dir = tmp / "bench-run"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                        f"from bench.ofa_select import make_run; from pathlib import Path; "
                        f"make_run(Path({str(run_dir)!r}), {args.n}, {args.dim}, {args.k})"],
                       check=True)  # fmt: skip
        print(f"synthetic data written in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--_select", str(run_dir)], check=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
