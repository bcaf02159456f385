"""The jobs commands as a user runs them: runs, attach (and Ctrl-C), cancel, resume, start_run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from selection.jobs import create_run, spawn_worker
from store import runs
from store.errors import ThresherError
from tests.helpers.jobs import SleepyConfig, inside_shard, open_gates
from tests.jobs.conftest import n_shards, wait_for
from tui.cli import cli, main
from tui.cli.jobs import start_run


def _invoke(workspace, *args):
    result = CliRunner().invoke(cli, ["-w", str(workspace.root), *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_start_run_foreground_then_same_command_resumes(toy, workspace, capsys):
    run_id = start_run(workspace, "sleepy", "toy", SleepyConfig(sleep_s=0), False, seed=2)
    out = capsys.readouterr().out
    assert f"Run {run_id} done (default: " in out
    assert start_run(workspace, "sleepy", "toy", SleepyConfig(sleep_s=0), False, seed=2) == run_id
    assert "already done" in capsys.readouterr().out
    listing = _invoke(workspace, "runs")
    assert run_id in listing and "done" in listing
    summary = runs.result_summary(
        workspace.run_dir(run_id), runs.read_run_json(workspace.run_dir(run_id))
    )
    assert f"{summary['selected']['default']}/24" in listing


def test_user_errors_are_one_line_exit_2(toy, workspace, capsys):
    start_run(workspace, "sleepy", "toy", SleepyConfig(sleep_s=0), False, name="n")
    with pytest.raises(ThresherError, match="already exists with other settings"):
        start_run(workspace, "sleepy", "toy", SleepyConfig(sleep_s=0), False, name="n", seed=5)
    with pytest.raises(SystemExit) as exc:
        main(["-w", str(workspace.root), "resume", "nosuch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run 'nosuch'") and err.count("\n") == 1


def test_attach_follows_a_run_to_the_end(toy, workspace):
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0.1), seed=0, run_id="att")
    spawn_worker(run_dir)
    out = _invoke(workspace, "attach", "att")
    assert "Run att: done." in out
    for stage in ("score", "embeddings", "result"):
        assert stage in out


@pytest.fixture
def gate(tmp_path):
    (tmp_path / "gate").mkdir()
    return tmp_path / "gate"


def test_ctrl_c_in_attach_leaves_the_job_running(toy, workspace, gate):
    config = SleepyConfig(sleep_s=0.02, gate=str(gate))
    run_dir = create_run(toy, "sleepy", "toy", config, seed=0, run_id="bg")
    spawn_worker(run_dir)
    wait_for(lambda: inside_shard(gate, 0))
    attach = subprocess.Popen(
        [sys.executable, "-m", "tui", "-w", str(workspace.root), "attach", "bg"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    attach.send_signal(signal.SIGINT)
    out, err = attach.communicate(timeout=30)
    assert attach.returncode == 0, err
    assert "Detached; run bg keeps going." in out
    assert runs.read_status(run_dir)["status"] == "running"
    open_gates(gate, *range(6))
    wait_for(lambda: runs.read_status(run_dir)["status"] == "done", timeout=30)


def test_cancel_runs_resume_commands(toy, workspace, gate):
    config = SleepyConfig(sleep_s=0.02, gate=str(gate))
    run_dir = create_run(toy, "sleepy", "toy", config, seed=0, run_id="c")
    open_gates(gate, 0)
    spawn_worker(run_dir)
    wait_for(lambda: inside_shard(gate, 1))

    def open_after_cancel_request():
        wait_for(lambda: (run_dir / runs.CANCEL).exists())
        open_gates(gate, 1)  # the job finishes shard 1, then stops: `cancel` waits for that

    opener = threading.Thread(target=open_after_cancel_request)
    opener.start()
    out = _invoke(workspace, "cancel", "c")
    opener.join()
    assert "Cancel requested for c" in out and "Run c: cancelled." in out
    assert "cancelled" in _invoke(workspace, "runs")
    assert n_shards(run_dir) == 2
    assert "is not running (cancelled)" in _invoke(workspace, "cancel", "c")
    open_gates(gate, *range(6))
    out = _invoke(workspace, "resume", "c")
    assert "Resuming run c (cancelled)" in out and "Run c done" in out
    assert n_shards(run_dir) == 6


def test_runs_shows_interrupted_and_resume_detached(toy, workspace, gate):
    config = SleepyConfig(sleep_s=0.02, gate=str(gate))
    run_dir = create_run(toy, "sleepy", "toy", config, seed=0, run_id="k")
    open_gates(gate, 0)
    pid = spawn_worker(run_dir)
    wait_for(lambda: inside_shard(gate, 1))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: runs.read_status(run_dir)["status"] == runs.INTERRUPTED)
    listing = _invoke(workspace, "runs")
    assert "interrupted" in listing and "score" in listing
    assert "score 4/24" in listing
    open_gates(gate, *range(6))
    out = _invoke(workspace, "resume", "k", "--detach")
    assert "Resuming run k (interrupted)" in out and "in the background" in out
    wait_for(lambda: runs.read_status(run_dir)["status"] == "done", timeout=30)


def test_attach_to_a_run_nobody_started_returns(toy, workspace):
    create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0), seed=0, run_id="idle")
    result = CliRunner().invoke(cli, ["-w", str(workspace.root), "attach", "idle"])
    # Returns at once, and not with success: there is no result to go on with.
    assert result.exit_code == 1 and "queued (not started" in result.output


def test_attach_view_draws_stage_bars_and_gpu_meters(tmp_path):
    from rich.console import Console

    from tui.cli.jobs import attach_view

    (tmp_path / runs.LOG).write_text("line one\nthe last log line\n")
    gpu = {"index": 0, "name": "H100", "util": 97, "mem_used": 12 * 2**30, "mem_total": 80 * 2**30}
    events = [
        {"event": "stage_start", "stage": "encode", "done": 0, "total": 4096, "unit": "samples"},
        {"event": "progress", "stage": "encode", "done": 512, "total": 4096, "rate": 85.3,
         "eta_s": 42.0, "unit": "samples", "gpu": [{**gpu, "power_w": 310.0}]},
    ]  # fmt: skip
    stages: dict = {}
    runs.fold_events(events, stages)
    console = Console(record=True, width=120)
    console.print(attach_view(tmp_path, {"status": "running", "gpu": events[1]["gpu"]}, stages))
    text = console.export_text()
    assert "encode" in text and "512/4,096 samples" in text and "85.3 samples/s" in text
    assert "ETA 0:00:42" in text
    assert "GPU0 H100: util  97%" in text and "12.0/80.0 GiB" in text and "310 W" in text
    assert "the last log line" in text


def test_runs_lists_a_failed_run_with_its_error(toy, workspace, capsys):
    config = SleepyConfig(sleep_s=0, fail_at_shard=1)
    with pytest.raises(ThresherError, match="failed in stage score"):
        start_run(workspace, "sleepy", "toy", config, False, name="broken")
    listing = _invoke(workspace, "runs")
    assert "broken" in listing and "failed" in listing
    assert "score 4/24 RuntimeError: planned failure in shard 1" in listing
