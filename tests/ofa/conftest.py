"""Shared OFA fixtures: two small demo datasets in one on-disk catalog and a tiny offline CLIP config."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

TINY_CLIP = str(Path(__file__).with_name("thresher-tiny-clip.json"))


def tiny_encode(**kw):
    from selection.ofa.config import EncodeConfig

    return EncodeConfig(
        encoder=TINY_CLIP, pretrained="none", batch_size=32, shard_size=64, workers=2, **kw
    )


@pytest.fixture(scope="package")
def ofa_ws(tmp_path_factory):
    """A workspace with `demo` (160 samples, seed 0) and `other` (90 samples, seed 1)."""
    import torch

    from store.catalog import Catalog
    from store.demo import build_demo
    from store.ingest import ingest
    from store.workspace import Workspace

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("ofa")
    ws = Workspace(root / "ws").ensure()
    catalog = Catalog.open(ws)
    ingest(catalog, build_demo(root / "demo", n=160, seed=0), name="demo")
    ingest(catalog, build_demo(root / "other", n=90, seed=1), name="other")
    return ws, catalog


K, RATIO, EPOCHS = 4, 0.15, 3


def config(**kw):
    from selection.ofa.config import OFAConfig

    base = dict(encode=tiny_encode(), k=K, epochs=EPOCHS, ratio=RATIO, lr=1e-2, hidden=32)
    base.update(kw)
    return OFAConfig(**base)


def run(catalog, method, dataset, cfg, run_id=None, seed=0):
    """Create and run a run in this process through the real job runner."""
    import selection.ofa.baselines  # noqa: F401  (registers baseline:*)
    import selection.ofa.stages  # noqa: F401  (registers ofa, ofa-apply)
    from selection.jobs import create_run, run_job

    run_dir = create_run(catalog, method, dataset, cfg, seed=seed, run_id=run_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning is expected here
        assert run_job(run_dir, handle_signals=False) == "done"
    return run_dir


def result(run_dir):
    import pyarrow.parquet as pq

    return pq.read_table(run_dir / "result").to_pydict()


@pytest.fixture(scope="package")
def ofa_run(ofa_ws):
    ws, catalog = ofa_ws
    return run(catalog, "ofa", "demo", config(), run_id="ofa-main")
