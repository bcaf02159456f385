"""The CPU Lloyd backend: the same steps as scikit-learn and faiss, whatever the thread count."""

from __future__ import annotations

import numpy as np
import pytest

from selection.ofa import lloyd as lloyd_mod
from selection.ofa.kmeans import kmeans, kmeans_plus_plus
from selection.ofa.lloyd import block_rows, lloyd
from store.errors import ThresherError


def _noise(n=3000, d=16, seed=1):
    # No structure: labels keep moving for many steps, so the incremental sums get exercised.
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_each_step_matches_scikit_learn_from_the_same_centroids():
    from sklearn.cluster import KMeans

    x = _noise()
    c0 = kmeans_plus_plus(x, 5, 0)
    for steps in (1, 2, 5, 8):
        ours = lloyd(x, c0, steps, threads=1)
        sk = KMeans(5, init=c0, n_init=1, max_iter=steps, tol=0, algorithm="lloyd").fit(x)
        assert ours.iterations == sk.n_iter_ == steps
        np.testing.assert_allclose(ours.centroids, sk.cluster_centers_, atol=1e-5)
        assert np.array_equal(ours.labels, sk.labels_)
        assert ours.sq_distances.sum() == pytest.approx(sk.inertia_, rel=1e-5)


def test_blas_and_faiss_backends_agree():
    x = _noise()
    a = kmeans(x, 5, iterations=6, seed=0, backend="blas")
    b = kmeans(x, 5, iterations=6, seed=0, backend="faiss")
    assert a.iterations == b.iterations == 6
    np.testing.assert_allclose(a.centroids, b.centroids, atol=1e-5)
    assert np.array_equal(a.labels, b.labels)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-5)


def test_the_result_does_not_depend_on_the_thread_count(monkeypatch):
    # Bit-identical by construction (lloyd.py's docstring): fixed blocks, chunk-ordered sums,
    # one BLAS thread per call. Checked with numpy's BLAS pool at 1 and 2 threads around each
    # run, which is what differed on OpenBLAS's Haswell/Zen kernels before.
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(lloyd_mod, "_CHUNK_BLOCKS", 2)  # many chunks on a small matrix
    x = _noise(n=3000, d=512)
    assert len(x) > 10 * 2 * block_rows(20, 512)  # more than 10 chunks
    runs = []
    for blas, threads in ((2, 1), (1, 3), (2, 2)):
        with threadpool_limits(blas, user_api="blas"):
            runs.append(kmeans(x, 20, iterations=10, seed=0, backend="blas", threads=threads))
    first = runs[0]
    for other in runs[1:]:
        assert np.array_equal(first.centroids, other.centroids)
        assert np.array_equal(first.labels, other.labels)
        assert np.array_equal(first.sq_distances, other.sq_distances)


def test_incremental_sums_equal_a_recount_of_the_final_partition():
    x = _noise()
    c0 = kmeans_plus_plus(x, 5, 2)
    res = lloyd(x, c0, 500, threads=1)  # runs to convergence through many small updates
    assert res.iterations < 500
    for j in range(5):
        mean = x[res.labels == j].astype(np.float64).mean(0)
        np.testing.assert_allclose(res.centroids[j], mean, atol=1e-5)
    d = ((x[:, None, :] - res.centroids[None]) ** 2).sum(-1)
    assert np.array_equal(res.labels, d.argmin(1))
    np.testing.assert_allclose(res.sq_distances, d.min(1), rtol=1e-4, atol=1e-4)


def test_an_emptied_cluster_restarts_at_the_farthest_row():
    x = _noise(n=400, d=4)
    c0 = kmeans_plus_plus(x, 4, 0)
    c0[3] = c0[2]  # a duplicate centre never wins a row: cluster 3 starts empty
    c0_sq = ((x[:, None, :] - c0[None, :3]) ** 2).sum(-1).min(1)
    res = lloyd(x, c0, 1, threads=1)
    far = int(np.argmax(c0_sq))
    np.testing.assert_array_equal(res.centroids[3], x[far])
    assert np.bincount(res.labels, minlength=4).min() >= 1


def test_spherical_centroids_have_unit_norm():
    x = _noise()
    res = kmeans(x, 5, iterations=3, seed=0, spherical=True, backend="blas")
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, rtol=1e-5)


def test_a_nan_row_is_named_and_nothing_runs():
    x = _noise()
    x[1234, 3] = np.nan
    with pytest.raises(ThresherError, match="row 1234 contains NaN"):
        kmeans(x, 5, iterations=3, seed=0)


def test_unknown_backend_is_refused():
    with pytest.raises(ThresherError, match="backend must be one of"):
        kmeans(_noise(), 5, backend="cuda")


def test_assign_takes_float16_chunk_by_chunk_and_names_a_bad_row(monkeypatch):
    from selection.ofa.kmeans import assign

    monkeypatch.setattr(lloyd_mod, "_CHUNK_BLOCKS", 1)  # every block its own chunk
    x16 = _noise(n=3000, d=512).astype(np.float16)
    c = kmeans_plus_plus(x16.astype(np.float32), 20, 0)
    lab16, sq16 = assign(x16, c, backend="blas", threads=2)
    lab32, sq32 = assign(x16.astype(np.float32), c, backend="faiss")
    assert np.array_equal(lab16, lab32)
    np.testing.assert_allclose(sq16, sq32, rtol=1e-4, atol=2e-3)  # |x|^2 ~ 512: expansion error
    x16[2999, 0] = np.inf
    with pytest.raises(ThresherError, match="row 2999 contains NaN/inf"):
        assign(x16, c, backend="blas")
