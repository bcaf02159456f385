"""Benchmark: `thresher search` latency over N x D float16 embeddings (default 1M x 1024).

    .venv/bin/python bench/search.py [--n 1000000] [--dim 1024] [--queries 50] [--threads 2]
                                     [--backend faiss|numpy] [--encoder ViT-B-32]

Writes a throwaway run folder (clustered synthetic unit vectors in 64K-row float16 shards, the
run's input.parquet), opens it with `RunSearcher` (index build timed separately) and times
`--queries` "more like this" searches (top 20) from random rows: the search alone, which is what
the 100 ms target is about. With `--encoder NAME` it also times one text query end to end through
that open_clip model's text tower (random weights: same cost as trained ones).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_run(run_dir: Path, n: int, dim: int, shard: int = 65536, k: int = 50) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((k, dim), dtype=np.float32)
    (run_dir / "embeddings").mkdir(parents=True)
    for i, s in enumerate(range(0, n, shard)):
        m = min(shard, n - s)
        x = centres[rng.integers(k, size=m)] + rng.standard_normal((m, dim), dtype=np.float32) * 1.5
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(run_dir / "embeddings" / f"part-{i:05d}.npy", x.astype(np.float16))
    pq.write_table(
        pa.table(
            {
                "sample_id": pa.array(range(n), pa.int64()),
                "orig_id": pa.array([f"s{i}" for i in range(n)]),
                "question": pa.array(["synthetic"] * n),
            }
        ),
        run_dir / "input.parquet",
    )
    enc = {"encoder": "ViT-B-32", "pretrained": "none"}
    (run_dir / "run.json").write_text(
        json.dumps({"run_id": run_dir.name, "params": {"encode": enc}})
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="faiss")
    ap.add_argument("--encoder", default=None, help="also time a text query through this CLIP")
    ap.add_argument(
        "--approx", action="store_true", help="also the IVF index: build, latency, recall"
    )
    ap.add_argument("--nprobe", type=int, default=16)
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    import numpy as np

    if args.backend == "faiss":
        import faiss

        faiss.omp_set_num_threads(args.threads)
    from selection.search import RunSearcher

    with tempfile.TemporaryDirectory(prefix="thresher-search-") as tmp:
        run_dir = Path(tmp) / "bench-search"
        t0 = time.perf_counter()
        make_run(run_dir, args.n, args.dim)
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        searcher = RunSearcher(run_dir, backend=args.backend)
        t_open = time.perf_counter() - t0
        rows = np.random.default_rng(1).integers(args.n, size=args.queries)
        searcher.search(like=int(rows[0]), top=20)  # warm the page cache / first-touch
        lat = []
        cpu0 = time.process_time()
        for r in rows:
            res = searcher.search(like=int(r), top=20)
            lat.append(res.seconds * 1000)
        # CPU time per query (all threads): what the query costs, whatever else the box runs
        cpu_ms = (time.process_time() - cpu0) * 1000 / len(rows)
        out = {
            "n": args.n,
            "dim": args.dim,
            "backend": searcher.index.backend,
            "threads": args.threads,
            "queries": args.queries,
            "write_s": round(t_make, 1),
            "open_s": round(t_open, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p95_ms": round(float(np.percentile(lat, 95)), 1),
            "max_ms": round(max(lat), 1),
            "cpu_ms_per_query": round(cpu_ms, 1),
        }
        if args.encoder:
            import warnings

            searcher._encoder = None
            searcher.run_dir.joinpath("run.json").write_text(
                json.dumps({"params": {"encode": {"encoder": args.encoder, "pretrained": "none"}}})
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                searcher.encode_text("warm up")
                out["encoder_load_s"] = round(time.perf_counter() - t0, 2)
                try:
                    t0 = time.perf_counter()
                    res = searcher.search("a photo of a dog", top=20, on="image")
                    out["text_query_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                except Exception as exc:  # a width mismatch when --dim is not the encoder's
                    out["text_query_error"] = str(exc)
        if args.approx:
            exact_hits = {
                int(r): set(searcher.search(like=int(r), top=20).hits[i].row for i in range(20))
                for r in rows
            }
            del searcher
            t0 = time.perf_counter()
            approx = RunSearcher(run_dir, backend="faiss", nlist=0, nprobe=args.nprobe)
            out["approx_first_open_s"] = round(time.perf_counter() - t0, 1)  # trains + caches
            del approx
            t0 = time.perf_counter()
            approx = RunSearcher(run_dir, backend="faiss", nlist=0, nprobe=args.nprobe)
            out["approx_open_s"] = round(time.perf_counter() - t0, 1)  # from the cache
            out["approx_backend"] = approx.index.backend
            lat, recall = [], []
            approx.search(like=int(rows[0]), top=20)
            for r in rows:
                res = approx.search(like=int(r), top=20)
                lat.append(res.seconds * 1000)
                recall.append(len({h.row for h in res.hits} & exact_hits[int(r)]) / 20)
            out["approx_p50_ms"] = round(float(np.percentile(lat, 50)), 1)
            out["approx_p95_ms"] = round(float(np.percentile(lat, 95)), 1)
            out["approx_recall_at_20"] = round(float(np.mean(recall)), 3)
        out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
