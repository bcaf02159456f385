"""Stages fanned out over Ray actors (a real local Ray instance): same shards, cancel, failure, CLI."""

from __future__ import annotations

import pytest

from selection.jobs import JobFailed, RayOptions, create_run, run_job
from selection.jobs.ray_exec import RayExecutor
from store import runs
from store.errors import ThresherError
from tests.helpers.jobs import SleepyConfig, open_gates
from tests.jobs.conftest import n_shards, shard_hashes, wait_for

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (starting one costs ~5 s); runs reuse it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _pids(monkeypatch) -> set[int]:
    """Collect the worker PIDs of every RayExecutor the test creates."""
    seen: set[int] = set()
    close = RayExecutor.close

    def recording_close(self):
        seen.update(self.pids)
        close(self)

    monkeypatch.setattr(RayExecutor, "close", recording_close)
    return seen


def test_ray_run_writes_the_same_shards_as_a_local_run(toy, local_ray, monkeypatch):
    pids = _pids(monkeypatch)
    local = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0.2), seed=5, run_id="local")
    on_ray = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0.2), seed=5, run_id="ray")
    assert run_job(local) == "done"
    events: list[dict] = []
    assert run_job(on_ray, ray=RayOptions(workers=2), on_event=events.append) == "done"
    assert shard_hashes(on_ray) == shard_hashes(local)
    assert len(pids) == 2  # both actors ran shards, in processes other than this one
    import os

    assert os.getpid() not in pids
    # progress counts finished shards and ends at the total
    score = [e for e in events if e.get("stage") == "score" and e["event"] == "progress"]
    assert [e["done"] for e in score] == list(range(4, 25, 4))
    assert ray.is_initialized()  # a Ray instance the runner did not start is left running


def test_cancel_stops_between_shards_and_a_local_resume_finishes_identically(
    toy, local_ray, tmp_path
):
    gate = tmp_path / "gate"
    gate.mkdir()
    cfg = SleepyConfig(sleep_s=0, gate=str(gate))
    ref = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=2, run_id="ref")
    run_job(ref)
    run_dir = create_run(toy, "sleepy", "toy", cfg, seed=2, run_id="cancel-me")
    open_gates(gate, 0, 1)

    import threading

    result: dict[str, str] = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("status", run_job(run_dir, ray=RayOptions(workers=2)))
    )
    worker.start()
    wait_for(lambda: n_shards(run_dir) == 2 and (gate / "in-2").exists(), timeout=60)
    (run_dir / runs.CANCEL).touch()
    open_gates(gate, 2, 3)  # the shards in flight finish; no new one starts
    worker.join(60)
    assert result["status"] == "cancelled"
    assert 2 <= n_shards(run_dir) <= 4 < 6
    open_gates(gate, 4, 5)
    from selection.jobs import prepare_resume

    prepare_resume(run_dir)
    assert run_job(run_dir) == "done"  # resumed without Ray
    assert shard_hashes(run_dir) == shard_hashes(ref)


def test_a_failing_shard_fails_the_run_with_its_own_error(toy, local_ray):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0, fail_at_shard=3), seed=0)
    with pytest.raises(JobFailed, match="stage score: RuntimeError: planned failure in shard 3"):
        run_job(run_dir, ray=RayOptions(workers=2))
    status = runs.read_status(run_dir)
    assert status["status"] == "failed" and "planned failure" in status["error"]
    assert not list((run_dir / "score").glob(".*.tmp"))  # shards in flight finished cleanly


def test_a_dead_actor_loses_only_its_shard_and_the_run_resumes(toy, local_ray, tmp_path):
    flag = tmp_path / "die-once"
    flag.touch()
    cfg = SleepyConfig(sleep_s=0, die_flag=str(flag), die_at_shard=2)
    run_dir = create_run(toy, "sleepy", "toy", cfg, seed=0, run_id="dies")
    with pytest.raises(JobFailed, match=r"Ray worker running shard\(s\) 2 died"):
        run_job(run_dir, ray=RayOptions(workers=2))
    shards = sorted(p.name for p in (run_dir / "score").glob("part-*.parquet"))
    assert "part-00002.parquet" not in shards and len(shards) == 5  # the other five finished
    assert "thresher resume dies" in runs.read_status(run_dir)["error"]
    ref = create_run(toy, "sleepy", "toy", cfg, seed=0, run_id="ref-dies")
    assert run_job(run_dir) == "done"  # the resume runs shard 2 only (the flag is gone)
    assert run_job(ref) == "done"
    assert shard_hashes(run_dir) == shard_hashes(ref)


def test_cli_runs_detached_on_ray_and_refuses_half_options(toy, workspace):
    from click.testing import CliRunner

    from tui.cli import cli

    ws = ["-w", str(workspace.root)]
    with pytest.raises(ThresherError, match="need --ray-workers"):
        CliRunner().invoke(cli, [*ws, "resume", "x", "--ray-gpus", "1"], catch_exceptions=False)
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=9)
    out = CliRunner().invoke(
        cli, [*ws, "resume", run_dir.name, "--detach", "--ray-workers", "2"], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    wait_for(lambda: runs.read_status(run_dir)["status"] == "done", timeout=120)
    log = (run_dir / runs.LOG).read_text()
    assert "ray: 2 workers" in log


def test_missing_ray_is_a_clear_error(monkeypatch):
    import importlib.util

    from selection.jobs.ray_exec import require_ray

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ThresherError, match=r"pip install 'thresher\[ray\]'"):
        require_ray()
    with pytest.raises(ThresherError, match="at least 1"):
        RayOptions(workers=0).validate()
