"""Search by meaning: the exact index (faiss and NumPy against a float64 reference) and
`thresher search` over a real OFA run whose queries go through the run's own tiny CLIP."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from selection.search import FAISS_AVAILABLE, EmbeddingIndex, RunSearcher, encoder_settings
from store.errors import NotFound, ThresherError
from tests.ofa.conftest import TINY_CLIP

BACKENDS = ["numpy", "torch", pytest.param("faiss", marks=pytest.mark.skipif(not FAISS_AVAILABLE, reason="no faiss"))]  # fmt: skip


def _unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_matches_a_float64_reference(backend):
    rng = np.random.default_rng(3)
    shards = [_unit_rows(rng, 700, 48), _unit_rows(rng, 333, 48), _unit_rows(rng, 5, 48)]
    shards[1][[10, 20]] = 0  # two rows never encoded: they must not come back
    full = np.concatenate(shards).astype(np.float64)
    q = rng.standard_normal(48).astype(np.float32)
    ref = full @ q.astype(np.float64)
    ref[[710, 720]] = -np.inf
    index = EmbeddingIndex(shards, backend=backend)
    assert index.n == 1038 and index.backend == backend
    got = index.search(q, 25)
    want = np.argsort(-ref, kind="stable")[:25]
    # float32 accumulation vs float64: the same rows, scores within float32 rounding
    assert set(got.rows.tolist()) == set(want.tolist())
    np.testing.assert_allclose(got.scores, ref[got.rows], rtol=0, atol=1e-4)
    assert np.all(np.diff(got.scores) <= 1e-6)  # best first
    # a query equal to a stored row finds it first; `exclude` removes it
    row = 1030
    assert index.search(index.vector(row), 1).rows[0] == row
    assert row not in index.search(index.vector(row), 10, exclude=row).rows


def test_index_rejects_wrong_width_and_empty_runs(tmp_path):
    index = EmbeddingIndex([np.ones((4, 8), np.float16)], backend="numpy")
    with pytest.raises(ThresherError, match="8-d"):
        index.search(np.ones(6, np.float32), 2)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ThresherError, match="no CLIP embeddings"):
        EmbeddingIndex.open(tmp_path)


def test_text_query_uses_the_runs_encoder(ofa_run):
    cfg = encoder_settings(ofa_run)
    assert cfg.encoder == TINY_CLIP and cfg.pretrained == "none"
    searcher = RunSearcher(ofa_run)
    inp = pq.read_table(ofa_run / "input.parquet").to_pydict()
    stored = np.concatenate(
        [np.load(p) for p in sorted((ofa_run / "embeddings").glob("part-*.npy"))]
    ).astype(np.float32)
    target = next(i for i in range(len(stored)) if np.any(stored[i]))
    question = inp["question"][target]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights
        res = searcher.search(question, top=5, on="text")
    # the same text through the same tower: cosine 1 up to float16 storage
    assert res.hits[0].score == pytest.approx(1.0, abs=5e-3)
    assert res.hits[0].question == question
    # "image" compares with the image half only: score = cosine(text, image) of each hit
    img = searcher.search(question, top=3, on="image")
    half = stored.shape[1] // 2
    t = searcher.encode_text(question)
    cosines = []
    for h in img.hits:
        v = stored[h.row, :half]  # Eq. 2 (the run's default): the half's length varies per row
        cosines.append(float(v @ t) / float(np.linalg.norm(v)))
        assert h.score == pytest.approx(cosines[-1], abs=2e-3)
    assert cosines == sorted(cosines, reverse=True)  # ranked by the cosine itself


def test_more_like_this_by_sample_id_or_source_id(ofa_run):
    searcher = RunSearcher(ofa_run, backend="numpy")
    inp = pq.read_table(ofa_run / "input.parquet", columns=["sample_id", "orig_id"]).to_pydict()
    stored = np.concatenate(
        [np.load(p) for p in sorted((ofa_run / "embeddings").glob("part-*.npy"))]
    ).astype(np.float32)
    row = next(i for i in range(len(stored)) if np.any(stored[i]))
    by_id = searcher.search(like=inp["sample_id"][row], top=4)
    by_orig = searcher.search(like=inp["orig_id"][row], top=4)
    assert [h.sample_id for h in by_id.hits] == [h.sample_id for h in by_orig.hits]
    assert inp["sample_id"][row] not in [h.sample_id for h in by_id.hits]
    for h in by_id.hits:
        assert h.score == pytest.approx(float(stored[h.row] @ stored[row]), abs=1e-3)
    with pytest.raises(NotFound, match="not in run"):
        searcher.search(like="no-such-sample")
    with pytest.raises(ThresherError, match="one of them"):
        searcher.search("x", like=1)


def test_search_cli_json_and_table(ofa_ws, ofa_run):
    from tui.cli import cli

    ws, _ = ofa_ws
    inp = pq.read_table(ofa_run / "input.parquet", columns=["question"]).to_pydict()
    args = ["--workspace", str(ws.root), "search", "--run", ofa_run.name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = CliRunner().invoke(cli, [*args, inp["question"][0], "--top", "3", "--json"])
        assert out.exit_code == 0, out.output
        data = json.loads(out.output)
        assert data["run_id"] == ofa_run.name and len(data["hits"]) == 3
        assert [h["rank"] for h in data["hits"]] == [1, 2, 3]
        table = CliRunner().invoke(cli, [*args, "--like", str(data["hits"][0]["sample_id"])])
        assert table.exit_code == 0, table.output
        assert f"like:{data['hits'][0]['sample_id']}" in table.output


def _clustered(rng, n, d, k):
    centres = rng.standard_normal((k, d)).astype(np.float32) * 3
    x = centres[rng.integers(k, size=n)] + rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


@pytest.mark.skipif(not FAISS_AVAILABLE, reason="no faiss")
def test_approx_lists_hold_the_same_rows_and_are_cached(tmp_path):
    from selection.search.ivf import load_or_train

    rng = np.random.default_rng(5)
    (tmp_path / "embeddings").mkdir()
    for i, m in enumerate((1500, 900)):
        np.save(tmp_path / "embeddings" / f"part-{i:05d}.npy", _clustered(rng, m, 32, 12))
    files = sorted((tmp_path / "embeddings").glob("*.npy"))
    shards = [np.load(f, mmap_mode="r") for f in files]
    exact = EmbeddingIndex(shards, backend="faiss")
    lists = load_or_train(tmp_path, files, shards, 16)
    assert lists.assign.shape == (2400,) and lists.centroids.shape == (16, 32)
    # every list scanned: the approximate index is the exact one, row for row
    full = EmbeddingIndex(shards, backend="faiss", lists=lists, nprobe=16)
    queries = [exact.vector(r) for r in rng.integers(2400, size=20)]
    for q in queries:
        assert full.search(q, 10).rows.tolist() == exact.search(q, 10).rows.tolist()
    # a quarter of the lists: most true neighbours still found on clustered data
    part = EmbeddingIndex(shards, backend="faiss", lists=lists, nprobe=4)
    hits = [len(set(part.search(q, 10).rows) & set(exact.search(q, 10).rows)) for q in queries]
    assert np.mean(hits) / 10 >= 0.8, hits
    # cached: the same lists come back without training; a changed shard retrains
    again = load_or_train(tmp_path, files, shards, 16)
    assert np.array_equal(again.assign, lists.assign)
    cache = tmp_path / "search" / "ivf-16.npz"
    before = cache.stat().st_mtime_ns
    np.save(files[1], np.asarray(shards[1])[::-1].copy())
    shards = [np.load(f, mmap_mode="r") for f in files]
    load_or_train(tmp_path, files, shards, 16)
    assert cache.stat().st_mtime_ns != before


@pytest.mark.skipif(not FAISS_AVAILABLE, reason="no faiss")
def test_search_cli_approx(ofa_ws, ofa_run):
    from tui.cli import cli

    ws, _ = ofa_ws
    args = ["--workspace", str(ws.root), "search", "--run", ofa_run.name, "--json"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = CliRunner().invoke(cli, [*args, "--like", "0", "--top", "5"])
    # sample_id 0 does not exist: a clear error, not a traceback
    assert first.exit_code != 0 and "not in run" in str(first.exception)
    inp = pq.read_table(ofa_run / "input.parquet", columns=["sample_id"]).to_pydict()
    sid = str(inp["sample_id"][5])
    exact = json.loads(CliRunner().invoke(cli, [*args, "--like", sid, "--top", "5"]).output)
    out = CliRunner().invoke(
        cli, [*args, "--like", sid, "--top", "5", "--approx", "--nlist", "4", "--nprobe", "4"]
    )
    approx = json.loads(out.output)
    assert approx["backend"].startswith("faiss-ivf (nlist 4, nprobe 4)")
    assert [h["sample_id"] for h in approx["hits"]] == [h["sample_id"] for h in exact["hits"]]
    assert (ofa_run / "search" / "ivf-4.npz").exists()


def test_search_cli_prints_ids_and_tags_the_hits(ofa_ws, ofa_run):
    from store import tags
    from tui.cli import cli

    ws, catalog = ofa_ws
    inp = pq.read_table(ofa_run / "input.parquet", columns=["sample_id", "orig_id"]).to_pydict()
    sid = str(inp["sample_id"][7])
    args = ["--workspace", str(ws.root), "search", "--run", ofa_run.name, "--like", sid, "-n", "4"]
    out = CliRunner().invoke(cli, [*args, "--ids", "--tag", "near-7"])
    assert out.exit_code == 0, out.output
    ids = [line for line in out.stdout.splitlines() if line]
    assert len(ids) == 4 and set(ids) <= set(inp["orig_id"])
    with catalog.connect() as con:
        tagged = tags.tagged_samples(con, "near-7").column("orig_id").to_pylist()
    assert sorted(tagged) == sorted(ids)
