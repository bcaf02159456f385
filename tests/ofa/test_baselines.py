"""Baselines on OFA's embeddings: the algorithms on arrays, and each one as a run reusing an OFA run's embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selection.ofa.baselines import global_count, keep_top, semdedup, typicality
from tests.ofa.conftest import result, run


def test_semdedup_drops_the_later_of_each_near_duplicate_pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8)).astype(np.float32)
    x[3] = x[1] + 1e-3  # near-duplicate of row 1
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.zeros(6, np.int64)
    dist = np.arange(6, dtype=np.float32)[::-1].copy()  # row 0 farthest: visited first
    max_sim, kept = semdedup(x, labels, dist, 1, 0.95)
    assert kept.tolist() == [True, True, True, False, True, True]
    assert max_sim[3] > 0.99 and max_sim[0] == -1.0  # the first visited has no earlier member


def test_typicality_is_inverse_mean_neighbour_distance():
    x = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], np.float32)
    t = typicality(x, np.zeros(4, np.int64), 1, 2)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    expect = [1 / np.sort(row)[1:3].mean() for row in d]
    np.testing.assert_allclose(t, expect, rtol=1e-5)
    assert t.argmin() == 3  # the outlier is least typical


def test_keep_top_and_counts():
    score = np.array([0.3, 0.9, 0.1, 0.5], np.float32)
    ok = np.array([True, True, True, False])
    sel, rank = keep_top(score, ok, 2, highest=True)
    assert sel.tolist() == [True, True, False, False] and rank.tolist() == [1, 0, 2, -1]
    assert global_count(100, 0.15, None) == 15 and global_count(3, 0.15, None) == 1
    assert global_count(10, 0.15, 50) == 10


def _baseline(name, from_run, **kw):
    from selection.ofa.config import BaselineConfig
    from tests.ofa.conftest import K, tiny_encode

    return BaselineConfig(name=name, encode=tiny_encode(from_run=from_run), k=K, **kw)


@pytest.mark.parametrize("name", ["random", "clip-score", "typiclust", "semdedup"])
def test_each_baseline_is_a_browsable_run_on_the_same_embeddings(ofa_ws, ofa_run, name):
    ws, catalog = ofa_ws
    ofa = result(ofa_run)
    n_sel = sum(ofa["selected"])
    cfg = _baseline(name, ofa_run.name, budget=n_sel if name != "semdedup" else None)
    run_dir = run(catalog, f"baseline:{name}", "demo", cfg, run_id=f"base-{name}")
    meta = json.loads((run_dir / "run.json").read_text())
    res = result(run_dir)
    score_col = meta["outputs"]["scores"][0]
    assert meta["outputs"]["selections"] == {"default": "selected"} and score_col in res
    for p in sorted((run_dir / "embeddings").glob("*.npy")):  # copied, not re-encoded
        assert np.array_equal(np.load(p), np.load(ofa_run / "embeddings" / p.name))
    assert res["excluded"] == ofa["excluded"]
    assert not any(s and e for s, e in zip(res["selected"], res["excluded"], strict=True))
    scores = np.array([np.nan if v is None else v for v in res[score_col]])
    sel = np.array(res["selected"])
    if name in ("random", "clip-score"):
        assert sel.sum() == n_sel  # same size as the OFA selection
        kept, dropped = scores[sel], scores[~sel & ~np.isnan(scores)]
        if name == "clip-score":
            assert kept.min() >= dropped.max()
    elif name == "typiclust":
        assert sel.sum() == n_sel and meta["outputs"]["groups"][0]["column"] == "cluster"
    else:
        ok = ~np.array(res["excluded"])
        assert np.array_equal(sel[ok], scores[ok] < 0.95)


def test_from_run_refuses_other_input_rows(ofa_ws, ofa_run):
    from store.errors import ThresherError

    ws, catalog = ofa_ws
    with pytest.raises(Exception) as info:
        run(catalog, "baseline:random", "other", _baseline("random", ofa_run.name), run_id="bad")
    assert isinstance(info.value.__cause__, ThresherError) or "input rows differ" in str(info.value)
