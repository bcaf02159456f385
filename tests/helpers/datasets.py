"""Datasets and finished-run folders for tests: the real demo (cached per session) and fast synthetic rows.

`make_demo_dataset` is what most tests want: a real ingested demo dataset whose images are drawn
once per (n, seed, mix) per pytest session and shared by every test that asks for the same one.
"""

from __future__ import annotations

import fcntl
import json
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from store.demo import DEMO_VERSION, build_demo


def _session_root(near: Path | None) -> Path:
    """pytest's base temp folder of this session (found above a test's tmp_path), else the OS temp."""
    if near is not None:
        for parent in near.resolve().parents:
            if parent.parent.name.startswith("pytest-of-"):
                return parent
    return Path(tempfile.gettempdir())


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(
            fh, fcntl.LOCK_EX
        )  # two builders of the same cache would tear each other's PNGs
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def demo_files(
    n: int = 200, seed: int = 0, mix: dict[str, float] | None = None, near: Path | None = None
) -> Path:
    """Path of a demo.json for (n, seed, mix), built once per session and reused."""
    tag = "" if mix is None else "-" + "-".join(f"{k}{v:g}" for k, v in sorted(mix.items()))
    folder = _session_root(near) / "thresher-demo-cache" / f"v{DEMO_VERSION}-n{n}-s{seed}{tag}"
    with _locked(folder.with_suffix(".lock")):
        return build_demo(folder, n=n, seed=seed, mix=mix)


def make_demo_dataset(
    catalog: Any,
    n: int = 200,
    seed: int = 0,
    name: str = "demo",
    mix: dict[str, float] | None = None,
) -> str:
    """Ingest the (cached) demo dataset into `catalog` under `name`; returns the name."""
    from store.ingest import ingest

    path = demo_files(n, seed, mix, near=catalog.workspace.root)
    ingest(catalog, path, name=name, fmt="llava")
    return name


def insert_synthetic_samples(
    catalog: Any, name: str, n: int, *, image_dir: str = "/nonexistent/images", flag_every: int = 0
) -> int:
    """Insert `n` synthetic samples straight into the catalog with SQL (no ingest, no images on disk).

    For tests and benchmarks that need many rows fast. Every 7th sample is text-only, every 11th
    has two images; with `flag_every`, every such sample is flagged `missing_image`.
    Returns the dataset id.
    """
    now = datetime.now().replace(microsecond=0)
    with catalog.transaction() as con:
        dataset_id = con.execute("SELECT nextval('dataset_ids')").fetchone()[0]
        con.execute(
            "INSERT INTO datasets VALUES (?, ?, 'llava', ?, ?, ?, ?, ?, 0, ?, NULL)",
            [dataset_id, name, f"/synthetic/{name}.json", image_dir, now, now, n, f"synthetic-{n}"],
        )
        flag = f"(i % {flag_every} = 0)" if flag_every else "false"
        con.execute(
            f"""
            INSERT INTO samples
            SELECT ? * 4294967296 + i, ?, 's' || i, i,
                   CASE WHEN i % 7 = 0 THEN []::VARCHAR[]
                        WHEN i % 11 = 0 THEN [? || '/' || i || '-a.jpg', ? || '/' || i || '-b.jpg']
                        ELSE [? || '/' || (i // 1000) || '/' || i || '.jpg'] END AS images,
                   list_transform(images, lambda p: replace(p, ? || '/', '')),
                   CASE WHEN i % 7 = 0 THEN
                     '[{{"role":"user","content":"What is ' || i || ' plus 1?"}},'
                     || '{{"role":"assistant","content":"' || (i + 1) || '"}}]'
                   WHEN i % 11 = 0 THEN
                     '[{{"role":"user","content":"<image>\\n<image>\\nCompare image ' || i || '."}},'
                     || '{{"role":"assistant","content":"first"}}]'
                   ELSE
                     '[{{"role":"user","content":"<image>\\nWhat is in picture ' || i || '?"}},'
                     || '{{"role":"assistant","content":"A \\"thing\\" number ' || i || '"}}]' END,
                   'question ' || i, 'answer ' || i,
                   len(images), 1, 'synthetic',
                   CASE WHEN {flag} AND len(images) > 0 THEN ['missing_image'] ELSE []::VARCHAR[] END,
                   NULL
            FROM range(?) t(i)
            """,
            [dataset_id, dataset_id, image_dir, image_dir, image_dir, image_dir, n],
        )
        con.execute(
            "UPDATE datasets SET n_flagged = (SELECT count(*) FROM samples WHERE dataset_id = ? "
            "AND len(flags) > 0) WHERE dataset_id = ?",
            [dataset_id, dataset_id],
        )
    return dataset_id


DEFAULT_OUTPUTS = {
    "table": "result",
    "groups": [{"column": "cluster", "label": "Cluster"}],
    "scores": ["confidence"],
    "selections": {"default": "selected", "wide": "wide"},
    "default_selection": "default",
}


def write_run(
    catalog: Any,
    run_id: str,
    dataset: str,
    result: pa.Table,
    *,
    outputs: dict[str, Any] | None = None,
    method: str = "ofa",
    params: dict[str, Any] | None = None,
    shards: int = 2,
    register: bool = True,
) -> Path:
    """A finished run folder (run.json + result shards, per docs/CONTRACTS.md) over `dataset`.

    `result` must start with `sample_id`; it is split into `shards` files in order.
    """
    with catalog.connect() as con:
        dataset_id, fingerprint = con.execute(
            "SELECT dataset_id, fingerprint FROM datasets WHERE name = ?", [dataset]
        ).fetchone()
    run_dir = catalog.workspace.run_dir(run_id)
    (run_dir / "result").mkdir(parents=True, exist_ok=True)
    params = params or {"k": 3, "r": 0.15}
    meta = {
        "run_id": run_id,
        "method": method,
        "dataset": dataset,
        "dataset_id": dataset_id,
        "dataset_fingerprint": fingerprint,
        "created_at": datetime.now().isoformat(timespec="seconds"),
        "seed": 0,
        "params": params,
        "thresher_version": "test",
        "stages": ["result"],
        "outputs": DEFAULT_OUTPUTS if outputs is None else outputs,
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))
    step = -(-result.num_rows // shards)
    for i in range(shards):
        pq.write_table(result.slice(i * step, step), run_dir / "result" / f"part-{i:05d}.parquet")
    if register:
        with catalog.transaction() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, now(), 'done', ?, ?, NULL)",
                [run_id, method, dataset_id, str(run_dir), json.dumps(params)],
            )
    return run_dir


def sample_ids(catalog: Any, dataset: str) -> list[int]:
    with catalog.connect() as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM samples JOIN datasets USING (dataset_id) WHERE name = ? "
                "ORDER BY sample_id",
                [dataset],
            ).fetchall()
        ]


def llamafactory_sharegpt(file_name: str) -> dict[str, Any]:
    """A `dataset_info.json` entry as LLaMA-Factory's data/README.md shows it for multimodal
    ShareGPT (OpenAI-style role/content tags), written by hand: the shape users write, not ours."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }


def ofa_result(ids: list[int], *, clusters: int, selected: Callable[[int], bool]) -> pa.Table:
    """An OFA-shaped result over `ids`: row i in cluster i % clusters, kept when selected(i)."""
    return pa.table(
        {
            "sample_id": ids,
            "cluster": [i % clusters for i in range(len(ids))],
            "selected": [selected(i) for i in range(len(ids))],
            "wide": [True] * len(ids),
        }
    )
