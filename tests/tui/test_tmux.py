"""End to end in a real terminal: `thresher tui` inside tmux, keys sent, the pane read the way a person reads it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.tui.helpers import decision_rows

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
REPO = Path(__file__).resolve().parents[2]


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def wait_for_text(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        pane = capture(session)
        if text in pane:
            return pane
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared; the pane shows:\n{pane}")
        time.sleep(0.1)


def pane_dead(session: str) -> str:
    return subprocess.run(
        ["tmux", "display-message", "-p", "-t", session, "#{pane_dead}"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def keys(session: str, *names: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *names], check=True)


def test_tui_in_tmux_browse_decide_and_survive_a_kill(runs_ws, catalog):
    session = f"thresher-test-{uuid.uuid4().hex[:8]}"
    command = (
        f"cd {REPO} && NO_COLOR=1 PYTHONPATH={REPO} {sys.executable} -m tui "
        f"--workspace {runs_ws.root} tui --image-mode auto"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-x", "120", "-y", "40", "-s", session, command], check=True
    )
    try:
        pane = wait_for_text(session, "clipper-1")
        assert "ofa-1" in pane and "Datasets" in pane and "missing_image 52" in pane
        keys(
            session, "Down"
        )  # runs are newest first; both have the same date, so by id: ofa-1 first
        keys(session, "Up", "Enter")
        pane = wait_for_text(session, "kept 12")
        assert "60 samples" in pane and "overrides 0" in pane
        # Esc then d in one go (as a quick typist, or tmux's escape-time, sends them: Meta-d)
        keys(session, "/")
        wait_for_text(session, "Filter by text")
        keys(session, *"object 0")
        keys(session, "Enter")
        wait_for_text(session, "text 'object 0'")  # s0 alone
        keys(session, "Escape", "d")
        wait_for_text(session, "60 shown")
        pane = wait_for_text(session, "overrides 1 · saved")
        assert "DROP" in pane
        keys(session, "Down", "k")
        pane = wait_for_text(session, "overrides 2 · saved")
        assert "KEEP" in pane
        # the app is killed hard right after the decision showed as saved: it is in the log
        pid = subprocess.run(
            ["tmux", "display-message", "-p", "-t", session, "#{pane_pid}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        for child in subprocess.run(
            ["pgrep", "-P", pid], capture_output=True, text=True
        ).stdout.split():
            os.kill(int(child), signal.SIGKILL)
        os.kill(int(pid), signal.SIGKILL)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert decision_rows(catalog, "ofa-1") == [
        ((1 << 32) + 0, "drop", "sample"),
        ((1 << 32) + 1, "keep", "sample"),
    ]


def test_tui_in_tmux_start_browse_drop_undo_compare_export_quit(runs_ws, catalog):
    """The whole round a new user makes, keys only, in a real terminal: start a run from the form
    and watch it finish, browse, drop a cluster and undo it, compare, export, quit; no traceback,
    and the export's counts are the ones the screen showed."""
    session = f"thresher-e2e-{uuid.uuid4().hex[:8]}"
    # the job tests' `sleepy` method is registered by importing its module (entry points name it,
    # so the detached worker finds it too)
    launcher = (
        "import sys, tests.helpers.jobs; from tui.cli import main; "
        f"sys.argv = ['thresher', '--workspace', {str(runs_ws.root)!r}, 'tui', '--image-mode', 'none']; main()"
    )
    command = f'cd {REPO} && PYTHONPATH={REPO} {sys.executable} -c "{launcher}"'
    subprocess.run(
        ["tmux", "new-session", "-d", "-x", "120", "-y", "36", "-s", session, command], check=True
    )
    # the pane stays after the app exits, so what it printed last (a traceback?) can be read
    subprocess.run(["tmux", "set-option", "-t", session, "remain-on-exit", "on"], check=True)
    try:
        wait_for_text(session, "clipper-1")
        keys(session, "n")
        wait_for_text(session, "kmeans_iterations")  # OFA's fields: the method list has focus next
        for attempt in range(3):  # open the method list (focus lands just after the fields)
            keys(session, "Enter")
            try:
                wait_for_text(session, "baseline:random", timeout=5)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        keys(session, "s", "l", "e", "e", "p")
        time.sleep(0.3)
        keys(session, "Enter")
        wait_for_text(session, "sleep_s")  # the sleepy method's form, on the one dataset (demo)
        keys(session, "C-r")
        wait_for_text(session, "· done ·", timeout=60)  # the monitor follows it to the end
        keys(session, "Escape")
        wait_for_text(session, "Runs")
        # browse ofa-1 from the palette, drop cluster 1, undo it
        keys(session, "C-p")
        wait_for_text(session, "Search for commands")
        keys(session, *"browse: ofa-1")
        wait_for_text(session, "Groups and samples")  # the hit is listed
        keys(session, "Enter")
        wait_for_text(session, "kept 12 · overrides 0")
        keys(session, "Tab", "Down", "Down", "D")
        wait_for_text(session, "Drop all 15 samples of cluster=1?")
        keys(session, "y")
        wait_for_text(session, "kept 9 · overrides 15 · saved")
        keys(session, "U")
        wait_for_text(session, "Clear your 15 decisions in cluster=1?")
        keys(session, "y")
        wait_for_text(session, "kept 12 · overrides 0 · saved")
        keys(session, "Tab", "End", "d")  # s59, an algorithm keep, dropped by hand: 11 to export
        wait_for_text(session, "kept 11 · overrides 1 · saved")
        # compare, then export what the header says
        keys(session, "C-p")
        wait_for_text(session, "Search for commands")
        keys(session, *"compare: selections")
        wait_for_text(session, "Overlap, histograms")
        keys(session, "Enter")
        wait_for_text(session, "Jaccard overlap")
        keys(session, "Escape")
        wait_for_text(session, "kept 11")
        keys(session, "x")
        wait_for_text(session, "Export ofa-1")
        keys(session, "C-e")
        wait_for_text(session, "samples exported of 11 selected", timeout=30)
        keys(session, "Escape", "Escape")
        wait_for_text(session, "Runs")
        keys(session, "q")
        deadline = time.monotonic() + 15
        while pane_dead(session) != "1":
            if time.monotonic() > deadline:
                raise AssertionError(f"the app did not quit; the pane shows:\n{capture(session)}")
            time.sleep(0.2)
        last = capture(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "Traceback" not in last and "Error" not in last, last
    manifest = runs_ws.exports_dir / "demo-ofa-1-default-llava.json"
    import json

    sidecar = json.loads(Path(str(manifest) + ".meta.json").read_text())
    assert sidecar["counts"]["selected"] == sidecar["run"]["effective_selected"] == 11, sidecar
    assert sidecar["decisions"]["log_entries"] == 31  # 15 drops, 15 clears, 1 drop
    assert decision_rows(catalog, "ofa-1")[-1] == ((1 << 32) + 59, "drop", "sample")
