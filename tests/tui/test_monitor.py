"""The run monitor follows progress.jsonl written by another process, including events from before it opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.runs import append_event, write_json_atomic, write_status
from tests.tui.helpers import settle, wait_for, widget_text
from tui.data.progress import ProgressFollower
from tui.screens.monitor import MonitorScreen

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


def make_running_run(workspace, run_id="ofa-live"):
    run_dir = workspace.run_dir(run_id)
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "run.json", {"run_id": run_id, "method": "ofa", "dataset": "demo",
                                             "created_at": "2026-01-01T00:00:00", "outputs": None,
                                             "stages": ["encode"]})  # fmt: skip
    write_status(run_dir, "queued")
    # events from before the app opened
    append_event(run_dir, {"t": 1.0, "run_id": run_id, "stage": "encode", "done": 0, "total": 400,
                           "event": "stage_start"})  # fmt: skip
    return run_dir


def test_follower_skips_a_torn_last_line(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    append_event(run_dir, {"stage": "encode", "done": 1, "total": 4, "event": "progress"})
    with open(run_dir / "progress.jsonl", "a") as fh:
        fh.write('{"stage": "encode", "done": 3, "to')
    follower = ProgressFollower(run_dir)
    snap, changed = follower.poll()
    assert changed and snap.stages[0].done == 1
    with open(run_dir / "progress.jsonl", "a") as fh:
        fh.write('tal": 4, "event": "progress"}\n')
    snap, changed = follower.poll()
    assert changed and snap.stages[0].done == 3 and snap.stages[0].total == 4


async def test_monitor_follows_a_run_written_by_another_process(runs_ws, app):
    run_dir = make_running_run(runs_ws)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_monitor("ofa-live")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        await wait_for(pilot, lambda: screen.snapshot is not None, what="first snapshot")
        assert screen.snapshot.stages[0].done == 0  # read the events written before we opened
        assert "no GPU telemetry" in widget_text(screen.query_one("#gpus"))
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.tui.progress_writer", str(run_dir), "400", "0.2"],
            cwd=REPO,
            env=env,
        )
        try:
            await wait_for(
                pilot,
                lambda: screen.snapshot.status == "done" and screen.snapshot.stages[0].finished,
                timeout=20,
                what="the writer to finish",
            )
        finally:
            writer.wait(timeout=20)
        snap = screen.snapshot
        assert snap.stages[0].done == 400 and snap.stages[0].total == 400
        assert len(snap.gpus) == 1 and len(snap.gpus[0].util) == 5  # 0, 100, 200, 300, 400
        stages_text = widget_text(screen.query_one("#stages"))
        assert "encode" in stages_text and "400/400" in stages_text and "done" in stages_text
        assert "GPU0 Fake H100" in widget_text(screen.query_one("#gpus"))
        assert "writer: finished encode" in "\n".join(snap.log)
        await pilot.press("escape")
