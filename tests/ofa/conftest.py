"""Shared OFA fixtures: two small demo datasets in one on-disk catalog and a tiny offline CLIP config."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CLIP = str(Path(__file__).with_name("thresher-tiny-clip.json"))


def tiny_encode(**kw):
    from selection.ofa.config import EncodeConfig

    return EncodeConfig(
        encoder=TINY_CLIP, pretrained="none", batch_size=32, shard_size=64, workers=2, **kw
    )


@pytest.fixture(scope="module")
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
