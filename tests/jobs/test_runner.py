"""Run folders end to end in one process: create, run, resume, refuse other settings, fail cleanly."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from selection.jobs import JobFailed, create_run, run_job
from store import runs
from store.errors import NotFound, ThresherError
from tests.helpers.jobs import SleepyConfig
from tests.jobs.conftest import shard_hashes


def test_create_run_writes_the_folder_and_the_catalog_row(toy):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=3)
    meta = runs.read_run_json(run_dir)
    assert meta["method"] == "sleepy" and meta["seed"] == 3 and meta["n_input"] == 24
    assert meta["stages"] == ["score", "embeddings", "result"]
    assert meta["params"] == {
        "shard_size": 4,
        "sleep_s": 0,
        "threshold": 0.5,
        "fail_at_shard": None,
        "gate": None,
        "die_flag": None,
        "die_at_shard": None,
    }
    assert meta["outputs"]["selections"] == {"default": "selected"}
    assert meta["dataset_fingerprint"] == "fp-toy-24"
    snapshot = pq.read_table(run_dir / runs.INPUT)
    ids = snapshot.column("sample_id").to_pylist()
    assert ids == sorted(ids) and len(ids) == 24
    assert snapshot.column_names == [c.strip() for c in runs.INPUT_COLUMNS.split(",")]
    assert runs.read_status(run_dir)["status"] == "queued"
    with toy.connect() as con:
        assert con.execute(
            "SELECT status FROM runs WHERE run_id = ?", [run_dir.name]
        ).fetchone() == ("queued",)


def test_same_command_same_run_other_settings_refused(toy):
    first = create_run(toy, "sleepy", "toy", SleepyConfig(), seed=0)
    assert create_run(toy, "sleepy", "toy", SleepyConfig(), seed=0) == first
    other = create_run(toy, "sleepy", "toy", SleepyConfig(threshold=0.7), seed=0)
    assert other != first
    create_run(toy, "sleepy", "toy", SleepyConfig(), seed=0, run_id="mine")
    with pytest.raises(ThresherError, match=r"params.threshold: 0.5 -> 0.9"):
        create_run(toy, "sleepy", "toy", SleepyConfig(threshold=0.9), seed=0, run_id="mine")
    with pytest.raises(ThresherError, match="seed: 0 -> 1"):
        create_run(toy, "sleepy", "toy", SleepyConfig(), seed=1, run_id="mine")
    with pytest.raises(NotFound, match="known: toy"):
        create_run(toy, "sleepy", "nope", SleepyConfig(), seed=0)
    with pytest.raises(ThresherError, match="not allowed"):
        create_run(toy, "sleepy", "toy", SleepyConfig(), seed=0, run_id="../escape")


def test_run_then_views_and_summary(toy):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=0)
    events = []
    assert run_job(run_dir, on_event=events.append) == "done"
    assert [e["event"] for e in events if e["event"] != "progress"] == [
        "stage_start",
        "stage_done",
    ] * 3 + ["run_done"]
    assert len(runs.stage_files(run_dir, "score")) == 6
    assert len(runs.stage_files(run_dir, "embeddings", ".npy")) == 3
    assert runs.sync_runs(toy) == [run_dir.name]
    assert runs.sync_runs(toy) == []  # registered once
    with toy.connect() as con:
        n, n_sel = con.execute(
            f'SELECT count(*), count_if(selected) FROM "run_{run_dir.name}_result"'
        ).fetchone()
        status, summary = con.execute(
            "SELECT status, summary FROM runs WHERE run_id = ?", [run_dir.name]
        ).fetchone()
    assert n == 24 and status == "done"
    assert json.loads(summary)["selected"] == {"default": n_sel}
    # A finished run is not redone.
    before = shard_hashes(run_dir)
    assert run_job(run_dir) == "done"
    assert shard_hashes(run_dir) == before


def test_subset_input_and_seed_changes_output(toy):
    with toy.connect() as con:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM samples ORDER BY sample_id DESC LIMIT 5"
            ).fetchall()
        ]
    sub = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=0, sample_ids=ids)
    assert pq.read_table(sub / runs.INPUT).column("sample_id").to_pylist() == sorted(ids)
    with pytest.raises(NotFound, match="12345"):
        create_run(toy, "sleepy", "toy", SleepyConfig(), seed=0, sample_ids=[12345])
    a = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=0)
    b = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=1)
    run_job(a)
    run_job(b)
    assert shard_hashes(a) != shard_hashes(b)


def test_failure_is_recorded_and_resume_finishes(toy):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0, fail_at_shard=2), seed=0)
    with pytest.raises(JobFailed, match="failed in stage score: .*planned failure in shard 2"):
        run_job(run_dir)
    status = runs.read_status(run_dir)
    assert status["status"] == "failed" and "RuntimeError" in status["error"]
    assert "Traceback" in (run_dir / runs.LOG).read_text()
    assert len(runs.stage_files(run_dir, "score")) == 2  # shards before the failure are kept
    events, _ = runs.read_events(run_dir)
    assert events[-1]["event"] == "run_failed" and events[-1]["failed_stage"] == "score"
    assert "stage" not in events[-1]  # run-level events carry no stage


def test_sync_tolerates_odd_folders_and_bad_outputs(toy, workspace):
    (workspace.runs_dir / ".half.creating-1").mkdir()
    (workspace.runs_dir / ".half.creating-1" / runs.RUN_JSON).write_text("{}")
    foreign = workspace.runs_dir / "foreign"  # a run.json written by other code, with few fields
    foreign.mkdir()
    runs.write_json_atomic(foreign / runs.RUN_JSON, {"method": "eval", "outputs": None})
    runs.write_status(foreign, "done")
    bad = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=0, run_id="bad")
    run_job(bad)
    meta = runs.read_run_json(bad)
    meta["outputs"]["selections"] = {"default": "no_such_column"}
    runs.write_json_atomic(bad / runs.RUN_JSON, meta)
    assert [r.run_id for r in runs.list_runs(workspace.runs_dir)].count("foreign") == 1
    assert sorted(runs.sync_runs(toy)) == ["bad", "foreign"]
    with toy.connect() as con:
        rows = dict(con.execute("SELECT run_id, summary FROM runs").fetchall())
    assert set(rows) == {"bad", "foreign"}
    assert "no_such_column" in json.loads(rows["bad"])["error"]
    assert json.loads(rows["foreign"]) == {"finished_at": None, "views": []}


def test_empty_dataset_is_refused_and_leaves_no_folder(catalog, workspace):
    from tests.helpers.jobs import make_dataset

    make_dataset(catalog, "empty", 0)
    with pytest.raises(ThresherError, match="'empty' has no samples"):
        create_run(catalog, "sleepy", "empty", SleepyConfig(), seed=0)
    assert list(workspace.runs_dir.iterdir()) == []
