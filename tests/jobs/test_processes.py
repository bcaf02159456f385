"""Jobs as real processes: kill -9 and resume, cancel and resume, two runs at once, detaching."""

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
from tests.helpers.jobs import SleepyConfig
from tests.jobs.conftest import n_shards, shard_hashes, wait_for

# 24 samples / 4 per shard = 6 score shards of 0.15 s each: ~1 s of work to interrupt.
SLOW = SleepyConfig(sleep_s=0.15)


def _reference(catalog, name: str = "ref"):
    """The same run, uninterrupted, in this process."""
    run_dir = create_run(catalog, "sleepy", "toy", SLOW, seed=7, run_id=name)
    assert run_job(run_dir) == "done"
    return shard_hashes(run_dir)


def _reap(pid: int) -> None:
    """Our detached children become zombies until waited for; reap so liveness checks are honest."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_kill_9_mid_stage_then_rerun_gives_identical_shards(toy):
    run_dir = create_run(toy, "sleepy", "toy", SLOW, seed=7, run_id="killed")
    pid = spawn_worker(run_dir)
    wait_for(lambda: n_shards(run_dir) >= 2)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    done_before = n_shards(run_dir)
    assert 2 <= done_before < 6
    assert runs.read_status(run_dir)["status"] == runs.INTERRUPTED
    # What a kill during a write leaves behind: a temp file no reader globs and the rerun removes.
    stale = run_dir / "score" / ".part-00005.parquet.999.tmp"
    stale.write_bytes(b"half a shard")
    assert run_job(run_dir) == "done"
    assert not stale.exists()
    start = [e for e in runs.read_events(run_dir)[0] if e["event"] == "stage_start"]
    assert any(e["stage"] == "score" and e["skipped"] >= done_before for e in start)
    assert shard_hashes(run_dir) == _reference(toy)


def test_sigterm_and_cancel_command_finish_the_shard_then_resume(toy):
    run_dir = create_run(toy, "sleepy", "toy", SLOW, seed=7, run_id="cancelled")
    pid = spawn_worker(run_dir)
    wait_for(lambda: n_shards(run_dir) >= 1)
    assert runs.request_cancel(run_dir) == pid  # cancel flag + SIGTERM
    _reap(pid)
    status = runs.read_status(run_dir)
    assert status["status"] == "cancelled" and status["finished_at"]
    assert 1 <= n_shards(run_dir) < 6
    assert runs.read_events(run_dir)[0][-1]["event"] == "run_cancelled"
    assert not list((run_dir / "score").glob(".*.tmp"))  # the shard in flight was finished
    # A plain SIGTERM does the same.
    pid = spawn_worker(run_dir)
    wait_for(lambda: runs.read_status(run_dir)["status"] == "running")
    os.kill(pid, signal.SIGTERM)
    _reap(pid)
    assert runs.read_status(run_dir)["status"] == "cancelled"
    pid = spawn_worker(run_dir)  # resume clears the old cancel request
    _reap(pid)
    assert runs.read_status(run_dir)["status"] == "done"
    assert shard_hashes(run_dir) == _reference(toy)


def test_cancel_flag_stops_a_foreground_run_between_shards(toy):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=7, run_id="flag")
    seen = []

    def on_event(event):
        seen.append(event)
        if event["event"] == "progress" and event["done"] == 8:
            (run_dir / runs.CANCEL).write_text("now")

    assert run_job(run_dir, on_event=on_event) == "cancelled"
    assert n_shards(run_dir) == 2


def test_two_runs_at_once_and_one_run_only_once(toy):
    a = create_run(toy, "sleepy", "toy", SLOW, seed=7, run_id="a")
    b = create_run(toy, "sleepy", "toy", SLOW, seed=8, run_id="b")
    pids = [spawn_worker(a), spawn_worker(b)]
    wait_for(lambda: runs.is_locked(a) and runs.read_status(a)["status"] == "running")
    assert n_shards(a) < 4  # >= 0.3 s of work left: longer than the lock wait below
    with pytest.raises(ThresherError, match="already running"):
        run_job(a)
    for pid in pids:
        _reap(pid)
    assert runs.read_status(a)["status"] == runs.read_status(b)["status"] == "done"
    assert shard_hashes(a) == _reference(toy)
    assert shard_hashes(b) != shard_hashes(a)
    # Each folder holds only its own run's events.
    assert {e["run_id"] for e in runs.read_events(b)[0]} == {"b"}


def test_detached_job_survives_its_parent(toy, workspace):
    # The parent is a separate `python` that starts the job detached and exits at once,
    # exactly like `thresher run ... --detach` in an SSH session that then closes.
    script = textwrap.dedent(
        f"""
        from store.workspace import Workspace
        from tests.helpers.jobs import SleepyConfig
        from tui.cli.jobs import start_run
        start_run(Workspace.resolve({str(workspace.root)!r}), "sleepy", "toy",
                  SleepyConfig(sleep_s=0.15), True, seed=7, name="detached")
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd()
    )
    assert parent.returncode == 0, parent.stderr
    assert "in the background" in parent.stdout
    run_dir = workspace.run_dir("detached")
    pid = int((run_dir / runs.PID).read_text())
    # The parent is gone; the job is alive in its own session and keeps writing shards.
    wait_for(lambda: runs.read_status(run_dir)["status"] == "running")
    assert os.getsid(pid) == pid != os.getsid(0)
    wait_for(lambda: runs.read_status(run_dir)["status"] == "done", timeout=30)
    assert n_shards(run_dir) == 6
    assert "run finished: done" in (run_dir / runs.LOG).read_text()
