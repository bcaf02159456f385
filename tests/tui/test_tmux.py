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
        keys(session, "k")
        pane = wait_for_text(session, "overrides 1 · saved")
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
    assert decision_rows(catalog, "ofa-1") == [((1 << 32) + 0, "keep", "sample")]
