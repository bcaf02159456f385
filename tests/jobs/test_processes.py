"""Jobs as real processes: kill -9 and resume, cancel and resume, two runs at once, detaching.

The `sleepy` score stage waits at a gate file before each shard, so each test puts the job
exactly where it wants it (e.g. "3 shards written, blocked inside the 4th") before acting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from selection.jobs import create_run, run_job, spawn_worker
from store import runs
from store.errors import ThresherError
from tests.helpers.jobs import SleepyConfig, inside_shard, open_gates
from tests.jobs.conftest import n_shards, shard_hashes, wait_for

ALL = range(6)  # 24 samples / 4 per shard = 6 score shards


@pytest.fixture
def gated(tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    return gate, SleepyConfig(sleep_s=0.02, gate=str(gate))


def _reference(catalog, config):
    """The same run, uninterrupted, in this process (all gates open)."""
    open_gates(config.gate, *ALL)
    run_dir = create_run(catalog, "sleepy", "toy", config, seed=7, run_id="reference")
    assert run_job(run_dir) == "done"
    return shard_hashes(run_dir)


def _reap(pid: int) -> None:
    """Wait for our detached child to exit (it is our child until this test process ends)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_kill_9_mid_stage_then_rerun_gives_identical_shards(toy, gated):
    gate, config = gated
    run_dir = create_run(toy, "sleepy", "toy", config, seed=7, run_id="killed")
    open_gates(gate, 0, 1, 2)
    pid = spawn_worker(run_dir)
    wait_for(lambda: inside_shard(gate, 3))
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    assert runs.read_status(run_dir)["status"] == runs.INTERRUPTED
    assert n_shards(run_dir) == 3
    # What a kill during a write leaves behind: a temp file no reader globs and the rerun removes.
    stale = run_dir / "score" / ".part-00003.parquet.999.tmp"
    stale.write_bytes(b"half a shard")
    reference = _reference(toy, config)
    assert run_job(run_dir) == "done"
    assert not stale.exists()
    start = [e for e in runs.read_events(run_dir)[0] if e["event"] == "stage_start"]
    assert [e["skipped"] for e in start if e["stage"] == "score"] == [0, 3]
    assert shard_hashes(run_dir) == reference
    assert len(reference) == 6 + 3 + 1


def test_cancel_finishes_the_current_shard_then_resume(toy, gated):
    gate, config = gated
    run_dir = create_run(toy, "sleepy", "toy", config, seed=7, run_id="cancelled")
    open_gates(gate, 0, 1)
    pid = spawn_worker(run_dir)
    wait_for(lambda: inside_shard(gate, 2))
    assert runs.request_cancel(run_dir) == pid  # cancel flag + SIGTERM
    open_gates(gate, 2, 3)  # shard 2 may finish now; shard 3 must not start
    _reap(pid)
    status = runs.read_status(run_dir)
    assert status["status"] == "cancelled" and status["finished_at"]
    assert n_shards(run_dir) == 3
    assert runs.read_events(run_dir)[0][-1]["event"] == "run_cancelled"
    # A plain SIGTERM does the same (the earlier cancel request is cleared by the restart).
    pid = spawn_worker(run_dir)
    wait_for(lambda: inside_shard(gate, 4))
    os.kill(pid, signal.SIGTERM)
    open_gates(gate, 4)
    _reap(pid)
    assert runs.read_status(run_dir)["status"] == "cancelled"
    assert n_shards(run_dir) == 5
    reference = _reference(toy, config)
    pid = spawn_worker(run_dir)
    _reap(pid)
    assert runs.read_status(run_dir)["status"] == "done"
    assert shard_hashes(run_dir) == reference


def test_cancel_flag_stops_a_foreground_run_between_shards(toy):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=7, run_id="flag")

    def on_event(event):
        if event["event"] == "progress" and event["done"] == 8:
            (run_dir / runs.CANCEL).write_text("now")

    assert run_job(run_dir, on_event=on_event) == "cancelled"
    assert n_shards(run_dir) == 2


def test_two_runs_at_once_and_one_run_only_once(toy, gated):
    gate, config = gated
    a = create_run(toy, "sleepy", "toy", config, seed=7, run_id="a")
    b = create_run(toy, "sleepy", "toy", config, seed=8, run_id="b")
    open_gates(gate, 0, 1)
    pids = [spawn_worker(a), spawn_worker(b)]
    wait_for(lambda: n_shards(a) == 2 and n_shards(b) == 2)  # both alive, both at gate 2
    assert runs.read_status(a)["status"] == runs.read_status(b)["status"] == "running"
    with pytest.raises(ThresherError, match="already running"):
        run_job(a)
    with pytest.raises(ThresherError, match="already running"):
        spawn_worker(a)
    open_gates(gate, *ALL)
    for pid in pids:
        _reap(pid)
    assert runs.read_status(a)["status"] == runs.read_status(b)["status"] == "done"
    assert shard_hashes(a) == _reference(toy, config)
    assert shard_hashes(b) != shard_hashes(a)
    # Each folder holds only its own run's events.
    assert {e["run_id"] for e in runs.read_events(b)[0]} == {"b"}


def test_detached_job_survives_its_parent(toy, workspace, gated):
    gate, config = gated
    # The parent is a separate `python` that starts the job detached and exits at once,
    # exactly like `thresher run ... --detach` in an SSH session that then closes.
    script = textwrap.dedent(
        f"""
        from store.workspace import Workspace
        from tests.helpers.jobs import SleepyConfig
        from tui.cli.jobs import start_run
        start_run(Workspace.resolve({str(workspace.root)!r}), "sleepy", "toy",
                  SleepyConfig(sleep_s=0.02, gate={str(gate)!r}), True, seed=7, name="detached")
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd()
    )
    assert parent.returncode == 0, parent.stderr
    assert "in the background" in parent.stdout
    run_dir = workspace.run_dir("detached")
    pid = int((run_dir / runs.PID).read_text())
    # The parent is gone; the job is alive in its own session, waiting at the first gate.
    wait_for(lambda: runs.read_status(run_dir)["status"] == "running")
    assert os.getsid(pid) == pid != os.getsid(0)
    open_gates(gate, *ALL)
    wait_for(lambda: runs.read_status(run_dir)["status"] == "done", timeout=30)
    assert n_shards(run_dir) == 6
    # The worker prints its last line just after the runner writes "done": wait for it too.
    wait_for(lambda: "run finished: done" in (run_dir / runs.LOG).read_text(), timeout=10)
