"""Neighbour searches without faiss: the blocked numpy products find what faiss finds."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from selection.ofa.baselines import typicality
from selection.ofa.neighbours import knn_sq_distances, max_earlier_cosine, pick_backend
from store.errors import ThresherError


def _points(n=300, d=12, seed=4):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_numpy_knn_matches_a_brute_force_search_across_block_edges():
    x = _points()
    got = knn_sq_distances(x, 6, backend="numpy", block=64)  # 300 rows: 5 blocks, last short
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    expect = np.sort(d, axis=1)[:, :6]
    # float32 products summed in another order: equal to rounding, not to the bit.
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)
    assert (got[:, 0] == 0).all()  # each row finds itself first


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss not installed")
def test_numpy_and_faiss_give_the_same_typicality():
    x = _points(n=500)
    labels = np.random.default_rng(1).integers(0, 4, size=len(x))
    a = typicality(x, labels, 4, 10, backend="numpy")
    b = typicality(x, labels, 4, 10, backend="faiss")
    np.testing.assert_allclose(a, b, rtol=1e-4)
    # the same ranking wherever two typicalities differ by more than rounding
    ta, tb = a[labels == 0], b[labels == 0]
    apart = np.abs(ta[:, None] - ta[None, :]) > 1e-3 * np.abs(ta).max()
    assert (np.sign(ta[:, None] - ta[None, :]) == np.sign(tb[:, None] - tb[None, :]))[apart].all()


def test_max_earlier_cosine_blocks_agree_with_one_block():
    x = _points(n=200)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    one = max_earlier_cosine(x, block=1000, backend="numpy")
    many = max_earlier_cosine(x, block=7, backend="numpy")
    np.testing.assert_allclose(one, many, atol=1e-6)
    assert one[0] == -1.0


def test_without_faiss_auto_falls_back_and_faiss_asks_for_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "faiss" else real(n, *a)
    )
    assert pick_backend("auto") in ("numpy", "torch")
    with pytest.raises(ThresherError, match=r"thresher\[faiss\]"):
        pick_backend("faiss")
    from selection.ofa.kmeans import kmeans

    res = kmeans(_points(), 3, iterations=3, seed=0, backend="auto")  # blas, no faiss needed
    assert res.labels.shape == (300,)
    with pytest.raises(ThresherError, match="faiss is not installed"):
        kmeans(_points(), 3, iterations=3, seed=0, backend="faiss")
