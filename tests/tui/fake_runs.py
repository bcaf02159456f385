"""Run folders built the way docs/CONTRACTS.md describes them, for TUI tests and the paging benchmark.

A fake OFA-like run (cluster / confidence / distance / core_set / selected) and a CLIPPER-like one
(subset_t1 / subset_t2 / log_ppl and coreset columns), with real Parquet, real PNG images and a
real catalog row per dataset, so the app reads them exactly as it reads a job's output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from store.catalog import Catalog
from store.runs import append_event, write_json_atomic, write_status
from store.workspace import Workspace
from tui.data.sql import arrow, rows

CLIPPER_SUBSETS = ("P", "P_not", "W_c", "W_u", "unprobed")


def add_dataset(catalog: Catalog, name: str = "demo", n: int = 60, dataset_id: int = 1) -> None:
    """A dataset row plus `n` samples with real PNG images (so the detail screen has something to draw)."""
    from PIL import Image

    img_dir = catalog.workspace.root / "data" / name
    img_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = img_dir / f"img{i:04d}.png"
        if i < 8:  # a few images suffice; the rest point at a missing file (flagged)
            Image.new("RGB", (32, 24), ((i * 40) % 256, 90, 200 - i * 20)).save(path)
        sid = dataset_id * 2**32 + i
        q, a = sample_text(i)
        conv = [{"role": "user", "content": f"<image>\n{q}"}, {"role": "assistant", "content": a}]
        records.append(
            (
                sid,
                dataset_id,
                f"s{i}",
                i,
                [str(path)],
                [path.name],
                json.dumps(conv),
                q,
                a,
                1,
                1,
                "vqa",
                [] if i < 8 else ["missing_image"],
            )
        )
    with catalog.transaction() as con:
        rows(
            con,
            "INSERT INTO datasets VALUES (?, ?, 'llava', '/src/demo.json', NULL, "
            "TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', ?, ?, 'fp', NULL)",
            [dataset_id, name, n, max(n - 8, 0)],
        )
        con.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)", records
        )


def sample_text(i: int) -> tuple[str, str]:
    colours = ("red", "green", "blue", "yellow", "purple")
    return f"What colour is object {i}?", colours[i % len(colours)]


def _input_table(catalog: Catalog, dataset_id: int) -> pa.Table:
    with catalog.connect() as con:
        return arrow(
            con,
            "SELECT sample_id, orig_id, images, question, answer, conversation, task, flags "
            "FROM samples WHERE dataset_id = ? ORDER BY sample_id",
            [dataset_id],
        )


def _write_run(
    ws: Workspace,
    run_id: str,
    method: str,
    inp: pa.Table,
    result: pa.Table,
    outputs: dict,
    stages: list[str],
    shard_rows: int = 25,
) -> Path:
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True)
    pq.write_table(inp, run_dir / "input.parquet")
    (run_dir / "result").mkdir()
    for k, start in enumerate(range(0, result.num_rows, shard_rows)):
        pq.write_table(
            result.slice(start, shard_rows), run_dir / "result" / f"part-{k:05d}.parquet"
        )
    write_json_atomic(
        run_dir / "run.json",
        {
            "run_id": run_id,
            "method": method,
            "dataset": "demo",
            "dataset_id": 1,
            "dataset_fingerprint": "fp",
            "created_at": "2026-01-01T00:00:00",
            "seed": 0,
            "params": {},
            "thresher_version": "0.1.0",
            "stages": stages,
            "outputs": outputs,
        },
    )
    write_status(run_dir, "done", pid=None, started_at=0.0, finished_at=1.0)
    for stage in stages:
        append_event(
            run_dir,
            {
                "t": 1.0,
                "run_id": run_id,
                "stage": stage,
                "done": inp.num_rows,
                "total": inp.num_rows,
                "unit": "samples",
                "event": "stage_done",
            },
        )
    return run_dir


def make_ofa_run(
    catalog: Catalog, run_id: str = "ofa-1", dataset_id: int = 1, k: int = 4, n_excluded: int = 0
) -> Path:
    """Clusters i % k; confidence falls with i within a cluster; the 3 least confident per cluster kept.

    The last `n_excluded` samples are left out of clustering the way OFA leaves out flagged ones:
    cluster and confidence NULL, never selected."""
    inp = _input_table(catalog, dataset_id)
    n = inp.num_rows
    idx = np.arange(n)
    cluster = (idx % k).astype(np.int32)
    confidence = np.round(0.99 - (idx // k) * 0.01, 4)
    distance = np.round((idx * 37 % 100) / 100.0, 3)
    rank = idx // k  # 0 = most confident inside each cluster
    n_per = np.bincount(cluster, minlength=k)
    selected = rank >= n_per[cluster] - 3
    core_set = distance < 0.5
    excluded = idx >= n - n_excluded
    selected &= ~excluded
    result = pa.table(
        {
            "sample_id": inp["sample_id"],
            "cluster": pa.array(cluster, mask=excluded),
            "confidence": pa.array(confidence, mask=excluded),
            "distance": pa.array(distance, mask=excluded),
            "core_set": core_set,
            "selected": selected,
        }
    )
    run_dir = _write_run(
        catalog.workspace,
        run_id,
        "ofa",
        inp,
        result,
        {
            "table": "result",
            "groups": [{"column": "cluster", "label": "Cluster"}],
            "scores": ["confidence", "distance"],
            "selections": {"default": "selected"},
            "default_selection": "default",
        },
        ["encode", "kmeans", "selector", "score"],
    )
    emb_dir = run_dir / "embeddings"
    emb_dir.mkdir()
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, 16)).astype(np.float16)
    np.save(emb_dir / "part-00000.npy", emb)
    return run_dir


def make_clipper_run(catalog: Catalog, run_id: str = "clipper-1", dataset_id: int = 1) -> Path:
    """subset per tau from i % 5; coreset columns follow the paper's unions."""
    inp = _input_table(catalog, dataset_id)
    n = inp.num_rows
    idx = np.arange(n)
    s1 = np.array([CLIPPER_SUBSETS[i % 5] for i in idx])
    s2 = np.array([CLIPPER_SUBSETS[(i + (i % 3 == 0)) % 5] for i in idx])
    w = np.isin(s1, ("W_c", "W_u"))
    result = pa.table(
        {
            "sample_id": inp["sample_id"],
            "subset_t1": s1,
            "subset_t2": s2,
            "log_ppl": np.round(1.0 + (idx * 13 % 40) / 10.0, 3),
            "P1+W": (s1 == "P") | w,
            "P1+Wc": (s1 == "P") | (s1 == "W_c"),
            "P1+Wu": (s1 == "P") | (s1 == "W_u"),
            "P2+W": (s2 == "P") | w,
        }
    )
    run_dir = _write_run(
        catalog.workspace,
        run_id,
        "clipper",
        inp,
        result,
        {
            "table": "result",
            "groups": [
                {"column": "subset_t1", "label": "Subset tau=1"},
                {"column": "subset_t2", "label": "Subset tau=2"},
            ],
            "scores": ["log_ppl"],
            "selections": {"default": "P1+W", "P1+Wc": "P1+Wc", "P1+Wu": "P1+Wu", "P2+W": "P2+W"},
            "default_selection": "default",
        },
        ["zero_shot", "probe", "perplexity", "subsets"],
    )
    zs = pa.table(
        {
            "sample_id": inp["sample_id"],
            "response": [f"guess {i}" for i in idx],
            "correct": s1 == "P",
        }
    )
    (run_dir / "zero_shot").mkdir()
    pq.write_table(zs, run_dir / "zero_shot" / "part-00000.parquet")
    ids = inp["sample_id"].to_numpy()
    demos = [ids[i] for i in idx if s1[i] == "P"][:3]
    queries = [ids[i] for i in idx if s1[i] in ("W_c", "W_u")][:6]
    probe = pa.table(
        {
            "demo_id": pa.array([d for d in demos for _ in queries[:2]], pa.int64()),
            "query_id": pa.array([qq for _ in demos for qq in queries[:2]], pa.int64()),
            "correct": pa.array([True, False] * len(demos)),
        }
    )
    (run_dir / "probe").mkdir()
    pq.write_table(probe, run_dir / "probe" / "part-00000.parquet")
    return run_dir


