"""The OFA algorithm cores on numpy arrays: k-means, core set, quotas, selector training and scoring."""

from __future__ import annotations

import numpy as np
import pytest

from selection.ofa.coreset import core_set
from selection.ofa.kmeans import kmeans, kmeans_plus_plus
from selection.ofa.select import (
    quota_for_budget,
    quota_for_ratio,
    round_half_up,
    select_low_confidence,
)
from store.errors import ThresherError


def _blobs(n=3000, d=16, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    lab = rng.integers(k, size=n)
    x = centres[lab] + rng.normal(size=(n, d))
    return x.astype(np.float32), lab


def test_kmeans_matches_sklearn_lloyd_from_the_same_seeding():
    from sklearn.cluster import KMeans

    x, _ = _blobs()
    ours = kmeans(x, 5, iterations=8, seed=3)
    init = kmeans_plus_plus(x, 5, 3)
    sk = KMeans(5, init=init, n_init=1, max_iter=8, tol=0, algorithm="lloyd").fit(x)
    assert 1 <= ours.iterations <= 8  # well-separated blobs converge early, as scikit-learn does
    assert ours.inertia == pytest.approx(sk.inertia_, rel=1e-4)
    # the same partition (cluster ids may be in any order)
    pairs = set(zip(ours.labels.tolist(), sk.labels_.tolist(), strict=True))
    assert len(pairs) == 5


def test_kmeans_is_seeded_and_reports_each_iteration():
    x = (
        np.random.default_rng(1).normal(size=(3000, 16)).astype(np.float32)
    )  # no structure: no early stop
    seen = []
    a = kmeans(x, 5, iterations=4, seed=7, on_iteration=lambda i, obj: seen.append(i))
    b = kmeans(x, 5, iterations=4, seed=7)
    c = kmeans(x, 5, iterations=4, seed=8)
    assert seen == [1, 2, 3, 4]
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.centroids, c.centroids)
    # labels are the nearest centroid and distances are squared L2 to it
    d = ((x[:, None, :] - a.centroids[None]) ** 2).sum(-1)
    # another formula than k-means' |x|^2 - 2x.c + |c|^2: compare where the nearest centroid
    # wins by more than rounding, and everywhere the chosen one is nearest to within it
    two = np.sort(d, 1)[:, :2]
    clear = two[:, 1] - two[:, 0] > 1e-3
    assert clear.mean() > 0.99
    assert np.array_equal(a.labels[clear], d.argmin(1)[clear])
    np.testing.assert_allclose(d[np.arange(len(x)), a.labels], two[:, 0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.sq_distances, d.min(1), rtol=1e-3, atol=1e-3)


def test_kmeans_plus_plus_refuses_more_clusters_than_points():
    with pytest.raises(ThresherError, match="lower --k"):
        kmeans_plus_plus(np.zeros((3, 4), np.float32), 5, 0)


def test_core_set_is_the_per_cluster_percentile():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 4, size=500)  # -1 = excluded
    dist = rng.random(500).astype(np.float32)
    mask = core_set(labels, dist, 4, 30.0)
    assert not mask[labels == -1].any()
    for c in range(4):
        m = labels == c
        radius = np.percentile(dist[m], 30.0)
        assert np.array_equal(mask[m], dist[m] <= radius)
        assert abs(mask[m].mean() - 0.30) < 0.02


def test_rounding_rule_is_half_up_with_a_floor_of_one():
    assert [round_half_up(v) for v in (0.5, 1.5, 2.5, 2.49)] == [1, 2, 3, 2]
    sizes = np.array([0, 1, 3, 10, 30, 100])
    assert quota_for_ratio(sizes, 0.15).tolist() == [0, 1, 1, 2, 5, 15]  # 1.5 -> 2, 4.5 -> 5
    with pytest.raises(ThresherError):
        quota_for_ratio(sizes, 0.0)


def test_budget_uses_largest_remainder_and_sums_exactly():
    sizes = np.array([50, 30, 20])
    assert quota_for_budget(sizes, 7).tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4 -> seat to 3.5
    for b in (1, 13, 99, 100, 1000):
        q = quota_for_budget(sizes, b)
        assert q.sum() == min(b, 100) and (q <= sizes).all()


def test_selection_keeps_the_lowest_confidence_quota_per_cluster():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=200)
    labels[:5] = -1
    conf = rng.random(200).astype(np.float32)
    sel, rank = select_low_confidence(labels, conf, 3, ratio=0.15)
    assert not sel[:5].any() and (rank[:5] == -1).all()
    for c in range(3):
        m = labels == c
        n_c = int(m.sum())
        assert sel[m].sum() == max(1, round_half_up(0.15 * n_c))
        # every kept sample is less confident than every dropped one of its cluster
        assert conf[m & sel].max() < conf[m & ~sel].min()
        assert sorted(rank[m].tolist()) == list(range(n_c))


def test_selector_trains_exactly_e_epochs_and_is_seeded():
    import torch

    from selection.ofa.selector import confidence, train_selector

    torch.set_num_threads(1)
    x, lab = _blobs(n=600, d=8, k=3)
    core = np.ones(len(x), bool)
    epochs = []
    m1, log = train_selector(
        x, lab, core, 3, hidden=16, epochs=3, lr=1e-2, batch_size=64, seed=5,
        on_epoch=lambda e: epochs.append(e.epoch),
    )  # fmt: skip
    m2, _ = train_selector(x, lab, core, 3, hidden=16, epochs=3, lr=1e-2, batch_size=64, seed=5)
    assert epochs == [1, 2, 3] and [e.epoch for e in log] == [1, 2, 3]
    assert all(e.samples == 600 for e in log)
    c1, c2 = confidence(m1, x), confidence(m2, x)
    assert np.array_equal(c1, c2)
    probs = torch.softmax(m1(torch.from_numpy(x)), 1).max(1).values.detach().numpy()
    np.testing.assert_allclose(c1, probs, rtol=1e-6)
    assert ((c1 >= 1 / 3 - 1e-6) & (c1 <= 1)).all()


def test_kmeans_stops_when_converged():
    x, _ = _blobs(n=400, d=4, k=3, seed=4)
    res = kmeans(x, 3, iterations=200, seed=0)
    assert res.iterations < 200
    again = kmeans(x, 3, iterations=res.iterations + 5, seed=0)
    assert again.iterations == res.iterations and np.array_equal(again.labels, res.labels)
