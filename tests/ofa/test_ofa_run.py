"""OFA end to end on the demo data with a random-weight tiny CLIP on CPU, through the real job runner."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.ofa.conftest import EPOCHS, RATIO, K
from tests.ofa.conftest import config as _config
from tests.ofa.conftest import result as _result
from tests.ofa.conftest import run as _run


def test_result_has_the_contract_columns_and_outputs(ofa_run):
    meta = json.loads((ofa_run / "run.json").read_text())
    assert meta["method"] == "ofa"
    assert meta["outputs"]["groups"] == [{"column": "cluster", "label": "Cluster"}]
    assert meta["outputs"]["scores"] == ["confidence", "distance"]
    assert meta["outputs"]["selections"] == {"default": "selected"}
    res = _result(ofa_run)
    cols = ["sample_id", "cluster", "distance", "in_core", "confidence", "rank_in_cluster"]
    assert list(res)[:6] == cols and {"selected", "excluded"} <= set(res)
    inp = pq.read_table(ofa_run / "input.parquet").to_pydict()
    assert res["sample_id"] == inp["sample_id"]
    emb = np.concatenate([np.load(p) for p in sorted((ofa_run / "embeddings").glob("*.npy"))])
    assert emb.dtype == np.float16 and emb.shape == (160, 64)
    assert len(list((ofa_run / "embeddings").glob("part-*.npy"))) == 3  # 64-row shards
    # text-only demo samples have no image: excluded, reported, never selected
    no_image = [i for i, imgs in enumerate(inp["images"]) if not imgs]
    assert no_image and all(res["excluded"][i] for i in no_image)
    assert all(res["exclude_reason"][i] == "no_image" for i in no_image)
    assert not any(res["selected"][i] or res["cluster"][i] is not None for i in no_image)
    norms = np.linalg.norm(emb.astype(np.float32), axis=1)
    kept = ~np.array(res["excluded"])
    np.testing.assert_allclose(norms[kept], 1.0, atol=2e-3)
    assert (norms[~kept] == 0).all()


def test_kept_per_cluster_is_half_up_rounding_of_r_times_n(ofa_run):
    res = _result(ofa_run)
    cl, sel, conf = res["cluster"], res["selected"], res["confidence"]
    for c in range(K):
        rows = [i for i in range(len(cl)) if cl[i] == c]
        n_c = len(rows)
        assert n_c > 0
        assert sum(sel[i] for i in rows) == max(1, int(np.floor(RATIO * n_c + 0.5)))
        kept = [conf[i] for i in rows if sel[i]]
        dropped = [conf[i] for i in rows if not sel[i]]
        assert max(kept) <= min(dropped)  # the least confident are kept
        assert sorted(res["rank_in_cluster"][i] for i in rows) == list(range(n_c))


def test_core_set_is_the_rho_percentile_of_each_cluster(ofa_run):
    res = _result(ofa_run)
    meta = json.loads((ofa_run / "selector" / "selector.json").read_text())
    assert meta["rho"] == 50.0
    dist = np.array([np.nan if d is None else d for d in res["distance"]])
    cl = np.array([-1 if c is None else c for c in res["cluster"]])
    core = np.array(res["in_core"])
    for c in range(K):
        m = cl == c
        radius = np.percentile(dist[m], 50.0)
        assert meta["radii"][c] == pytest.approx(radius, rel=1e-6)
        assert np.array_equal(core[m], dist[m] <= radius)
    assert meta["n_train"] == int(core.sum())


def test_selector_trains_exactly_e_epochs(ofa_run):
    log = pq.read_table(ofa_run / "selector" / "part-00000.parquet").to_pydict()
    assert log["epoch"] == [1, 2, 3]
    events = [json.loads(line) for line in (ofa_run / "progress.jsonl").read_text().splitlines()]
    done = [e for e in events if e.get("stage") == "selector" and e["event"] == "stage_done"]
    assert done[-1]["done"] == EPOCHS and done[-1]["unit"] == "epochs"
    meta = json.loads((ofa_run / "selector" / "selector.json").read_text())
    assert meta["epochs"] == EPOCHS and len(meta["train_loss"]) == EPOCHS


def test_confidence_is_max_softmax_of_the_saved_selector(ofa_run):
    import torch
    from safetensors.torch import load_file

    meta = json.loads((ofa_run / "selector" / "selector.json").read_text())
    for key in ("encoder", "pretrained", "dim", "k", "centroids", "rho", "epochs", "lr", "hidden",
                "seed", "training_set"):  # fmt: skip
        assert key in meta
    w = load_file(str(ofa_run / "selector" / "selector.safetensors"))
    emb = np.concatenate([np.load(p) for p in sorted((ofa_run / "embeddings").glob("*.npy"))])
    x = torch.from_numpy(emb.astype(np.float32))
    h = torch.relu(x @ w["0.weight"].T + w["0.bias"])
    probs = torch.softmax(h @ w["2.weight"].T + w["2.bias"], dim=1).max(1).values.numpy()
    res = _result(ofa_run)
    for i, c in enumerate(res["confidence"]):
        if c is not None:
            assert c == pytest.approx(float(probs[i]), abs=1e-6)
    np.testing.assert_allclose(w["centroids"].numpy(), np.array(meta["centroids"]), rtol=1e-6)


def test_same_seed_same_selection_other_seed_differs(ofa_ws, ofa_run):
    ws, catalog = ofa_ws
    again = _run(catalog, "ofa", "demo", _config(), run_id="ofa-again")
    assert _result(again) == _result(ofa_run)
    other = _run(catalog, "ofa", "demo", _config(), run_id="ofa-seed1", seed=1)
    assert _result(other)["selected"] != _result(ofa_run)["selected"]


def _apply_config(selector_dir, **kw):
    from selection.ofa.apply import apply_config

    return apply_config(selector_dir, ratio=RATIO, batch_size=32, shard_size=64, **kw)


def test_apply_on_the_training_dataset_reproduces_the_selection(ofa_ws, ofa_run):
    ws, catalog = ofa_ws
    sel_dir = ofa_run / "selector"
    before = hashlib.sha256((sel_dir / "selector.safetensors").read_bytes()).hexdigest()
    applied = _run(catalog, "ofa-apply", "demo", _apply_config(sel_dir), run_id="apply-same")
    a, b = _result(applied), _result(ofa_run)
    for col in ("sample_id", "cluster", "confidence", "rank_in_cluster", "selected", "in_core"):
        assert a[col] == b[col], col
    assert not (applied / "selector").exists()  # nothing was trained
    assert hashlib.sha256((sel_dir / "selector.safetensors").read_bytes()).hexdigest() == before


def test_apply_to_a_different_dataset_without_retraining(ofa_ws, ofa_run):
    ws, catalog = ofa_ws
    cfg = _apply_config(ofa_run / "selector")
    assert cfg.encode.encoder.endswith("thresher-tiny-clip.json")  # from selector.json
    applied = _run(catalog, "ofa-apply", "other", cfg, run_id="apply-other")
    res = _result(applied)
    assert len(res["sample_id"]) == 90
    assert not (applied / "selector").exists()
    cl = [c for c in res["cluster"] if c is not None]
    assert set(cl) <= set(range(K))
    for c in set(cl):
        n_c = cl.count(c)
        kept = sum(s for s, cc in zip(res["selected"], res["cluster"], strict=True) if cc == c)
        assert kept == max(1, int(np.floor(RATIO * n_c + 0.5)))
    # nearest stored centroid
    meta = json.loads((ofa_run / "selector" / "selector.json").read_text())
    cents = np.array(meta["centroids"], dtype=np.float32)
    emb = np.concatenate([np.load(p) for p in sorted((applied / "embeddings").glob("*.npy"))])
    for i, c in enumerate(res["cluster"]):
        if c is not None:
            assert c == int(((emb[i].astype(np.float32) - cents) ** 2).sum(1).argmin())


def test_kill_and_resume_gives_identical_outputs(ofa_ws, ofa_run):
    from selection.jobs import run_job, spawn_worker

    ws, catalog = ofa_ws
    import selection.ofa.stages  # noqa: F401
    from selection.jobs import create_run

    run_dir = create_run(catalog, "ofa", "demo", _config(), seed=0, run_id="ofa-killed")
    pid = spawn_worker(run_dir)
    first = run_dir / "embeddings" / "part-00000.npy"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # reap: the worker is our child
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            break
        time.sleep(0.05)
    assert first.exists() and not (run_dir / "result").exists()
    stamp = first.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_job(run_dir, handle_signals=False) == "done"
    assert first.stat().st_mtime_ns == stamp  # the finished shard was kept, not redone
    assert _result(run_dir) == _result(ofa_run)
    for name in ("selector.safetensors",):
        assert (run_dir / "selector" / name).read_bytes() == (
            ofa_run / "selector" / name
        ).read_bytes()


def test_encoding_on_ray_actors_gives_the_same_run(ofa_ws, ofa_run):
    pytest.importorskip("ray")
    from selection.jobs import RayOptions, create_run, run_job

    ws, catalog = ofa_ws
    run_dir = create_run(catalog, "ofa", "demo", _config(), seed=0, run_id="ofa-on-ray")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_job(run_dir, handle_signals=False, ray=RayOptions(workers=2)) == "done"
    assert len(list((run_dir / "embeddings").glob("part-*.npy"))) > 1  # the stage fanned out
    for stage in ("embeddings", "kmeans", "selector", "result"):
        ours = sorted((run_dir / stage).glob("part-*"))
        theirs = sorted((ofa_run / stage).glob("part-*"))
        assert [p.read_bytes() for p in ours] == [p.read_bytes() for p in theirs], stage