def make_big_run(ws: Workspace, run_id: str, n: int, n_decisions: int = 0) -> Path:
    """An OFA-shaped run with `n` synthetic samples written by DuckDB (fast enough for 1M rows)."""
    run_dir = ws.run_dir(run_id)
    (run_dir / "result").mkdir(parents=True)
    con = duckdb.connect()
    base = 1 << 32
    rows(
        con,
        f"""COPY (SELECT {base} + i AS sample_id, 's' || i AS orig_id,
        ['/nonexistent/' || i || '.png'] AS images,
        'Question number ' || i || ' about picture ' || (i * 7919 % 100003) AS question,
        'answer ' || (i % 97) AS answer, '[]' AS conversation, 'vqa' AS task,
        CAST([] AS VARCHAR[]) AS flags FROM range({n}) t(i))
        TO '{run_dir / "input.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 65536)""",
    )
    rows(
        con,
        f"""COPY (SELECT {base} + i AS sample_id, CAST(i % 20 AS INTEGER) AS cluster,
        ((i * 2654435761) % 1000003) / 1000003.0 AS confidence,
        ((i * 40503) % 1000) / 1000.0 AS distance,
        ((i * 40503) % 1000) < 500 AS core_set,
        ((i * 2654435761) % 1000003) / 1000003.0 < 0.15 AS selected FROM range({n}) t(i))
        TO '{run_dir / "result" / "part-00000.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 65536)""",
    )
    con.close()
    write_json_atomic(
        run_dir / "run.json",
        {
            "run_id": run_id,
            "method": "ofa",
            "dataset": "synthetic",
            "dataset_id": 1,
            "created_at": "2026-01-01T00:00:00",
            "seed": 0,
            "params": {},
            "stages": ["score"],
            "outputs": {
                "table": "result",
                "groups": [{"column": "cluster", "label": "Cluster"}],
                "scores": ["confidence", "distance"],
                "selections": {"default": "selected"},
                "default_selection": "default",
            },
        },
    )
    write_status(run_dir, "done")
    if n_decisions:
        catalog = Catalog.open(ws)
        with catalog.transaction() as con:
            rows(
                con,
                "INSERT INTO decisions SELECT nextval('decision_seq'), ?, ? + (i * 25) % ?, "
                "CASE WHEN i % 2 = 0 THEN 'keep' ELSE 'drop' END, 'sample', 'bench', now(), NULL "
                "FROM range(?) t(i)",
                [run_id, base, n, n_decisions],
            )
    return run_dir


def progress_writer_events(run_id: str, stage: str, total: int) -> list[dict]:
    """What a job appends while it works (used by the monitor test's writer process)."""
    now = time.time()
    return [
        {
            "t": now,
            "run_id": run_id,
            "stage": stage,
            "done": d,
            "total": total,
            "unit": "samples",
            "rate": 10.0,
            "eta_s": (total - d) / 10.0,
            "event": "progress",
        }
        for d in range(0, total + 1, max(total // 4, 1))
    ]
