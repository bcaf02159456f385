"""`thresher run clipper` from the command line: --limit subsets, damaged images excluded, user errors."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from store import runs
from store.datasets import seeded_sample_ids
from store.ingest import ingest
from tests.helpers.datasets import demo_files
from tests.helpers.tiny_vlm import tiny_vlm
from tui.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _images_of(catalog, sample_id):
    with catalog.connect() as con:
        return con.execute(
            "SELECT images FROM samples WHERE sample_id = ?", [sample_id]
        ).fetchone()[0]


def test_cli_run_with_limit_excludes_damaged_images_and_resumes(catalog, tmp_path, capsys):
    # A private copy of the demo files, so damaging images cannot hurt another test's cache.
    src = demo_files(24, seed=4, near=tmp_path)
    shutil.copytree(src.parent, tmp_path / "data")
    ingest(catalog, tmp_path / "data" / src.name, name="bad", fmt="llava")
    ws = catalog.workspace
    subset = seeded_sample_ids(catalog, "bad", 12, seed=9)
    assert (
        subset
        == seeded_sample_ids(catalog, "bad", 12, 9)
        != seeded_sample_ids(catalog, "bad", 12, 8)
    )
    with_images = [s for s in subset if _images_of(catalog, s)]
    gone, broken = with_images[0], with_images[1]
    (path_gone,) = _images_of(catalog, gone)[:1]
    path_broken = _images_of(catalog, broken)[0]
    # the other samples must still be readable: the demo gives every sample its own files
    assert path_broken != path_gone
    os.remove(path_gone)
    with open(path_broken, "r+b") as fh:
        fh.truncate(40)

    argv = ["-w", str(ws.root), "run", "clipper", "--dataset", "bad"]
    argv += ["--model", str(tiny_vlm("qwen2_vl")), "--limit", "12", "--seed", "9", "--m", "2"]
    argv += ["--max-new-tokens", "4", "--batch-size", "4", "--engine-opt", "device=cpu"]
    main(argv)
    out = capsys.readouterr().out
    assert "done" in out and "P1+W" in out
    (run_dir,) = [p for p in ws.runs_dir.iterdir() if p.is_dir()]
    meta = runs.read_run_json(run_dir)
    assert meta["params"]["limit"] == 12 and meta["params"]["engine_opts"] == {"device": "cpu"}
    res = pq.read_table(run_dir / "result")
    assert res["sample_id"].to_pylist() == subset
    row = {s: i for i, s in enumerate(subset)}
    excl = res["excluded"].to_pylist()
    assert excl[row[gone]] == "missing_image" and excl[row[broken]] == "corrupt_image"
    assert sum(e is not None for e in excl) == 2
    for sid in (gone, broken):
        i = row[sid]
        assert res["knowledge"][i].as_py() == "excluded" == res["subset_t1"][i].as_py()
        assert res["zs_response"][i].as_py() is None and res["log_ppl"][i].as_py() is None
        assert not any(res[name][i].as_py() for name in ("P1+W", "P2+W", "mid-ppl"))
    lp = np.array([np.nan if v is None else v for v in res["log_ppl"].to_pylist()])
    assert np.isfinite(lp).sum() == 10
    # rerunning the same command finds the finished run instead of starting another
    main(argv)
    assert "already done" in capsys.readouterr().out
    assert len([p for p in ws.runs_dir.iterdir() if p.is_dir()]) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "openai"], "needs --base-url"),
        (["--judge", "llm", "--base-url", "http://127.0.0.1:9/v1"], "needs --judge-model"),
        (["--engine-opt", "device"], "KEY=VALUE"),
        (["--m", "0"], "m must be at least 1"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(catalog, capsys, extra, message):
    argv = ["-w", str(catalog.workspace.root), "run", "clipper", "--dataset", "x", "--model", "m"]
    with pytest.raises(SystemExit) as exc:
        main(argv + extra)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
