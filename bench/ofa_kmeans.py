"""Benchmark: our k-means (seeded k-means++ + faiss Lloyd) against scikit-learn's
KMeans(init="k-means++", algorithm="lloyd"), same data, same k, same iteration count, side by side.

    .venv/bin/python bench/ofa_kmeans.py [--n 200000] [--dim 1024] [--k 20] [--iters 20]

scikit-learn gets tol=0 and max_iter=iters, yet still stops when no label changes; the data are
unstructured so neither side converges early, and the JSON reports the steps each side ran
(plus time per Lloyd step). Each total includes its own k-means++ seeding. Times are process
CPU seconds (one thread each side): the 2-core box is shared, and wall time mostly measures
the neighbours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THREADS = 1  # 2 cores shared by 8 people: one thread each side keeps the comparison fair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()

    import faiss
    import numpy as np
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from selection.ofa.kmeans import kmeans, kmeans_plus_plus

    faiss.omp_set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    # Unstructured (Gaussian) data: labels keep moving, so scikit-learn's "no label changed"
    # stop does not end its run before `iters` steps.
    x = rng.normal(size=(args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    with threadpool_limits(THREADS):
        t = time.process_time()
        ours = kmeans(x, args.k, iterations=args.iters, seed=0)
        t_ours = time.process_time() - t
        t = time.process_time()
        sk = KMeans(
            args.k, init="k-means++", n_init=1, max_iter=args.iters, tol=0.0,
            algorithm="lloyd", random_state=0,
        ).fit(x)  # fmt: skip
        t_sk = time.process_time() - t
        t = time.process_time()
        kmeans_plus_plus(x, args.k, 0)
        seed_ours = time.process_time() - t
        t = time.process_time()
        KMeans(args.k, init="k-means++", n_init=1, max_iter=1, tol=0.0, random_state=0).fit(x)
        one_sk = (
            time.process_time() - t
        )  # seeding + one step: sklearn's per-step cost by difference
    print(json.dumps({
        "n": args.n, "dim": args.dim, "k": args.k, "iterations": args.iters, "threads": THREADS,
        "ours_s": round(t_ours, 2), "sklearn_s": round(t_sk, 2), "sklearn_iterations": int(sk.n_iter_),
        "speedup": round(t_sk / t_ours, 2),
        "ours_s_per_step": round((t_ours - seed_ours) / max(ours.iterations, 1), 3),
        "sklearn_s_per_step": round((t_sk - one_sk) / max(int(sk.n_iter_) - 1, 1), 3),
        "ours_inertia": round(ours.inertia, 2), "sklearn_inertia": round(float(sk.inertia_), 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
